"""The plan of a digit-serial adder graph: word length, delays, latency and area counts.

Pure Python (no Amaranth), shared by the gateware
(:class:`hwgen.backend.serial_graph.SerialAdderGraph`, which builds exactly
this) and by estimators and schedulers, which count it. One source for delays
means the estimate and the RTL cannot drift apart.

Serial format
-------------
A value travels as a *word* of ``D = ceil(W / d)`` digits of ``d`` bits, least
significant digit first, one digit per cycle, with a ``first`` strobe on the
first digit. The word carries ``D * d`` bits (``serial_bits``), at least the
word length ``W``; digit-serial addition, negation and left shifts are exact
modulo ``2**serial_bits``.

Why the word length only has to cover the *outputs*: addition, negation and
left shifts modulo ``2**N`` are ring operations, so every value of the graph is
congruent to its true value modulo ``2**N`` whatever happens to intermediate
values; an output whose true value lies in ``[-2**(N-1), 2**(N-1))`` is
therefore recovered exactly when its word is read back as a signed ``N``-bit
number. Intermediate values may wrap freely (an intermediate can be wider than
every output when a merged graph later cancels terms).

Timing of a graph at digit width ``d``: every node is a registered serial
adder (one cycle), so a node at depth ``k`` reads its operands' digits at stage
``k - 1`` and the graph's latency is its depth in cycles, for any ``d``. A left
shift of an operand by ``s = q*d + r`` bits is a bit delay: it reads the
operand's delay line ``ceil(s / d)`` digits further back, with zero fill at
the word start (the shared ``first`` strobe line says which of those digits
still belong to the current word).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

from hwgen.ir.adder_graph import AdderGraph, Operand
from hwgen.ir.widths import signed_bits_for_range

__all__ = [
    "AREA_MODEL",
    "SRL_MAX_LENGTH",
    "SRL_MIN_LENGTH",
    "AreaModel",
    "SerialGraphPlan",
    "digits_per_word",
    "serial_word_bits",
    "shift_register_cells",
]


#: Yosys ``xilinx_srl -fixed -minlen 3`` (in ``synth_xilinx``): shorter register chains stay flip-flops.
SRL_MIN_LENGTH = 3
#: Stages of one SRLC32E.
SRL_MAX_LENGTH = 32


def shift_register_cells(length: int) -> tuple[int, int]:
    """``(SRLs, flip-flops)`` a one-bit, ``length``-stage register chain without taps maps to.

    The mapping of Yosys's ``synth_xilinx``, measured on :class:`~hwgen.backend.serial.DelayLine`:
    full 32-stage SRLs, then one SRL for a remainder of at least 3 stages, flip-flops for 1 or 2.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, not {length!r}")
    full, rest = divmod(length, SRL_MAX_LENGTH)
    if rest >= SRL_MIN_LENGTH:
        return full + 1, 0
    return full, rest


def digits_per_word(word_bits: int, digit_bits: int) -> int:
    """``ceil(word_bits / digit_bits)``: cycles a word occupies on a ``digit_bits`` wide stream."""
    if not isinstance(word_bits, int) or word_bits < 1:
        raise ValueError(f"word_bits must be a positive integer, not {word_bits!r}")
    if not isinstance(digit_bits, int) or digit_bits < 1:
        raise ValueError(f"digit_bits must be a positive integer, not {digit_bits!r}")
    return -(-word_bits // digit_bits)


#: The two ways to serialise a layer's inputs (see :mod:`hwgen.backend.serial`).
INPUT_CONVERTERS = ("shift", "select")


def input_converter_costs(word_bits: int, digit_bits: int, in_bits: int) -> dict[str, tuple[float, float]]:
    """(LUT sites, flip-flops) per input of each input converter, as Yosys ``synth_xilinx`` maps them.

    ``shift``: :class:`~hwgen.backend.serial.ParallelToSerial`, a loadable
    shift register of the whole word (``D*d + 1`` FF; a LUT per bit, fewer
    when the sign extension repeats a bit). ``select``: one lane of
    :class:`~hwgen.backend.serial.SerialInputs`, the value held as it is and a
    registered multiplexer over its ``k = own digits + 2`` choices per digit
    bit; measured on 16 lanes at (W, d, in_bits) = (22, 1, 17), (22, 1, 2),
    (22, 2, 17), (22, 4, 17), (22, 11, 17), (10, 1, 3), (10, 3, 5),
    (16, 2, 9), (24, 8, 17), (22, 6, 9): ``0.7 k - 1.2`` LUTs per digit bit
    (within 1.6 LUT per lane of every point) and ``in_bits + d`` FFs.
    """
    digits = digits_per_word(word_bits, digit_bits)
    own = min(digits, -(-in_bits // digit_bits))
    return {
        "shift": (float(min(word_bits, in_bits + 1)), float(digits * digit_bits + 1)),
        "select": (digit_bits * max(1.0, 0.7 * (own + 2) - 1.2), float(in_bits + digit_bits)),
    }


def input_converter(word_bits: int, digit_bits: int, in_bits: int) -> str:
    """The input converter with fewer LUT sites (then flip-flops), as the backend builds it."""
    costs = input_converter_costs(word_bits, digit_bits, in_bits)
    return min(INPUT_CONVERTERS, key=lambda k: costs[k])


def serial_word_bits(graph: AdderGraph, lo: int, hi: int) -> int:
    """Word length that makes every output of ``graph`` exact when each input lies in ``[lo, hi]``.

    The widest output *value* (before the output operand's sign and shift,
    which the consumer applies), from :meth:`AdderGraph.value_ranges`. Inputs
    and intermediate values need not fit (see the module docstring); a graph
    without outputs needs one bit.
    """
    ranges = graph.value_ranges(lo, hi)
    return max((signed_bits_for_range(*ranges[o.value]) for o in graph.outputs if o is not None), default=1)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


#: Widest digit at which nodes are merged into three-input adders (see :attr:`SerialGraphPlan.ops`).
#: Measured with Yosys synth_xilinx on a 32x96 ternary layer's naive tree (docs/area_model.md):
#: bit-serial, 1,228 two-input adders -> 811 adders of which 417 three-input: 2,456 -> 2,039 LUT,
#: 2,467 -> 2,351 FF; at d = 2 and 4 the three-operand sums map to two carry chains and cost more
#: LUTs (3,288 -> 4,144 at d = 2), so wider digits keep two-input adders.
THREE_INPUT_MAX_DIGIT = 1
#: LUTs of a bit-serial three-input adder (sum and two carry bits, one LUT6 each; measured exactly).
LUT_PER_THREE_INPUT_BIT_SERIAL_ADDER = 3.0


@dataclass(frozen=True)
class SerialOp:
    """One registered digit-serial adder: the graph node whose value it produces, the
    cycle (stage) in which it adds, and its two or three operands."""

    node: int
    stage: int
    operands: tuple[Operand, ...]


@dataclass(frozen=True, eq=False)
class SerialGraphPlan:
    """Every delay, latency and area count of ``graph`` realised at digit width ``digit_bits``.

    Parameters
    ----------
    graph : AdderGraph
        The adder graph.
    digit_bits : int
        Bits processed per cycle, ``d >= 1``.
    word_bits : int
        Word length ``W >= 1`` (see :func:`serial_word_bits`).
    three_input : bool, optional
        Merge node pairs into three-input adders (:attr:`ops`); by default at
        ``d <= THREE_INPUT_MAX_DIGIT``, where it saves area.
    """

    graph: AdderGraph
    digit_bits: int
    word_bits: int
    three_input: bool | None = None

    def __post_init__(self) -> None:
        digits_per_word(self.word_bits, self.digit_bits)  # validates both

    @property
    def digits(self) -> int:
        """``D``: digits (cycles) per word."""
        return digits_per_word(self.word_bits, self.digit_bits)

    @property
    def serial_bits(self) -> int:
        """``D * d``: bits a word really carries (arithmetic is modulo ``2**serial_bits``)."""
        return self.digits * self.digit_bits

    @property
    def cycles_per_word(self) -> int:
        """Initiation interval: a new word may start every ``D`` cycles."""
        return self.digits

    @property
    def latency(self) -> int:
        """Cycles from an input digit to the matching output digit: the graph depth."""
        return self.graph.depth

    @cached_property
    def ops(self) -> tuple[SerialOp, ...]:
        """The registered adders, in node order.

        With :attr:`three_input`, a node ``j`` whose value one other node ``k``
        reads, unshifted, in the cycle it is produced (and nothing else: not
        an output) is merged into ``k``: ``k`` adds ``j``'s two operands (one
        cycle later, signs folded in) and its own other operand in one
        three-input adder, and ``j``'s sum and carry registers disappear.
        Every other value keeps its timing, so latency and alignment do not
        change. Nodes are visited in order; a node that absorbed one is not
        absorbed itself.
        """
        graph = self.graph
        n, depths = graph.n_inputs, graph.depths
        merge = self.digit_bits <= THREE_INPUT_MAX_DIGIT if self.three_input is None else self.three_input
        readers: dict[int, int] = {}
        for node in graph.nodes:
            for op in node.operands:
                readers[op.value] = readers.get(op.value, 0) + 1
        for out in graph.outputs:
            if out is not None:
                readers[out.value] = readers.get(out.value, 0) + 2  # never merged away
        absorbed: dict[int, tuple[int, Operand]] = {}  # k -> (j, k's operand reading j)
        taken: set[int] = set()
        for k, node in enumerate(graph.nodes):
            if not merge:
                break
            if node.c is not None:
                continue  # already three-input (hwgen.passes.three_input)
            stage = depths[n + k] - 1
            for op in (node.a, node.b):
                j = op.value - n
                if (
                    j >= 0
                    and graph.nodes[j].c is None
                    and op.shift == 0
                    and readers[op.value] == 1
                    and depths[op.value] == stage
                    and j not in absorbed
                    and j not in taken
                ):
                    absorbed[k] = (j, op)
                    taken.add(j)
                    break
        ops = []
        for k, node in enumerate(graph.nodes):
            if k in taken:
                continue
            stage = depths[n + k] - 1
            if k in absorbed:
                j, via = absorbed[k]
                other = node.b if via is node.a else node.a
                inner = graph.nodes[j]
                flip = via.negate
                ops.append(
                    SerialOp(
                        k,
                        stage,
                        (
                            other,
                            Operand(inner.a.value, inner.a.negate != flip, inner.a.shift),
                            Operand(inner.b.value, inner.b.negate != flip, inner.b.shift),
                        ),
                    )
                )
            else:
                ops.append(SerialOp(k, stage, node.operands))
        return tuple(ops)

    @property
    def three_input_adders(self) -> int:
        """Adders with three operands."""
        return sum(1 for op in self.ops if len(op.operands) == 3)

    def operand_lag(self, op: SerialOp, operand: Operand) -> int:
        """Cycles adder ``op`` reads ``operand``'s value behind its production (before shift)."""
        return op.stage - self.graph.depths[operand.value]

    def shift_digits(self, shift: int) -> int:
        """Extra digits of delay a left shift by ``shift`` bits reads: ``ceil(shift / d)``."""
        return _ceil_div(shift, self.digit_bits)

    def operand_taps(self, op: SerialOp, operand: Operand) -> tuple[int, ...]:
        """Lags of ``operand``'s delay line that adder ``op`` reads (two for a shift by a non-multiple of d)."""
        lag = self.operand_lag(op, operand)
        q, r = divmod(operand.shift, self.digit_bits)
        return (lag + q, lag + q + 1) if r else (lag + q,)

    @cached_property
    def taps(self) -> dict[int, tuple[int, ...]]:
        """Sorted lags read from every value's delay line (0: the value itself)."""
        used: dict[int, set[int]] = {}
        for op in self.ops:
            for operand in op.operands:
                used.setdefault(operand.value, set()).update(self.operand_taps(op, operand))
        depths = self.graph.depths
        for out in self.graph.outputs:
            if out is not None:
                used.setdefault(out.value, set()).add(self.latency - depths[out.value])
        return {v: tuple(sorted(lags)) for v, lags in sorted(used.items())}

    @cached_property
    def delays(self) -> dict[int, int]:
        """Delay-line length in digits (cycles) of every value that needs one; one line per value, shared."""
        return {v: lags[-1] for v, lags in self.taps.items() if lags[-1] > 0}

    @cached_property
    def strobe_delay(self) -> int:
        """Length of the ``first`` strobe line: output strobe, every node's carry preset, shifted operands' fill."""
        longest = self.latency
        for op in self.ops:
            longest = max(longest, op.stage)
            for operand in op.operands:
                # Zero fill of digit lag j needs the strobes of stages stage .. stage + j - 1.
                longest = max(longest, op.stage + self.shift_digits(operand.shift) - 1)
        return longest

    # Area counts ---------------------------------------------------------
    #
    # Before synthesis: registers as built. After: what Yosys synth_xilinx maps them to
    # (SRLs for reset-less chains of >= 3 stages, unused bits removed), so an estimator
    # can count without running it.

    @property
    def adders(self) -> int:
        """Registered adders (two- and three-input)."""
        return len(self.ops)

    @cached_property
    def distinct_adders(self) -> int:
        """Adders with distinct operand pairs.

        Naive trees repeat a pair (``x0 + x1``) in several rows. At ``d >= 2`` the
        per-bit sum LUTs of such twins read the same signals and synthesis keeps one
        copy (their carry chains and registers stay apart: each carry feeds back on
        itself); at ``d = 1`` the carry is inside the LUT and nothing is shared.
        """
        return len({tuple(sorted((o.value, o.negate, o.shift) for o in op.operands)) for op in self.ops})

    @property
    def adder_bits(self) -> int:
        """Sum bits over all adders: ``adders * d``."""
        return self.adders * self.digit_bits

    @property
    def carry_bits(self) -> int:
        """Carry registers: one bit per two-input adder, two for three operands or two negated ones."""
        return sum(1 if len(op.operands) == 2 and not all(o.negate for o in op.operands) else 2 for op in self.ops)

    @property
    def adder_register_bits(self) -> int:
        """Registered sums: ``adders * d`` flip-flops as built."""
        return self.adders * self.digit_bits

    @property
    def delay_bits(self) -> int:
        """Reset-less delay-line flip-flops as built: ``d`` times the sum of :attr:`delays`."""
        return self.digit_bits * sum(self.delays.values())

    @property
    def register_bits(self) -> int:
        """Flip-flops as built, before synthesis: sums, carries, delay lines and the strobe line."""
        return self.adder_register_bits + self.carry_bits + self.delay_bits + self.strobe_delay

    @cached_property
    def bit_taps(self) -> dict[int, tuple[tuple[int, tuple[int, ...]], ...]]:
        """For every value, the sorted lags at which each bit of its digit is read, as runs of
        adjacent bits read at the same lags: ``((bits, lags), ...)`` covering the ``d`` bits.

        A shift by ``q*d + r`` bits (``r > 0``) reads the low ``d - r`` bits at lag ``q`` and only
        the high ``r`` bits at lag ``q + 1``. Runs, not one entry per bit: every read covers a
        range of bits, and a wide digit over a large graph would otherwise cost ``d`` sets per value.
        """
        d = self.digit_bits
        reads: dict[int, list[tuple[int, int, int]]] = {}  # value -> (lag, first bit, end bit)

        def read(value: int, lag: int, first: int, end: int) -> None:
            entry = reads.get(value)
            if entry is None:
                entry = reads[value] = []
            entry.append((lag, first, end))

        for op in self.ops:
            for operand in op.operands:
                lag = self.operand_lag(op, operand)
                q, r = divmod(operand.shift, d)
                read(operand.value, lag + q, 0, d - r)
                if r:
                    read(operand.value, lag + q + 1, d - r, d)
        depths = self.graph.depths
        for out in self.graph.outputs:
            if out is not None:
                read(out.value, self.latency - depths[out.value], 0, d)
        taps: dict[int, tuple[tuple[int, tuple[int, ...]], ...]] = {}
        for value, entries in sorted(reads.items()):
            if all(e[1] == 0 and e[2] == d for e in entries):  # no shift by a part of a digit: one run
                taps[value] = ((d, tuple(sorted({e[0] for e in entries}))),)
                continue
            cuts = sorted({0, d, *(e[1] for e in entries), *(e[2] for e in entries)})
            taps[value] = tuple(
                (b - a, tuple(sorted({lag for lag, first, end in entries if first <= a < end})))
                for a, b in itertools.pairwise(cuts)
            )
        return taps

    @cached_property
    def _mapped_delays(self) -> tuple[int, int, int]:
        """``(SRL cells, delay flip-flops, sum flip-flops absorbed into SRLs)`` after synthesis.

        Each bit's delay line is cut at every lag that is read (a read stage ends a
        shift register); a piece of n stages maps as :func:`shift_register_cells` says.
        When a node's sum bit itself is never read undelayed, its (reset-less) sum
        register is the first stage of the first piece.
        """
        srl = ffs = absorbed = 0
        for value, runs in self.bit_taps.items():
            is_node = value >= self.graph.n_inputs
            for bits, lags in runs:
                previous = 0
                for lag in lags:
                    if lag > previous:
                        length = lag - previous
                        if previous == 0 and is_node and length + 1 >= SRL_MIN_LENGTH:
                            cells, rest = shift_register_cells(length + 1)
                            absorbed += bits
                        else:
                            cells, rest = shift_register_cells(length)
                        srl += bits * cells
                        ffs += bits * rest
                    previous = lag
        return srl, ffs, absorbed

    @property
    def delay_srl_cells(self) -> int:
        """SRL cells (LUT sites) the delay lines map to."""
        return self._mapped_delays[0]

    @property
    def delay_flip_flops(self) -> int:
        """Delay stages left as flip-flops after SRL mapping (pieces of 1 or 2 stages)."""
        return self._mapped_delays[1]

    @property
    def flip_flops(self) -> int:
        """Flip-flops after synthesis: sums (less those absorbed into SRLs), carries, short delays, strobes.

        An upper bound of Yosys's count: it also drops the sum bits nobody reads.
        """
        _, ffs, absorbed = self._mapped_delays
        return self.adder_register_bits - absorbed + self.carry_bits + ffs + self.strobe_delay

    @property
    def delay_lines(self) -> int:
        """Number of (value) delay lines, each ``d`` bits wide."""
        return len(self.delays)

    @property
    def negated_operands(self) -> int:
        """Node operands that are negated (inverted into their adder)."""
        return sum(1 for op in self.ops for operand in op.operands if operand.negate)

    @property
    def shifted_operands(self) -> int:
        """Node operands with a nonzero shift (no adder or register of their own)."""
        return sum(1 for op in self.ops for operand in op.operands if operand.shift)


@dataclass(frozen=True)
class AreaModel:
    """LUT/FF model of a digit-serial adder graph, calibrated against Yosys ``synth_xilinx``.

    ``lut`` counts LUT sites: the adders' logic plus the SRLs of the delay lines.
    At ``d = 1`` an adder is ``lut_per_bit_serial_adder`` LUTs (sum and carry, each
    a LUT4 of both operand bits, the carry and the strobe); at ``d >= 2`` it is a
    carry chain: ``lut_per_sum_bit`` per bit of each distinct adder (twins share
    their sum LUTs) plus ``lut_per_adder`` per adder (carry out and preset).
    Subtracted operands cost nothing more: the backend writes each digit adder as
    one two-operand addition with the subtrahend inverted, which Yosys folds into
    the propagate LUTs (the calibration in ``docs/area_model.md`` predates that and
    lists the separate ``INV`` cells the three-term form left, not counted here).
    ``ff`` is :attr:`SerialGraphPlan.flip_flops`,
    a count. Coefficients and their error against Yosys are in
    ``docs/area_model.md``, regenerated by ``bench/area_model.py``.
    """

    lut_per_bit_serial_adder: float
    lut_per_sum_bit: float
    lut_per_adder: float

    def logic_lut(self, plan: SerialGraphPlan) -> float:
        if plan.digit_bits == 1:
            three = plan.three_input_adders
            return self.lut_per_bit_serial_adder * (plan.adders - three) + LUT_PER_THREE_INPUT_BIT_SERIAL_ADDER * three
        return self.lut_per_sum_bit * plan.digit_bits * plan.distinct_adders + self.lut_per_adder * plan.adders

    def lut(self, plan: SerialGraphPlan) -> float:
        return self.logic_lut(plan) + plan.delay_srl_cells

    def ff(self, plan: SerialGraphPlan) -> int:
        return plan.flip_flops


#: Fitted by ``bench/area_model.py`` against Yosys 0.70 (``docs/area_model.md``: error and data).
AREA_MODEL = AreaModel(lut_per_bit_serial_adder=2.0, lut_per_sum_bit=0.971, lut_per_adder=1.19)
