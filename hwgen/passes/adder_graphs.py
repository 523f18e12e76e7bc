"""Give every layer the adder graph that realises its integer weight matrix.

``method="naive"`` builds one pruned balanced tree per output;
``method="merged"`` shares common signed subexpressions between outputs
(:mod:`hwgen.passes.merge_pairs`). Both record the naive adder count so the
report can show what merging saved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from hwgen.errors import TwnError
from hwgen.ir import AdderGraph, Layer, LinearLayer, Network
from hwgen.passes.naive_tree import naive_adder_count, naive_adder_graph

__all__ = ["ADDER_GRAPH_METHODS", "BuildAdderGraphs"]

ADDER_GRAPH_METHODS = ("naive", "merged")


def _merged(weights, max_depth: int | None) -> AdderGraph:  # type: ignore[no-untyped-def]
    from hwgen.passes.merge_pairs import merged_adder_graph_cached

    return merged_adder_graph_cached(weights, max_depth=max_depth)


@dataclass(frozen=True)
class BuildAdderGraphs:
    name: ClassVar[str] = "build-adder-graphs"
    method: str = "merged"
    max_depth: int | None = None

    def apply(self, network: Network) -> Network:
        if self.method not in ADDER_GRAPH_METHODS:
            raise TwnError(f"--adder-graph must be one of {', '.join(ADDER_GRAPH_METHODS)}, not {self.method!r}")
        layers: list[Layer] = []
        for layer in network.layers:
            if not isinstance(layer, LinearLayer):
                layers.append(layer)
                continue
            if self.method == "naive":
                graph = naive_adder_graph(layer.weights)
            else:
                graph = _merged(layer.weights, self.max_depth)
            layers.append(replace(layer, adder_graph=graph, naive_adders=naive_adder_count(layer.weights)))
        return network.with_layers(tuple(layers))
