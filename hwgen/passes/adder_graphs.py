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


def _merged(  # type: ignore[no-untyped-def]
    weights, max_depth: int | None, effort: str, memory_budget: int | None, name: str
) -> AdderGraph:
    from hwgen.passes.merge_pairs import merged_adder_graph_cached

    return merged_adder_graph_cached(
        weights, max_depth=max_depth, effort=effort, memory_budget=memory_budget, name=name
    )


def _merged_job(job: tuple[int, object, int | None, str, int | None, str]) -> tuple[int, AdderGraph]:
    k, weights, max_depth, effort, memory_budget, name = job
    return k, _merged(weights, max_depth, effort, memory_budget, name)


@dataclass(frozen=True)
class BuildAdderGraphs:
    """Adder graphs for every linear layer; merged graphs of several layers are
    computed in ``jobs`` worker processes (default: the machine's cores). The
    result does not depend on the number of workers (each graph is a pure
    function of its weights).

    ``effort`` is the merge effort (``"default"`` or ``"high"``,
    :func:`~hwgen.passes.merge_pairs.merged_adder_graph`); ``memory_budget``
    the bytes all merges together may use (default: half the memory
    available), shared equally by the workers running side by side.

    ``on_layer(done, total)`` is called (in this process) each time a layer's graph is
    ready, for progress displays; it does not change the result."""

    name: ClassVar[str] = "build-adder-graphs"
    method: str = "merged"
    max_depth: int | None = None
    jobs: int | None = None
    effort: str = "default"
    memory_budget: int | None = None
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
            names = [f"layer {layer.name}" for layer in linear]
            graphs = self._merged_graphs([layer.weights for layer in linear], names)
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

    def _merged_graphs(self, matrices: list, names: list[str]) -> list[AdderGraph]:  # type: ignore[type-arg]
        import os

        from hwgen.passes.merge_pairs import EFFORTS, available_memory, default_memory_budget, merge_memory_estimate

        if self.effort not in EFFORTS:
            raise TwnError(f"--merge-effort must be one of {', '.join(EFFORTS)}, not {self.effort!r}")
        # Small layers are not worth a process; large ones run side by side, as many as the
        # memory available now holds (their planned peaks). Every layer plans with the whole
        # budget, so the graphs do not depend on how many run at once.
        big = [k for k, w in enumerate(matrices) if w.size >= 20_000]
        workers = min(len(big), self.jobs or os.cpu_count() or 1)
        budget = default_memory_budget() if self.memory_budget is None else self.memory_budget
        free = available_memory()
        if workers > 1 and free is not None:
            peaks = sorted((min(merge_memory_estimate(matrices[k]), budget) for k in big), reverse=True)
            while workers > 1 and sum(peaks[:workers]) > free:
                workers -= 1
        graphs: dict[int, AdderGraph] = {}
        if workers > 1:
            import multiprocessing

            # Largest first, so the workers finish together.
            order = sorted(big, key=lambda k: -matrices[k].size)
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                # Counted here, in the parent, as each worker hands back a layer.
                jobs = [(k, matrices[k], self.max_depth, self.effort, budget, names[k]) for k in order]
                for k, graph in pool.imap_unordered(_merged_job, jobs, chunksize=1):
                    graphs[k] = graph
                    self._done(len(graphs), len(matrices))
        for k, w in enumerate(matrices):
            if k not in graphs:
                graphs[k] = _merged(w, self.max_depth, self.effort, budget, names[k])
                self._done(len(graphs), len(matrices))
        return [graphs[k] for k in range(len(matrices))]
