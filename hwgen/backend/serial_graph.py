"""Gateware for one adder graph in digit-serial arithmetic, at any digit width."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.backend.serial import _delay_chain, _serial_sum, _shifted_digit
from hwgen.ir import AdderGraph, Operand
from hwgen.plan.bit_serial import SerialGraphPlan

__all__ = ["SerialAdderGraph"]


class SerialAdderGraph(wiring.Component):
    """Every node of an adder graph as a registered digit-serial adder, ``d`` bits per cycle.

    Each input and output is its own stream of ``d``-bit digits in the serial
    format of :mod:`hwgen.backend.serial`: words of ``D = ceil(W / d)``
    digits, least significant first, all inputs of a vector in the same
    cycles under one ``first`` strobe; a new vector may start in the cycle
    after the previous one's last digit, or later.

    Latency is ``plan.latency`` cycles (the graph depth) from an input digit
    to the same digit of the outputs, whatever ``d``; a vector occupies ``D``
    cycles (the initiation interval at full rate). Each node is the logic of a
    :class:`~hwgen.backend.serial.SerialAdder` built inline (no module per
    node): operand inversion with the carry preset at the word start, a
    one-cycle registered sum. Operands produced earlier than a node needs them
    come from reset-less delay lines, one chain per value shared by all its
    users (so synthesis maps them to SRLs); a left-shifted operand reads that
    chain further back, with zero fill at the word start, and costs no adder
    or register of its own. The ``first`` strobe travels along one shared
    (reset) register chain.

    Outputs are the values of the graph's output operands *before* their sign
    and shift (the consumer, e.g. the requantiser, folds those in), as in
    :class:`~hwgen.backend.parallel_graph.AdderGraphPipeline`; an all-zero row
    gives zero digits. An output word read as a signed ``D * d``-bit number
    (or its low ``W`` bits) is exact when ``W >= serial_word_bits(graph, lo,
    hi)`` and the inputs lie in ``[lo, hi]``; intermediate values may wrap.

    Parameters
    ----------
    graph : AdderGraph
        The graph.
    digit_bits : int
        ``d``, bits per digit (any positive integer).
    word_bits : int
        Word length ``W`` (see :func:`hwgen.plan.bit_serial.serial_word_bits`).
    three_input : bool, optional
        Merge node pairs into three-input adders (:attr:`SerialGraphPlan.ops`;
        default: where it saves area, bit-serial).

    Members
    -------
    x : In(ArrayLayout(unsigned(digit_bits), n_inputs))
        The current digit of every input.
    first : In(1)
        High with the first digit of an input vector's words.
    y : Out(ArrayLayout(unsigned(digit_bits), n_outputs))
        The current digit of every output value, ``latency`` cycles after the
        input digits it derives from.
    y_first : Out(1)
        ``first`` delayed by ``latency``: high with an output word's first digit.
    """

    def __init__(self, graph: AdderGraph, digit_bits: int, word_bits: int, three_input: bool | None = None) -> None:
        if not isinstance(graph, AdderGraph):
            raise TypeError(f"graph must be an AdderGraph, not {graph!r}")
        self.plan = SerialGraphPlan(graph, digit_bits, word_bits, three_input)
        self.latency = self.plan.latency
        super().__init__(
            {
                "x": In(data.ArrayLayout(digit_bits, graph.n_inputs)),
                "first": In(1),
                "y": Out(data.ArrayLayout(digit_bits, len(graph.outputs))),
                "y_first": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self.plan
        graph = plan.graph
        d = plan.digit_bits
        depths = graph.depths
        strobes = _delay_chain(m, self.first, plan.strobe_delay, "first", reset_less=False)
        # chains[v][k]: value v delayed by k cycles, as long as the plan says.
        chains: dict[int, list[Value]] = {}

        def add_value(v: int, digit: Value) -> None:
            chains[v] = _delay_chain(m, digit, plan.delays.get(v, 0), f"v{v}")

        in_word_cache: dict[tuple[int, int], Value] = {}

        def in_word(stage: int, j: int) -> Value:
            # No word start among the strobes of stages stage .. stage + j - 1.
            if j == 0:
                return Value.cast(1)
            key = (stage, j)
            if key not in in_word_cache:
                sig = Signal(name=f"in_word_s{stage}_j{j}")
                m.d.comb += sig.eq(in_word(stage, j - 1) & ~strobes[stage + j - 1])
                in_word_cache[key] = sig
            return in_word_cache[key]

        def operand(op: Operand, stage: int) -> Value:
            lag = stage - depths[op.value]
            chain = chains[op.value]
            if op.shift == 0:
                return chain[lag]
            return _shifted_digit(lambda j: chain[lag + j], lambda j: in_word(stage, j), d, op.shift)

        for j in range(graph.n_inputs):
            add_value(j, self.x[j])
        for op in plan.ops:
            digits = [(operand(o, op.stage), o.negate) for o in op.operands]
            add_value(graph.n_inputs + op.node, _serial_sum(m, digits, strobes[op.stage], f"n{op.node}"))

        for i, out in enumerate(graph.outputs):
            if out is None:
                m.d.comb += self.y[i].eq(0)
            else:
                m.d.comb += self.y[i].eq(chains[out.value][plan.latency - depths[out.value]])
        m.d.comb += self.y_first.eq(strobes[plan.latency])
        return m
