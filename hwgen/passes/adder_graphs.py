"""Give every layer the adder graph that realises its integer weight matrix.

``method="naive"`` builds one pruned balanced tree per output;
``method="merged"`` shares common signed subexpressions between outputs
(:mod:`hwgen.passes.merge_pairs`). Both record the naive adder count so the
report can show what merging saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

from hwgen.errors import TwnError
from hwgen.ir import AdderGraph, Layer, LinearLayer, Network
from hwgen.passes.naive_tree import naive_adder_count, naive_adder_graph

__all__ = ["ADDER_GRAPH_METHODS", "BuildAdderGraphs"]

ADDER_GRAPH_METHODS = ("naive", "merged")


def _merged(weights, max_depth: int | None) -> AdderGraph:  # type: ignore[no-untyped-def]
    from hwgen.passes.merge_pairs import merged_adder_graph_cached

    return merged_adder_graph_cached(weights, max_depth=max_depth)


def _merged_job(job: tuple[int, object, int | None]) -> tuple[int, AdderGraph]:
    k, weights, max_depth = job
    return k, _merged(weights, max_depth)


@dataclass(frozen=True)
class BuildAdderGraphs:
    """Adder graphs for every linear layer; merged graphs of several layers are
    computed in ``jobs`` worker processes (default: the machine's cores). The
    result does not depend on the number of workers (each graph is a pure
    function of its weights).

    ``on_layer(done, total)`` is called (in this process) each time a layer's graph is
    ready, for progress displays; it does not change the result."""

    name: ClassVar[str] = "build-adder-graphs"
    method: str = "merged"
    max_depth: int | None = None
    jobs: int | None = None
    on_layer: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)

    def apply(self, network: Network) -> Network:
        if self.method not in ADDER_GRAPH_METHODS:
            raise TwnError(f"--adder-graph must be one of {', '.join(ADDER_GRAPH_METHODS)}, not {self.method!r}")
        linear = [layer for layer in network.layers if isinstance(layer, LinearLayer)]
        if self.method == "naive":
            graphs = []
            for linear_layer in linear:
                graphs.append(naive_adder_graph(linear_layer.weights))
                self._done(len(graphs), len(linear))
        else:
            graphs = self._merged_graphs([layer.weights for layer in linear])
        by_name = dict(zip((layer.name for layer in linear), graphs, strict=True))
        layers: list[Layer] = []
        for layer in network.layers:
            if not isinstance(layer, LinearLayer):
                layers.append(layer)
                continue
            graph = by_name[layer.name]
            layers.append(replace(layer, adder_graph=graph, naive_adders=naive_adder_count(layer.weights)))
        return network.with_layers(tuple(layers))

    def _done(self, done: int, total: int) -> None:
        if self.on_layer is not None:
            self.on_layer(done, total)

    def _merged_graphs(self, matrices: list) -> list[AdderGraph]:  # type: ignore[type-arg]
        import os

        # Small layers are not worth a process; large ones run side by side.
        big = [k for k, w in enumerate(matrices) if w.size >= 20_000]
        workers = min(len(big), self.jobs or os.cpu_count() or 1)
        graphs: dict[int, AdderGraph] = {}
        if workers > 1:
            import multiprocessing

            # Largest first, so the workers finish together.
            order = sorted(big, key=lambda k: -matrices[k].size)
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                # Counted here, in the parent, as each worker hands back a layer.
                jobs = [(k, matrices[k], self.max_depth) for k in order]
                for k, graph in pool.imap_unordered(_merged_job, jobs, chunksize=1):
                    graphs[k] = graph
                    self._done(len(graphs), len(matrices))
        for k, w in enumerate(matrices):
            if k not in graphs:
                graphs[k] = _merged(w, self.max_depth)
                self._done(len(graphs), len(matrices))
        return [graphs[k] for k in range(len(matrices))]
