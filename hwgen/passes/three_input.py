"""Regroup an adder graph's private sums into three-input adders.

On 6-input-LUT fabric a registered three-operand adder costs about what a
two-operand one does: one register of the result instead of two, one
pipeline stage instead of two, and in Vivado (which maps ``a + b + c`` to one
LUT6_2 per bit on the carry chain) about half the LUTs of the two adders it
replaces. Yosys builds it from two carry chains, so its LUT count stays that
of the two adders; the registers and the stage are saved in both.

The merging and tree passes build two-input graphs. Here every node read by
exactly one other node (and not an output) is dissolved into its reader:
each remaining node (shared by several readers, or an output) becomes the
root of a sum of signed, shifted *terms* (inputs or other roots), which is
rebuilt as a tree of three-input adders, shallowest terms first, taking a
third term only when it arrives no later than the first two (so no term
waits for a deeper one and no alignment delay is added). Shared
subexpressions stay shared; the additions are the same number (a three-input
node counts two), and the graph computes the same matrix (checked by the
tests with :meth:`AdderGraph.coefficients`).

On a 192x64 ternary layer at 70% zeros (a TW-64 conv layer's shape) with
16-bit inputs, registered bits (nodes and alignment delays, as
:class:`hwgen.plan.dense.LayerPlan` lays them out) fall from 44,472 to 31,197
(-30%) and the depth from 7 to 6 for the merged graph, and from 67,885 to
35,656 (-47%), depth 7 to 4, for the naive trees (``tests/test_three_input.py``).
Yosys on a merged 32x96 layer: ``bench/three_input.py`` and ``docs/precision.md``.
"""

from __future__ import annotations

import heapq
import weakref
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from hwgen.ir import AdderGraph, AddNode, Layer, LinearLayer, Network, Operand
from hwgen.plan.bit_serial import THREE_INPUT_MAX_DIGIT

__all__ = ["ThreeInputAdders", "regroups", "three_input_graph"]


def _shifted(op: Operand, negate: bool, shift: int) -> Operand:
    return Operand(op.value, op.negate != negate, op.shift + shift)


def three_input_graph(graph: AdderGraph) -> AdderGraph:
    """The same matrix as ``graph`` with its single-reader sums regrouped into three-input nodes.

    Kept on the (immutable) graph: the scheduler costs the regrouped graph and
    :class:`ThreeInputAdders` then builds it, seconds each on a large layer."""
    key = id(graph)
    kept = _REGROUPED.get(key)
    if kept is not None and kept[0]() is graph:
        return kept[1]
    regrouped = _regrouped(graph)
    _REGROUPED[key] = (weakref.ref(graph), regrouped)
    weakref.finalize(graph, _REGROUPED.pop, key, None)
    return regrouped


#: Regrouped graphs by the identity of their source graph, while it lives (not in the graph
#: itself, which is pickled to the Verilog workers).
_REGROUPED: dict[int, tuple[weakref.ref[AdderGraph], AdderGraph]] = {}


def _regrouped(graph: AdderGraph) -> AdderGraph:
    n = graph.n_inputs
    readers = [0] * graph.n_values
    for node in graph.nodes:
        for op in node.operands:
            readers[op.value] += 1
    for out in graph.outputs:
        if out is not None:
            readers[out.value] += 2  # an output is never dissolved
    nodes: list[AddNode] = []
    depth = [0] * n
    # The new graph's operand for each old value that survives (inputs and roots).
    new_value: dict[int, Operand] = {j: Operand(j) for j in range(n)}

    def collect(op: Operand, terms: list[Operand]) -> None:
        if op.value >= n and readers[op.value] == 1:
            for sub in graph.nodes[op.value - n].operands:
                collect(_shifted(sub, op.negate, op.shift), terms)
        else:
            root = new_value[op.value]
            terms.append(_shifted(root, op.negate, op.shift))

    def add(parts: list[Operand]) -> Operand:
        # Lowest shift to the result, at most one negated operand (the sign moves to the reader).
        low = min(p.shift for p in parts)
        parts = [Operand(p.value, p.negate, p.shift - low) for p in parts]
        negate = 2 * sum(p.negate for p in parts) > len(parts)
        if negate:
            parts = [Operand(p.value, not p.negate, p.shift) for p in parts]
        parts.sort(key=lambda p: p.negate)  # positive operands first
        nodes.append(AddNode(*parts))
        depth.append(1 + max(depth[p.value] for p in parts))
        return Operand(n + len(nodes) - 1, negate, low)

    for k, node in enumerate(graph.nodes):
        if readers[n + k] == 1:
            continue  # summed by the root that reads it
        terms: list[Operand] = []
        for op in node.operands:
            collect(op, terms)
        heap = [(depth[t.value], i, t) for i, t in enumerate(terms)]
        heapq.heapify(heap)
        tick = len(heap)
        while len(heap) > 1:
            parts = [heapq.heappop(heap)[2], heapq.heappop(heap)[2]]
            if heap and heap[0][0] <= max(depth[p.value] for p in parts):
                parts.append(heapq.heappop(heap)[2])
            made = add(parts)
            heapq.heappush(heap, (depth[made.value], tick, made))
            tick += 1
        new_value[n + k] = heap[0][2]
    outputs = tuple(None if o is None else _shifted(new_value[o.value], o.negate, o.shift) for o in graph.outputs)
    regrouped = AdderGraph(n, tuple(nodes), outputs)
    # A cheap guard on an algebraic rewrite (the tests check coefficients exactly).
    probe = np.random.default_rng(0).integers(-(1 << 20), 1 << 20, size=(2, n))
    if not np.array_equal(regrouped.evaluate(probe), graph.evaluate(probe)):
        raise AssertionError("three-input regrouping changed the graph's function")
    return regrouped


def regroups(digit_bits: int) -> bool:
    """Whether a layer at ``digit_bits`` (0: parallel) gets a three-input graph: parallel and
    bit-serial. Wider digit-serial three-operand adders cost more LUTs than two two-operand
    ones (:data:`hwgen.plan.bit_serial.THREE_INPUT_MAX_DIGIT`)."""
    return digit_bits <= THREE_INPUT_MAX_DIGIT


@dataclass(frozen=True)
class ThreeInputAdders:
    """Three-input adder graphs for every layer realised as an adder graph where they pay
    (:func:`regroups`: fully parallel and bit-serial layers)."""

    name: ClassVar[str] = "three-input-adders"

    def apply(self, network: Network) -> Network:
        layers: list[Layer] = []
        for layer in network.layers:
            if (
                isinstance(layer, LinearLayer)
                and layer.adder_graph is not None
                and regroups(layer.digit_bits)
                and layer.realisation == "graph"
            ):
                layer = replace(layer, adder_graph=three_input_graph(layer.adder_graph))
            layers.append(layer)
        return network.with_layers(tuple(layers))
