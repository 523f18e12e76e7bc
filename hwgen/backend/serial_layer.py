"""A dense layer's adder graph in digit-serial form, behind parallel ports."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.backend.serial import ParallelToSerial, SerialInputs, SerialToParallel
from hwgen.backend.serial_graph import SerialAdderGraph
from hwgen.plan.bit_serial import input_converter
from hwgen.plan.dense import LayerPlan

__all__ = ["SerialDenseLayer"]


class SerialDenseLayer(wiring.Component):
    """Input converters, a :class:`SerialAdderGraph`, serial-to-parallel converters.

    The inputs are serialised by :class:`SerialInputs` or by one
    :class:`ParallelToSerial` each, whichever
    :func:`hwgen.plan.bit_serial.input_converter` finds cheaper (same timing).

    A vector presented on ``x`` with ``start`` high is serialised into words of
    ``D = ceil(W / d)`` digits; ``plan.adder_latency`` = 1 + graph depth + D
    cycles later ``y`` holds the graph's output values (before their sign and
    shift, like :class:`~hwgen.backend.parallel_graph.AdderGraphPipeline`) and
    keeps them until the next vector's first digit arrives. A new vector may
    start every ``D`` cycles.

    Members
    -------
    x : In(ArrayLayout(signed(plan.in_bits), n_inputs))
        Input vector, sampled when ``start`` is high.
    start : In(1)
        Begin a vector.
    y : Out(ArrayLayout(signed(W), n_outputs))
        Output values.
    """

    def __init__(self, plan: LayerPlan) -> None:
        assert plan.serial, "SerialDenseLayer needs a layer scheduled at a digit width"
        self._plan = plan
        graph = plan.graph
        self.out_bits = plan.layer.word_bits
        super().__init__(
            {
                "x": In(data.ArrayLayout(signed(plan.in_bits), graph.n_inputs)),
                "start": In(1),
                "y": Out(data.ArrayLayout(signed(self.out_bits), len(graph.outputs))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self._plan
        graph = plan.graph
        d, word = plan.layer.digit_bits, plan.layer.word_bits
        m.submodules.graph = core = SerialAdderGraph(graph, d, word)
        if input_converter(word, d, plan.in_bits) == "select":
            m.submodules.p2s = inputs = SerialInputs(graph.n_inputs, word, d, in_bits=plan.in_bits)
            m.d.comb += [inputs.x.eq(self.x), inputs.start.eq(self.start), core.first.eq(inputs.first)]
            for j in range(graph.n_inputs):
                m.d.comb += core.x[j].eq(inputs.o[j])
        else:
            for j in range(graph.n_inputs):
                p2s = ParallelToSerial(word, d, in_bits=plan.in_bits)
                m.submodules[f"p2s{j}"] = p2s
                m.d.comb += [p2s.x.eq(self.x[j]), p2s.start.eq(self.start), core.x[j].eq(p2s.o)]
                if j == 0:
                    m.d.comb += core.first.eq(p2s.first)
        for i in range(len(graph.outputs)):
            s2p = SerialToParallel(word, d)
            m.submodules[f"s2p{i}"] = s2p
            m.d.comb += [s2p.i.eq(core.y[i]), s2p.first.eq(core.y_first), self.y[i].eq(s2p.y)]
        return m
