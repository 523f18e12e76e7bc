"""Gateware against the golden model in Amaranth's simulator (fast, no external tools)."""

import random

import numpy as np
import onnx
import pytest
from amaranth.sim import Simulator
from conftest import built_network, write_mlp
from onnx import TensorProto, helper, numpy_helper

from hwgen import golden
from hwgen.backend import StreamingNetwork, generate_verilog
from hwgen.plan import plan_network


def simulate(network, codes, stall=0.0, seed=0):
    """Stream ``codes`` through the gateware with random input gaps and output
    stalls; return the plan, outputs in order, the accept cycle of every
    frame's first beat and the delivery cycles. A dense network takes a frame
    in one beat, a convolution network one position per beat."""
    from hwgen.backend.assemble import StreamingFrameNetwork
    from hwgen.plan.frames import FramePlan
    from hwgen.verify import beats_of

    plan = plan_network(network)
    frames = beats_of(network, codes)
    dut = StreamingFrameNetwork(plan) if isinstance(plan, FramePlan) else StreamingNetwork(plan)
    rnd = random.Random(seed)
    n, per_frame = frames.shape[0], frames.shape[1]
    limit = 100 + (n + 3) * (plan.initiation_interval + 30) * (4 if stall else 1) + plan.latency
    outputs, accepted, delivered = [], [], []

    async def bench(ctx):
        sent, cycle, quiet = 0, 0, 0
        # Run on a while after the last output, to catch a duplicate.
        while cycle < limit and quiet < 50:
            offer = sent < n * per_frame and rnd.random() >= stall
            ctx.set(dut.x.valid, offer)
            if offer:
                ctx.set(dut.x.payload, [int(v) for v in frames[sent // per_frame, sent % per_frame]])
            ready = rnd.random() >= stall
            ctx.set(dut.y.ready, ready)
            # A testbench sees settled values: these are what the edge samples.
            take = offer and ctx.get(dut.x.ready)
            give = ready and ctx.get(dut.y.valid)
            word = [int(v) for v in ctx.get(dut.y.payload)] if give else None
            await ctx.tick()
            cycle += 1
            quiet = quiet + 1 if len(outputs) >= n else 0
            if take:
                if sent % per_frame == 0:
                    accepted.append(cycle)
                sent += 1
            if give:
                outputs.append(word)
                delivered.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return plan, outputs, accepted, delivered


def _codes(network, n, seed):
    fmt = network.input_format
    rng = np.random.default_rng(seed)
    corners = np.array([[fmt.lo] * network.in_features, [fmt.hi] * network.in_features])
    return np.concatenate([corners, rng.integers(fmt.lo, fmt.hi + 1, size=(n - 2, network.in_features))])


@pytest.mark.parametrize(
    "sizes, kwargs",
    [
        ([12, 9, 5], {}),
        ([10, 6], {"binary": True}),
        ([9, 7, 4], {"zeros": 0.85, "style": "matmul", "per_channel": False}),
    ],
)
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_network_matches_golden_under_backpressure(tmp_path, sizes, kwargs, stall):
    net = built_network(write_mlp(tmp_path / "m.onnx", sizes, seed=len(sizes), **kwargs))
    codes = _codes(net, 24, seed=3)
    plan, outputs, accepted, delivered = simulate(net, codes, stall=stall, seed=7)
    # Exactly one output per input, in order, bit-exact.
    assert outputs == golden.run_integer(net, codes).tolist()
    if stall == 0.0:
        assert [d - a for a, d in zip(accepted, delivered, strict=True)] == [plan.latency] * len(codes)
        assert set(np.diff(delivered).tolist()) == {plan.initiation_interval}


def _single_layer_model(path, w, bias):
    n_out, n_in = w.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", transB=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])],
        [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "B")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_degenerate_rows_zero_single_and_negative(tmp_path):
    """All-zero rows (constant output), single-term rows (no adder, depth 0),
    all-negative rows (sign folded into the multiplier)."""
    w = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 0, 0.5, 0, 0],
            [-0.5, -0.5, -0.5, -0.5, -0.5],
            [0, -0.5, 0, 0, 0],
            [0.5, 0.5, -0.5, 0, 0.5],
        ]
    )
    path = _single_layer_model(tmp_path / "m.onnx", w, np.array([0.25, -1.0, 0.0, 3.0, 0.1]))
    net = built_network(path)
    codes = _codes(net, 16, seed=1)
    _, outputs, _, _ = simulate(net, codes, stall=0.3, seed=1)
    assert outputs == golden.run_integer(net, codes).tolist()


def test_all_rows_single_term_gives_zero_depth_graph(tmp_path):
    w = np.eye(4) * 0.5
    net = built_network(_single_layer_model(tmp_path / "m.onnx", w, np.zeros(4)))
    assert net.layers[0].adder_graph.depth == 0
    codes = _codes(net, 8, seed=2)
    plan, outputs, accepted, delivered = simulate(net, codes)
    assert outputs == golden.run_integer(net, codes).tolist()
    assert delivered[0] - accepted[0] == plan.latency


def test_verilog_is_deterministic(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [8, 6, 3], seed=9))
    a = generate_verilog(plan_network(net))
    b = generate_verilog(plan_network(net))
    assert a == b
    assert "module twn_top" in a and str(tmp_path) not in a


def _shared(layer, units):
    from dataclasses import replace

    return replace(layer, requant_units=units)


@pytest.mark.parametrize("units", [1, 2, 4])
@pytest.mark.parametrize("extra_gap", [0, 3])
def test_shared_requantiser_gives_the_per_channel_codes(tmp_path, units, extra_gap):
    """Every channel's code from a time-shared requantiser equals the golden requantisation, for
    vectors as close together as its slots allow and further apart; the graph outputs are present
    only in the strobe's cycle (the bank holds them). A zero row stays a constant channel; rows of
    different scales give the units different shifts."""
    from hwgen.backend.requant import SharedRequantizer
    from hwgen.plan.dense import LayerPlan

    w = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 0, 0.5, 0, 0],
            [-0.5, -0.5, -0.5, -0.5, -0.5],
            [0, -3, 0, 0, 0],
            [0.5, 0.5, -0.5, 0, 0.5],
            [0.01, -0.01, 0, 0.01, 0.01],
            [2, 0, 2, -2, 0],
            [0.1, 0.1, 0.1, -0.1, 0],
        ]
    )
    net = built_network(_single_layer_model(tmp_path / "m.onnx", w, np.linspace(-2, 3, len(w))))
    layer = net.linear_layers[0]
    assert len(set(layer.requant.shift)) > 1
    fmt = net.input_format
    lp = LayerPlan(_shared(layer, units), fmt.lo, fmt.hi, fmt.bits)
    assert len(lp.shared_units) == units and lp.requant_slots == -(-7 // units)
    assert lp.requant_latency == lp.requant_slots + 3
    graph = lp.graph
    rng = np.random.default_rng(units + 10 * extra_gap)
    ranges = lp.value_ranges
    vectors = [
        [int(rng.integers(ranges[o.value][0], ranges[o.value][1] + 1)) if o is not None else 0 for o in graph.outputs]
        for _ in range(12)
    ]
    vectors[0] = [ranges[o.value][0] if o is not None else 0 for o in graph.outputs]
    vectors[1] = [ranges[o.value][1] if o is not None else 0 for o in graph.outputs]
    gap = lp.requant_slots + extra_gap
    dut = SharedRequantizer(lp, lp.graph_out_bits)
    got = {}

    async def bench(ctx):
        for cycle in range(len(vectors) * gap + lp.requant_latency + 2):
            k, phase = divmod(cycle, gap)
            strobe = phase == 0 and k < len(vectors)
            ctx.set(dut.strobe, strobe)
            noise = [int(rng.integers(-(1 << (lp.graph_out_bits - 1)), 1 << (lp.graph_out_bits - 1))) for _ in w]
            ctx.set(dut.x, vectors[k] if strobe else noise)
            await ctx.tick()
            # After the edge that ends cycle `cycle`: what y holds in cycle + 1.
            done = cycle + 1 - lp.requant_latency
            if done >= 0 and done % gap == 0 and done // gap < len(vectors):
                got[done // gap] = [int(v) for v in ctx.get(dut.y)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    accumulators = []
    for values in vectors:
        acc = [
            0 if o is None else (-v if o.negate else v) << o.shift for o, v in zip(graph.outputs, values, strict=True)
        ]
        accumulators.append(acc)
    want = layer.requant.apply(np.array(accumulators, dtype=np.int64))
    assert [got[k] for k in range(len(vectors))] == want.tolist()


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_dense_network_with_shared_requantisers_matches_golden(tmp_path, stall):
    """A dense network at four cycles per vector: the scheduler shares requantisers, the timing follows."""
    from hwgen.passes import run_passes
    from hwgen.passes.schedule import ScheduleDigitWidths

    net = built_network(write_mlp(tmp_path / "m.onnx", [12, 9, 5], seed=3))
    net = run_passes(net, (ScheduleDigitWidths(4, share_requantisers=True),))
    assert any(layer.requant_units for layer in net.linear_layers)
    codes = _codes(net, 16, seed=4)
    plan, outputs, accepted, delivered = simulate(net, codes, stall=stall, seed=5)
    assert outputs == golden.run_integer(net, codes).tolist()
    if stall == 0.0:
        assert [d - a for a, d in zip(accepted, delivered, strict=True)] == [plan.latency] * len(codes)


def test_shared_requantisers_slower_than_the_budget_are_refused(tmp_path):
    from hwgen.errors import TwnError
    from hwgen.plan.dense import LayerPlan, check_requant_slots

    w = np.array([[0.5, 0, -0.5], [0, 0.5, 0.5], [0.5, 0.5, 0.5], [-0.5, 0, 0]])
    net = built_network(_single_layer_model(tmp_path / "m.onnx", w, np.zeros(4)))
    fmt = net.input_format
    lp = LayerPlan(_shared(net.linear_layers[0], 1), fmt.lo, fmt.hi, fmt.bits)
    assert lp.requant_slots == 4
    check_requant_slots(lp, 4)
    with pytest.raises(TwnError, match=r"'fc' \(Gemm\): its shared requantisers take 4 cycles per vector, 3 available"):
        check_requant_slots(lp, 3)
