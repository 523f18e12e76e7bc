"""Digit-serial primitives and serial adder graphs in Amaranth's simulator, bit-exact against Python integers."""

from __future__ import annotations

import gc
import importlib.util
import random
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, UnusedElaboratable
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.backend.serial import (
    DelayLine,
    ParallelToSerial,
    SerialAdder,
    SerialInputs,
    SerialNegator,
    SerialShifter,
    SerialToParallel,
)
from hwgen.backend.serial_graph import SerialAdderGraph
from hwgen.ir import AdderGraph, AddNode, Operand
from hwgen.passes.merge_pairs import merged_adder_graph
from hwgen.passes.naive_tree import naive_adder_graph
from hwgen.paths import SIM_DIR
from hwgen.plan.bit_serial import SerialGraphPlan, digits_per_word, serial_word_bits

DIGIT_BITS = [1, 2, 3, 4, 8, 16]


# Serial words as Python integers ----------------------------------------------


def wrap(value: int, bits: int) -> int:
    """``value`` modulo ``2**bits`` read as a signed number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def to_digits(value: int, d: int, n: int) -> list[int]:
    return [(value >> (d * t)) & ((1 << d) - 1) for t in range(n)]


def from_digits(digits: Sequence[int], d: int) -> int:
    return wrap(sum(int(g) << (d * t) for t, g in enumerate(digits)), d * len(digits))


def edge_values(bits: int, d: int) -> list[int]:
    """Most negative and positive, around zero, and patterns whose carries cross digits."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    ones = (1 << min(d, bits - 1)) - 1
    return sorted({lo, lo + 1, hi, hi - 1, -1, 0, 1, ones, -ones, wrap(ones << d, bits), hi ^ ones})


def start_cycles(n_words: int, digits: int, gaps: bool, rnd: random.Random, first: int = 1) -> list[int]:
    """Word start cycles: back to back, or (gaps) sometimes back to back, sometimes 1-3 idle cycles apart."""
    starts, c = [], first
    for _ in range(n_words):
        starts.append(c)
        c += digits + (rnd.choice([0, 0, 1, 2, 3]) if gaps else 0)
    return starts


def run_serial(
    dut: object,
    drive: Callable[[object, int, int | None], None],
    sample: Callable[[object], object],
    starts: list[int],
    digits: int,
    tail: int,
) -> list[object]:
    """Clock ``dut``; each cycle ``drive(ctx, cycle, word_index_or_None_if_idle_position)``, then
    ``sample(ctx)`` records the settled outputs. Returns the samples, one per cycle."""
    owner: dict[int, int] = {}
    for w, s in enumerate(starts):
        for t in range(digits):
            owner[s + t] = w
    total = (starts[-1] if starts else 0) + digits + tail
    samples: list[object] = []

    async def bench(ctx):  # type: ignore[no-untyped-def]
        for c in range(total):
            drive(ctx, c, owner.get(c))
            samples.append(sample(ctx))
            await ctx.tick()

    top = Module()
    top.domains.sync = ClockDomain()  # also for combinational designs (a shift by 0, a delay of 0)
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return samples


def serial_words(
    dut: object,
    inputs: dict[str, list[int]],
    outputs: list[str],
    d: int,
    n: int,
    latency: int,
    gaps: bool,
    seed: int,
) -> dict[str, list[int]]:
    """Stream words of ``n`` digits into the scalar digit ports ``inputs`` (with ``first``), garbage in
    idle cycles; read the output ports' words ``latency`` cycles later, as signed ``n*d``-bit values."""
    rnd = random.Random(seed)
    n_words = len(next(iter(inputs.values())))
    starts = start_cycles(n_words, n, gaps, rnd)

    def drive(ctx, cycle, word):  # type: ignore[no-untyped-def]
        for name, words in inputs.items():
            if word is None:
                ctx.set(getattr(dut, name), rnd.getrandbits(d))
            else:
                t = cycle - starts[word]
                ctx.set(getattr(dut, name), to_digits(words[word], d, n)[t])
        ctx.set(dut.first, word is not None and cycle == starts[word])

    samples = run_serial(dut, drive, lambda ctx: {o: ctx.get(getattr(dut, o)) for o in outputs}, starts, n, latency)
    return {
        o: [from_digits([samples[s + latency + t][o] for t in range(n)], d) for s in starts]  # type: ignore[index]
        for o in outputs
    }


def operand_pairs(bits: int, d: int, rnd: random.Random, n_random: int = 24) -> tuple[list[int], list[int]]:
    edges = edge_values(bits, d)
    pairs = [(a, b) for a in edges for b in edges[:: max(1, len(edges) // 6)]]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    pairs += [(rnd.randint(lo, hi), rnd.randint(lo, hi)) for _ in range(n_random)]
    return [a for a, _ in pairs], [b for _, b in pairs]


# Primitives ----------------------------------------------------------------------

# (d, W): several digits per word, non-power-of-two d, and one digit per word (d >= W).
WORDS = [(1, 7), (2, 7), (3, 10), (4, 16), (8, 20), (16, 40), (16, 16), (8, 5)]


@pytest.mark.parametrize("d, word_bits", WORDS)
@pytest.mark.parametrize("negate_a, negate_b", [(False, False), (False, True), (True, False), (True, True)])
def test_serial_adder_is_exact_modulo_the_word(d, word_bits, negate_a, negate_b):
    n = digits_per_word(word_bits, d)
    bits = n * d
    rnd = random.Random(d * 100 + word_bits)
    a, b = operand_pairs(bits, d, rnd)
    dut = SerialAdder(d, negate_a, negate_b)
    got = serial_words(dut, {"a": a, "b": b}, ["s"], d, n, dut.latency, gaps=d % 2 == 1, seed=d)["s"]
    sa, sb = (-1 if negate_a else 1), (-1 if negate_b else 1)
    assert got == [wrap(sa * x + sb * y, bits) for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize("d", DIGIT_BITS)
@pytest.mark.parametrize("gaps", [False, True])
def test_serial_adder_with_shifted_operands(d, gaps):
    n = 3
    bits = n * d
    rnd = random.Random(d)
    a, b = operand_pairs(bits, d, rnd, n_random=12)
    for shift_a, shift_b in [(0, 1), (d, 0), (d + 1, 2 * d - 1), (bits + 1, 1)]:
        for negate_a, negate_b in [(False, True), (True, True)]:
            dut = SerialAdder(d, negate_a, negate_b, shift_a=shift_a, shift_b=shift_b)
            got = serial_words(dut, {"a": a, "b": b}, ["s"], d, n, 1, gaps, seed=shift_a)["s"]
            sa, sb = (-1 if negate_a else 1), (-1 if negate_b else 1)
            want = [wrap(sa * (x << shift_a) + sb * (y << shift_b), bits) for x, y in zip(a, b, strict=True)]
            assert got == want, (shift_a, shift_b, negate_a, negate_b)


@pytest.mark.parametrize("d", DIGIT_BITS)
def test_serial_negator(d):
    n = max(1, 12 // d)
    bits = n * d
    values = [*edge_values(bits, d), random.Random(d).randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)]
    got = serial_words(SerialNegator(d), {"i": values}, ["o"], d, n, 1, gaps=True, seed=d)["o"]
    assert got == [wrap(-v, bits) for v in values]


@pytest.mark.parametrize("d", DIGIT_BITS)
def test_serial_shifter_fills_zeros_at_each_word_start(d):
    n = 3
    bits = n * d
    values = edge_values(bits, d)
    for shift in sorted({0, 1, d - 1, d, d + 1, 2 * d + 1, bits}):
        got = serial_words(SerialShifter(d, shift), {"i": values}, ["o"], d, n, 0, gaps=shift % 2 == 1, seed=shift)
        assert got["o"] == [wrap(v << shift, bits) for v in values], shift


@pytest.mark.parametrize("width, cycles", [(1, 0), (1, 1), (3, 5), (8, 40)])
def test_delay_line(width, cycles):
    rnd = random.Random(cycles)
    stream = [rnd.getrandbits(width) for _ in range(cycles + 60)]
    dut = DelayLine(width, cycles)
    samples = run_serial(
        dut, lambda ctx, c, _: ctx.set(dut.i, stream[c]), lambda ctx: ctx.get(dut.o), [0], len(stream), 0
    )
    assert samples[cycles : len(stream)] == stream[: len(stream) - cycles]


@pytest.mark.parametrize("word_bits, d, in_bits", [(7, 1, 7), (9, 2, 5), (10, 3, 10), (16, 4, 12), (12, 16, 12)])
@pytest.mark.parametrize("gaps", [False, True])
def test_parallel_to_serial_sign_extends_and_streams(word_bits, d, in_bits, gaps):
    n = digits_per_word(word_bits, d)
    rnd = random.Random(word_bits)
    values = edge_values(in_bits, d) + [rnd.randint(-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1) for _ in range(8)]
    dut = ParallelToSerial(word_bits, d, in_bits=in_bits)
    starts = start_cycles(len(values), n, gaps, rnd)
    starting = {s: w for w, s in enumerate(starts)}

    def drive(ctx, cycle, _):  # type: ignore[no-untyped-def]
        ctx.set(dut.start, cycle in starting)
        ctx.set(dut.x, values[starting[cycle]] if cycle in starting else rnd.randint(-(1 << (in_bits - 1)), 0))

    samples = run_serial(dut, drive, lambda ctx: (ctx.get(dut.o), ctx.get(dut.first)), starts, n, dut.latency + 1)
    for s, v in zip(starts, values, strict=True):
        digits = [samples[s + dut.latency + t] for t in range(n)]
        assert [f for _, f in digits] == [1] + [0] * (n - 1)
        assert from_digits([g for g, _ in digits], d) == v
    assert sum(f for _, f in samples) == len(values)


@pytest.mark.parametrize(
    "word_bits, d, in_bits", [(7, 1, 7), (9, 2, 5), (10, 3, 10), (22, 1, 2), (21, 4, 17), (12, 16, 12), (8, 3, 12)]
)
@pytest.mark.parametrize("gaps", [False, True])
def test_serial_inputs_stream_like_parallel_to_serial(word_bits, d, in_bits, gaps):
    """Three values at once, one shared counter: each lane's digits are its value's word
    (sign-extended, or modulo the word when wider), zero between words, restarts honoured."""
    lanes, n = 3, digits_per_word(word_bits, d)
    rnd = random.Random(word_bits * 7 + in_bits)
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    edges = edge_values(in_bits, d)
    values = [[edges[(w + j) % len(edges)] for j in range(lanes)] for w in range(len(edges))]
    values += [[rnd.randint(lo, hi) for _ in range(lanes)] for _ in range(8)]
    dut = SerialInputs(lanes, word_bits, d, in_bits=in_bits)
    starts = start_cycles(len(values), n, gaps, rnd)
    starting = {s: w for w, s in enumerate(starts)}

    def drive(ctx, cycle, _):  # type: ignore[no-untyped-def]
        ctx.set(dut.start, cycle in starting)
        for j in range(lanes):
            ctx.set(dut.x[j], values[starting[cycle]][j] if cycle in starting else rnd.randint(lo, hi))

    samples = run_serial(
        dut, drive, lambda ctx: ([ctx.get(dut.o[j]) for j in range(lanes)], ctx.get(dut.first)), starts, n, 2
    )
    modulo = 1 << (n * d)
    for w, s in enumerate(starts):
        digits = [samples[s + dut.latency + t] for t in range(n)]
        assert [f for _, f in digits] == [1] + [0] * (n - 1)
        for j in range(lanes):
            got = from_digits([g[j] for g, _ in digits], d)
            assert (got - values[w][j]) % modulo == 0, (w, j, got, values[w][j])
        if not gaps or s + n not in starting:
            assert samples[s + dut.latency + n][0] == [0] * lanes or s + n in starting
    assert sum(f for _, f in samples) == len(values)


@pytest.mark.parametrize("word_bits, d", [(7, 1), (9, 2), (10, 3), (16, 4), (12, 16), (16, 16)])
@pytest.mark.parametrize("gaps", [False, True])
def test_serial_to_parallel_collects_words(word_bits, d, gaps):
    n = digits_per_word(word_bits, d)
    rnd = random.Random(word_bits * d)
    values = [*edge_values(word_bits, d), rnd.randint(-(1 << (word_bits - 1)), (1 << (word_bits - 1)) - 1)]
    dut = SerialToParallel(word_bits, d)
    starts = start_cycles(len(values), n, gaps, rnd)
    owner = {s + t: (w, t) for w, s in enumerate(starts) for t in range(n)}

    def drive(ctx, cycle, _):  # type: ignore[no-untyped-def]
        w_t = owner.get(cycle)
        ctx.set(dut.i, rnd.getrandbits(d) if w_t is None else to_digits(values[w_t[0]], d, n)[w_t[1]])
        ctx.set(dut.first, w_t is not None and w_t[1] == 0)

    samples = run_serial(dut, drive, lambda ctx: (ctx.get(dut.y), ctx.get(dut.valid)), starts, n, n + 2)
    assert [c for c, (_, v) in enumerate(samples) if v] == [s + dut.latency for s in starts]
    assert [samples[s + dut.latency][0] for s in starts] == values


def test_converters_round_trip_back_to_back():
    word_bits, d = 11, 3
    n = digits_per_word(word_bits, d)
    values = edge_values(word_bits, d)
    p2s, s2p = ParallelToSerial(word_bits, d), SerialToParallel(word_bits, d)
    m = Module()
    m.submodules.p2s, m.submodules.s2p = p2s, s2p
    m.d.comb += [s2p.i.eq(p2s.o), s2p.first.eq(p2s.first)]
    got = []

    async def bench(ctx):  # type: ignore[no-untyped-def]
        for c in range(len(values) * n + n + 3):
            start = c % n == 0 and c // n < len(values)
            ctx.set(p2s.start, start)
            ctx.set(p2s.x, values[c // n] if start else 0)
            if ctx.get(s2p.valid):
                got.append((c, ctx.get(s2p.y)))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [v for _, v in got] == values
    assert [c for c, _ in got] == [w * n + p2s.latency + s2p.latency for w in range(len(values))]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SerialAdder(0), "digit_bits must be a positive integer, not 0"),
        (lambda: SerialAdder(2, shift_a=-1), "shift_a must be a non-negative integer, not -1"),
        (lambda: DelayLine(4, -2), "cycles must be a non-negative integer, not -2"),
        (lambda: ParallelToSerial(0, 2), "word_bits must be a positive integer, not 0"),
        (lambda: SerialToParallel(8, 2.0), "digit_bits must be a positive integer, not 2.0"),
        (lambda: SerialAdderGraph(naive_adder_graph(np.eye(2, dtype=int)), 0, 8), "digit_bits must be a positive"),
    ],
)
def test_bad_parameters_are_refused(make, message):
    with warnings.catch_warnings():
        # The half-built component is collected unused; that is expected here.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=message):
            make()
        gc.collect()


# Adder graphs ------------------------------------------------------------------------


def value_graph(graph: AdderGraph) -> AdderGraph:
    """The same graph with the output operands' sign and shift removed (what the gateware outputs)."""
    outs = tuple(None if o is None else Operand(o.value) for o in graph.outputs)
    return AdderGraph(graph.n_inputs, graph.nodes, outs)


def simulate_graph(
    graph: AdderGraph, d: int, word_bits: int, x: np.ndarray, gaps: bool, seed: int, three_input: bool | None = None
) -> list[list[int]]:
    """Output values of every input vector of ``x`` (signed ``D*d``-bit words); checks ``y_first`` too."""
    dut = SerialAdderGraph(graph, d, word_bits, three_input)
    n = dut.plan.digits
    rnd = random.Random(seed)
    starts = start_cycles(len(x), n, gaps, rnd)
    digits = [[to_digits(int(v), d, n) for v in row] for row in x.tolist()]

    def drive(ctx, cycle, word):  # type: ignore[no-untyped-def]
        if word is None:
            ctx.set(dut.x, [rnd.getrandbits(d) for _ in range(graph.n_inputs)])
        else:
            ctx.set(dut.x, [g[cycle - starts[word]] for g in digits[word]])
        ctx.set(dut.first, word is not None and cycle == starts[word])

    samples = run_serial(
        dut, drive, lambda ctx: ([int(v) for v in ctx.get(dut.y)], ctx.get(dut.y_first)), starts, n, dut.latency
    )
    assert [c for c, (_, f) in enumerate(samples) if f] == [s + dut.latency for s in starts]
    return [
        [from_digits([samples[s + dut.latency + t][0][i] for t in range(n)], d) for i in range(len(graph.outputs))]
        for s in starts
    ]


def check_graph(
    graph: AdderGraph,
    d: int,
    lo: int,
    hi: int,
    n_random: int,
    gaps: bool,
    seed: int,
    word_bits: int | None = None,
    three_input: bool | None = None,
) -> None:
    word_bits = word_bits or serial_word_bits(graph, lo, hi)
    rng = np.random.default_rng(seed)
    n = graph.n_inputs
    corners = np.array([[lo] * n, [hi] * n, [(lo, hi)[j % 2] for j in range(n)]])
    x = np.concatenate([corners, rng.integers(lo, hi + 1, size=(n_random, n))])
    got = simulate_graph(graph, d, word_bits, x, gaps, seed, three_input)
    assert got == value_graph(graph).evaluate(x).tolist()
    # With the output operands' sign and shift applied: what the consumer computes.
    applied = [
        [0 if o is None else (-1 if o.negate else 1) * (v << o.shift) for o, v in zip(graph.outputs, row, strict=True)]
        for row in got
    ]
    assert applied == graph.evaluate(x).tolist()


def random_matrix(rng: np.random.Generator, rows: int, cols: int, kind: str) -> np.ndarray:
    if kind == "ternary":
        return rng.choice([-1, 0, 0, 1], size=(rows, cols))
    return rng.integers(-5, 6, size=(rows, cols))  # small integers: shifted operands


@pytest.mark.parametrize("d", [1, 2, 4, 16])
@pytest.mark.parametrize("kind", ["ternary", "integer"])
def test_serial_adder_graph_matches_the_graph(d, kind):
    rng = np.random.default_rng(d)
    w = random_matrix(rng, 7, 9, kind)
    w[3] = 0  # an all-zero row
    check_graph(naive_adder_graph(w), d, -128, 127, n_random=12, gaps=d == 2, seed=d)


def test_serial_adder_graph_of_a_larger_layer():
    w = random_matrix(np.random.default_rng(8), 24, 40, "ternary")
    check_graph(naive_adder_graph(w), 3, -(1 << 11), (1 << 11) - 1, n_random=8, gaps=True, seed=8)


@pytest.mark.parametrize("d", [1, 3])
def test_serial_adder_graph_with_gaps_and_full_rate(d):
    w = random_matrix(np.random.default_rng(5), 5, 12, "ternary")
    check_graph(naive_adder_graph(w), d, -8, 7, n_random=10, gaps=True, seed=d)


def test_serial_adder_graph_exotic_nodes():
    """Both operands negated, shifts beyond a digit, an input used directly as an output, and an
    intermediate value wider than the word (it wraps; the outputs are still exact)."""
    nodes = (
        AddNode(Operand(0, True, 3), Operand(1, True, 0)),  # 3: -(x0<<3) - x1
        AddNode(Operand(3, False, 5), Operand(2, False, 1)),  # 4: wide
        AddNode(Operand(4), Operand(3, True, 5)),  # 5: = x2<<1, narrow again
        AddNode(Operand(5, True, 0), Operand(0, False, 2)),  # 6
    )
    graph = AdderGraph(3, nodes, (Operand(6, True, 1), Operand(1), Operand(5, False, 2), None))
    lo, hi = -8, 7
    for d in (1, 2, 5):
        check_graph(graph, d, lo, hi, n_random=10, gaps=True, seed=d)
    # The outputs' true values (x2 << 1, x1, 4*x0 - 2*x2) fit in 8 bits although node 4 needs 13 and
    # interval arithmetic bounds node 5 at 14: a word of 8 bits still gives every output exactly.
    assert serial_word_bits(graph, lo, hi) > 8
    check_graph(graph, 3, lo, hi, n_random=20, gaps=False, seed=9, word_bits=8)


@st.composite
def small_graphs(draw: st.DrawFn) -> AdderGraph:
    n_inputs = draw(st.integers(1, 4))
    nodes: list[AddNode] = []
    for _ in range(draw(st.integers(0, 5))):
        n_values = n_inputs + len(nodes)
        ops = [
            Operand(draw(st.integers(0, n_values - 1)), draw(st.booleans()), draw(st.integers(0, 4))) for _ in range(2)
        ]
        nodes.append(AddNode(*ops))
    n_values = n_inputs + len(nodes)
    outputs = draw(
        st.lists(
            st.none() | st.builds(Operand, st.integers(0, n_values - 1), st.booleans(), st.integers(0, 2)),
            min_size=1,
            max_size=4,
        )
    )
    return AdderGraph(n_inputs, tuple(nodes), tuple(outputs))


@settings(max_examples=25, deadline=None)
@given(graph=small_graphs(), d=st.sampled_from([1, 2, 3, 7]), seed=st.integers(0, 1000))
def test_random_graphs_are_exact(graph, d, seed):
    check_graph(graph, d, -16, 15, n_random=3, gaps=True, seed=seed)


def test_plan_counts_match_a_hand_count():
    # y0 = x0 + x1 + x2 (tree: (x0+x1)+x2), y1 = x0 - (x1<<1): x2 waits one cycle, x0 none.
    graph = AdderGraph(
        3,
        (AddNode(Operand(0), Operand(1)), AddNode(Operand(3), Operand(2)), AddNode(Operand(0), Operand(1, True, 1))),
        (Operand(4), Operand(5)),
    )
    plan = SerialGraphPlan(graph, 1, 6, three_input=False)
    assert (plan.digits, plan.latency, plan.cycles_per_word) == (6, 2, 6)
    # x2 waits 1 cycle; x1 is read 1 digit back for the shift; node 5 waits 1 cycle for the output.
    assert plan.delays == {1: 1, 2: 1, 5: 1}
    assert plan.strobe_delay == 2
    assert (plan.adders, plan.carry_bits, plan.delay_bits, plan.adder_register_bits) == (3, 3, 3, 3)
    assert SerialGraphPlan(graph, 4, 6).delays == {1: 1, 2: 1, 5: 1}
    assert SerialGraphPlan(graph, 4, 6).delay_bits == 12
    # Bit-serial: node 3 (read only by node 4, in the cycle it is made) merges into node 4,
    # which adds x2 + x0 + x1 one cycle later: x0 now waits one cycle too; one adder less,
    # node 4's carry two bits.
    merged = SerialGraphPlan(graph, 1, 6)
    assert [(op.node, op.stage, len(op.operands)) for op in merged.ops] == [(1, 1, 3), (2, 0, 2)]
    assert merged.delays == {0: 1, 1: 1, 2: 1, 5: 1}
    assert (merged.latency, merged.strobe_delay) == (2, 2)
    assert (merged.adders, merged.three_input_adders, merged.carry_bits, merged.adder_register_bits) == (2, 1, 3, 2)


def _mapped_delays_bit_by_bit(plan: SerialGraphPlan) -> tuple[int, int, int]:
    """The SRL mapping counted one bit at a time, as it was before the taps became runs of bits."""
    from hwgen.plan.bit_serial import SRL_MIN_LENGTH, shift_register_cells

    d = plan.digit_bits
    used: dict[int, list[set[int]]] = {}
    for op in plan.ops:
        for operand in op.operands:
            lag = plan.operand_lag(op, operand)
            q, r = divmod(operand.shift, d)
            for b in range(d):
                used.setdefault(operand.value, [set() for _ in range(d)])[b].add(lag + q + (b >= d - r))
    for out in plan.graph.outputs:
        if out is not None:
            for b in range(d):
                used.setdefault(out.value, [set() for _ in range(d)])[b].add(
                    plan.latency - plan.graph.depths[out.value]
                )
    srl = ffs = absorbed = 0
    for value, per_bit in used.items():
        for lags in per_bit:
            previous = 0
            for lag in sorted(lags):
                if lag > previous:
                    first = previous == 0 and value >= plan.graph.n_inputs and lag - previous + 1 >= SRL_MIN_LENGTH
                    cells, rest = shift_register_cells(lag - previous + first)
                    srl, ffs, absorbed = srl + cells, ffs + rest, absorbed + first
                previous = lag
    return srl, ffs, absorbed


@settings(max_examples=60, deadline=None)
@given(graph=small_graphs(), d=st.sampled_from([1, 2, 3, 5, 8]))
def test_delay_mapping_counts_runs_of_bits_like_single_bits(graph, d):
    """``bit_taps`` groups a value's bits into runs read at the same lags (one entry per run, not
    per bit: fast on wide digits over large graphs); the SRL and flip-flop counts are the per-bit ones."""
    plan = SerialGraphPlan(graph, d, 16)
    assert plan._mapped_delays == _mapped_delays_bit_by_bit(plan)
    for runs in plan.bit_taps.values():
        assert sum(bits for bits, _ in runs) == d


def test_delay_mapping_of_a_merged_layer_counts_like_single_bits():
    rng = np.random.default_rng(5)
    w = rng.choice([-1, 0, 1], size=(24, 40), p=[0.2, 0.6, 0.2])
    graph = merged_adder_graph(w)
    for d in (1, 3, 6, 11):
        plan = SerialGraphPlan(graph, d, 22)
        assert plan._mapped_delays == _mapped_delays_bit_by_bit(plan)


@pytest.mark.parametrize("d", [1, 2])
def test_three_input_adders_are_exact_with_every_sign(d):
    """Merged nodes whose inner node is subtracted (signs folded in), with both inner operands
    negated, shifted inner operands, forced at d = 2 too; outputs exact, fewer adders."""
    nodes = (
        AddNode(Operand(0, True, 1), Operand(1, True)),  # 4: -(x0<<1) - x1
        AddNode(Operand(2), Operand(4, True)),  # 5: x2 - node4 -> merged: x2 + (x0<<1) + x1
        AddNode(Operand(3, True), Operand(2, False, 2)),  # 6: -x3 + (x2<<2)
        AddNode(Operand(6), Operand(5, True)),  # 7: node6 - node5 (5 absorbed 4: stays apart)
        AddNode(Operand(0), Operand(1, True)),  # 8: x0 - x1
        AddNode(Operand(8, True), Operand(8)),  # 9: reads node 8 twice: never merged
    )
    graph = AdderGraph(4, nodes, (Operand(7), Operand(9), Operand(5, True, 1)))
    plan = SerialGraphPlan(graph, d, 8, three_input=True)
    assert plan.three_input_adders >= 1 and plan.adders < graph.adders
    check_graph(graph, d, -8, 7, n_random=16, gaps=True, seed=d, three_input=True)


# Generated Verilog on both simulators ----------------------------------------------------


@pytest.fixture(scope="module")
def sim_runner():
    spec = importlib.util.spec_from_file_location("twngen_sim_runner_serial", SIM_DIR / "runner.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner


@pytest.mark.parametrize("simulator, d", [("icarus", 1), ("icarus", 4), ("verilator", 2), ("verilator", 16)])
def test_serial_adder_graph_verilog(tmp_path, sim_runner, simulator, d):
    rng = np.random.default_rng(11)
    w = random_matrix(rng, 6, 10, "integer")
    w[2] = 0
    graph = naive_adder_graph(w)
    lo, hi = -512, 511
    dut = SerialAdderGraph(graph, d, serial_word_bits(graph, lo, hi))
    x = np.concatenate([[[lo] * 10, [hi] * 10], rng.integers(lo, hi + 1, size=(30, 10))])
    source = tmp_path / "serial_graph.v"
    source.write_text(verilog.convert(dut, name="serial_graph", emit_src=False))
    np.savez(
        tmp_path / "v.npz",
        inputs=x,
        expected=np.array(value_graph(graph).evaluate(x), dtype=np.int64),
        digit_bits=d,
        digits=dut.plan.digits,
        latency=dut.latency,
    )
    try:
        summary = sim_runner.run_testbench(
            sources=[source],
            simulator=simulator,
            build_dir=tmp_path / "sim",
            env={"TWN_VECTORS": str(tmp_path / "v.npz"), "TWN_STALL": "0.3", "TWN_SEED": str(d)},
            results_json=tmp_path / "r.json",
            toplevel="serial_graph",
            test_module="tb_serial_graph",
        )
    except sim_runner.SimulatorUnavailable as exc:
        pytest.skip(str(exc))
    assert (summary["passed"], summary["failed"]) == (len(x), 0), summary["mismatches"]
    assert summary["strobes_ok"] and summary["measured_latency_cycles"] == dut.latency == graph.depth
