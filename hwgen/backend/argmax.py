"""Gateware for the optional class-index output: argmax over the last layer's codes."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Const, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.plan.dense import argmax_bits, tree_levels

__all__ = ["ArgmaxTree", "registered_tree"]


def registered_tree(
    m: Module,
    items: list[tuple[Value, ...]],
    shapes: tuple[Shape, ...],
    keep_first: Callable[[tuple[Value, ...], tuple[Value, ...]], Value],
    name: str,
) -> tuple[Value, ...]:
    """Reduce ``items`` pairwise, keeping the first of a pair where ``keep_first(a, b)``,
    one register level per tree level (:func:`hwgen.plan.dense.tree_levels`); a lone item
    passes through a register. Max/min pools carry a value, the argmax a (value, index)."""
    level = items
    for lvl in range(tree_levels(len(items))):
        nxt: list[tuple[Value, ...]] = []
        for j in range(0, len(level), 2):
            regs = tuple(
                Signal(shape, name=f"{name}_l{lvl}_{j // 2}_{f}", reset_less=True) for f, shape in enumerate(shapes)
            )
            if j + 1 < len(level):
                a, b = level[j], level[j + 1]
                first = keep_first(a, b)
                m.d.sync += [r.eq(Mux(first, x, y)) for r, x, y in zip(regs, a, b, strict=True)]
            else:
                m.d.sync += [r.eq(x) for r, x in zip(regs, level[j], strict=True)]
            nxt.append(regs)
        level = nxt
    assert len(level) == 1
    return level[0]


class ArgmaxTree(wiring.Component):
    """Index of the largest of ``n`` signed values, the first one on ties (like numpy.argmax).

    A registered tree of compare-and-select nodes carrying (value, index)
    pairs: latency :func:`hwgen.plan.dense.tree_levels` cycles, free-running.

    Members
    -------
    x : In(ArrayLayout(signed(bits), n))
    y : Out(signed(argmax_bits(n)))
    """

    def __init__(self, n: int, bits: int) -> None:
        self._n, self._bits = n, bits
        super().__init__({"x": In(data.ArrayLayout(signed(bits), n)), "y": Out(signed(argmax_bits(n)))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, bits = self._n, self._bits
        ibits = argmax_bits(n)
        items = [(self.x[i], Const(i, signed(ibits))) for i in range(n)]
        # The first item of a pair holds the lower indices: on a tie it wins (first max).
        best = registered_tree(m, items, (signed(bits), signed(ibits)), lambda a, b: a[0] >= b[0], "argmax")
        m.d.comb += self.y.eq(best[1])
        return m
