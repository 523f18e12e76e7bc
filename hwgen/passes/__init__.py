"""Graph passes over the IR: one pass per module, each a frozen dataclass.

A pass has a ``name`` and ``apply(network) -> network``; it never mutates its
input. :func:`run_passes` applies a tuple of passes, verifying the IR after
each one and calling an optional callback (dumps, checks) in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from hwgen.ir import Network

__all__ = ["Pass", "run_passes"]


class Pass(Protocol):
    name: ClassVar[str]

    def apply(self, network: Network) -> Network: ...


def run_passes(
    network: Network,
    passes: Sequence[Pass],
    callback: Callable[[Pass, Network], None] | None = None,
) -> Network:
    network.verify()
    for p in passes:
        network = p.apply(network)
        network.verify()
        if callback is not None:
            callback(p, network)
    return network
