"""Gateware for one layer's adder graph, fully parallel and pipelined."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.ir import AddNode, Operand
from hwgen.plan.dense import LayerPlan

__all__ = ["AdderGraphPipeline"]


class AdderGraphPipeline(wiring.Component):
    """Every node of an adder graph as a registered two- or three-input adder.

    Latency is ``plan.adder_latency`` cycles (the graph depth). Operands
    produced earlier than a node needs them pass through reset-less delay
    registers (one chain per value, shared by all its users, so synthesis can
    map them to shift-register LUTs).

    Parameters
    ----------
    plan : LayerPlan
        The layer's widths and delays.

    Members
    -------
    x : In(ArrayLayout(signed(plan.in_bits), n_inputs))
        Input vector, sampled every cycle.
    y : Out(ArrayLayout(signed(w), n_outputs))
        ``y[i]`` is the value of the graph's output operand ``i`` before its
        sign and shift (the requantiser applies those); zero for an all-zero
        row. ``w`` is the widest output value.
    """

    def __init__(self, plan: LayerPlan) -> None:
        self._plan = plan
        graph = plan.graph
        self.out_bits = out_bits = plan.graph_out_bits
        super().__init__(
            {
                "x": In(data.ArrayLayout(signed(plan.in_bits), graph.n_inputs)),
                "y": Out(data.ArrayLayout(signed(out_bits), len(graph.outputs))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self._plan
        graph = plan.graph
        depths = graph.depths
        values: list[Value] = [self.x[j] for j in range(graph.n_inputs)]
        # delayed[v][k] is value v delayed by k cycles.
        delayed: dict[int, list[Value]] = {}

        def at(value: int, lag: int) -> Value:
            chain = delayed.setdefault(value, [values[value]])
            while len(chain) <= lag:
                reg = Signal(signed(plan.value_bits[value]), name=f"v{value}_d{len(chain)}", reset_less=True)
                m.d.sync += reg.eq(chain[-1])
                chain.append(reg)
            return chain[lag]

        def magnitude(op: Operand, lag: int) -> Value:
            v = at(op.value, lag)
            return v << op.shift if op.shift else v

        def node_sum(node: AddNode, ready: int) -> Value:
            # Positive operands first, each negated one subtracted (never a negation plus an
            # addition): synthesis folds an inverted operand into the carry chain's propagate
            # LUTs only as a subtrahend. The graph passes negate at most one operand per node.
            ops = sorted(node.operands, key=lambda op: op.negate)
            total = magnitude(ops[0], ready - depths[ops[0].value])
            if ops[0].negate:
                total = -total
            for op in ops[1:]:
                v = magnitude(op, ready - depths[op.value])
                total = total - v if op.negate else total + v
            return total

        for k, node in enumerate(graph.nodes):
            index = graph.n_inputs + k
            ready = depths[index] - 1
            reg = Signal(signed(plan.value_bits[index]), name=f"n{k}", reset_less=True)
            m.d.sync += reg.eq(node_sum(node, ready))
            values.append(reg)

        for i, out in enumerate(graph.outputs):
            if out is None:
                m.d.comb += self.y[i].eq(0)
            else:
                m.d.comb += self.y[i].eq(at(out.value, plan.adder_latency - depths[out.value]))
        return m
