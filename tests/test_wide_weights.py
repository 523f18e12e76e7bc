"""Wide first and last layers (issue 16): integers of up to 16 signed bits times a scale are
accepted by default in the first and the last linear layer, built (adder graphs over signed
digits, or weights in memory with a multiplier per accumulator) and verified bit-exactly;
hidden layers keep the 4-bit limit; float weights that are not fixed point are refused with
a hint to ``--quantize-weights``, which rounds them and reports the error."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from amaranth.sim import Simulator
from conftest import stderr_without_progress
from make_conv_net import vgg1d
from onnx import TensorProto, helper, numpy_helper

from hwgen.build import ArithmeticOptions, build, prepare_network
from hwgen.cli import main
from hwgen.passes import run_passes
from hwgen.passes.schedule import ScheduleDigitWidths
from hwgen.plan import plan_network
from hwgen.verify import verify

#: The published classifiers' shape, scaled down: an 8-bit first convolution, ternary hidden
#: layers and a last layer at 1/64 resolution with magnitudes up to 3.375 (9 bits). At two
#: samples a cycle the last layer has the idle cycles for weights in memory.
TW64_SHAPE = dict(channels=4, length=32, convs=2, dense=(16,), classes=5, final_peak=3.375, first_bits=8, seed=3)
#: 16-bit first and last layers; the last layer has more inputs than cycles per frame, so it is
#: an adder graph over signed digits.
SIXTEEN_BIT = dict(channels=4, length=32, convs=2, dense=(32,), classes=3, final_peak=32767 / 64, first_bits=16, seed=4)


@pytest.fixture(scope="module")
def wide_designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    out = {}
    for name, spec in (("tw64_shape", TW64_SHAPE), ("sixteen_bit", SIXTEEN_BIT)):
        path = root / f"{name}.onnx"
        onnx.save(vgg1d(**spec), str(path))  # type: ignore[arg-type]
        out[name] = build(path, "zcu111", root / name, input_rate=2).outdir  # default arithmetic options
    return out


def _report(outdir):
    return json.loads((outdir / "report.json").read_text())


def test_wide_designs_build_with_default_options_and_say_how(wide_designs):
    tw64 = [lay for lay in _report(wide_designs["tw64_shape"])["layers"] if lay["weight_kind"] != "-"]
    assert [lay["weight_kind"] for lay in tw64] == ["int8", "ternary", "ternary", "int9"]
    assert tw64[-1]["arithmetic"].startswith("weights in memory (9-bit)")
    assert tw64[-1]["arithmetic"].endswith("a multiplier (DSP) each")
    assert tw64[-1]["dsp"] >= 5  # a multiplier per accumulator
    wide = [lay for lay in _report(wide_designs["sixteen_bit"])["layers"] if lay["weight_kind"] != "-"]
    assert [lay["weight_kind"] for lay in wide] == ["int16", "ternary", "ternary", "int16"]
    last = wide[-1]
    # One element a cycle would miss the budget (32 inputs, 16 cycles): the scheduler takes the
    # cheaper of a shift-add graph over the weights' signed digits and a MAC taking two a cycle.
    if last["arithmetic"].startswith("weights in memory"):
        assert "2 input element(s) per cycle" in last["arithmetic"] and "16 available" in last["arithmetic"]
        assert last["dsp"] >= 2 * 3  # two 16-bit multipliers per accumulator
    else:
        assert last["adders"] > last["weights_nonzero"]  # several signed digits per weight


@pytest.mark.parametrize("design", ["tw64_shape", "sixteen_bit"])
def test_golden_tracks_onnxruntime_on_wide_layers(wide_designs, design):
    acc = _report(wide_designs[design])["accuracy"]
    assert acc["reference"] == "onnxruntime" and acc["samples"] >= 100
    assert acc["max_abs_error"] <= 0.01 * acc["output_peak"]
    assert acc["top1_agreement"] >= 0.97


# Icarus in `make test`; Verilator as well in `make bench` (pytest -m bench).
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.bench)])
@pytest.mark.parametrize("design", ["tw64_shape", "sixteen_bit"])
def test_wide_designs_match_golden_bit_exactly(wide_designs, design, simulator):
    r = verify(wide_designs[design], simulator, vectors=4, seed=6, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (4, 0, 0), r.mismatches
    assert (r.measured_ii_cycles, r.measured_latency_cycles) == (r.expected_ii_cycles, r.expected_latency_cycles)


def test_mac_layer_multiplies_sixteen_bit_weights_exactly(tmp_path):
    """Weights in memory with 16-bit weights: every product and accumulator exact (Amaranth sim)."""
    from hwgen.backend.mac import MacDenseLayer
    from hwgen.plan.frames import MAC_LATENCY

    path = tmp_path / "m.onnx"
    onnx.save(vgg1d(**{**TW64_SHAPE, "final_peak": 32767 / 64}), str(path))  # type: ignore[arg-type]
    net, _ = prepare_network(path, ArithmeticOptions())
    net = run_passes(net, (ScheduleDigitWidths(32),))  # one sample a cycle
    (stage,) = [m for m in plan_network(net).macs if m.layer.weight_kind == "int16"]
    assert not stage.ternary and stage.weight_bits == 16
    layer = stage.layer
    rng = np.random.default_rng(2)
    frames = rng.integers(stage.in_lo, stage.in_hi + 1, size=(3, layer.in_features))
    frames[0] = stage.in_hi  # the extremes: the widest products and sums
    frames[1] = np.where(layer.weights[0] > 0, stage.in_lo, stage.in_hi)
    dut = MacDenseLayer(stage)
    got: list[int] = []

    async def bench(ctx):
        for f in frames:
            for a in range(layer.in_features):
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i_data, int(f[stage.order[a]]))
                await ctx.tick()
                if ctx.get(dut.o_valid):
                    got.append(int(ctx.get(dut.o_data)))
        ctx.set(dut.i_valid, 0)
        for _ in range(layer.out_features + MAC_LATENCY + 2):
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append(int(ctx.get(dut.o_data)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == layer.requant.apply(frames @ layer.weights.T).reshape(-1).tolist()


# -- refusals and --quantize-weights through the CLI ----------------------------------------


def _mlp(path, w1, w2, w3):
    """in_fc -> ReLU -> hidden -> ReLU -> out_fc, weights [out, in]."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"], name="in_fc", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "W2"], ["h2"], name="hidden", transB=1),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("Gemm", ["r2", "W3"], ["y"], name="out_fc", transB=1),
    ]
    inits = [
        numpy_helper.from_array(np.asarray(w, dtype=np.float32), n)
        for n, w in zip(("W1", "W2", "W3"), (w1, w2, w3), strict=True)
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w1.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w3.shape[0]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _ternary(rng, shape):
    return rng.choice([-0.5, 0.0, 0.5], size=shape)


def _refusal(capsys, argv):
    assert main(argv) == 2
    err = stderr_without_progress(capsys.readouterr().err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_wide_hidden_layer_is_refused_with_the_hidden_limit(tmp_path, capsys):
    rng = np.random.default_rng(0)
    six_bit = rng.integers(-31, 32, size=(6, 6)) / 32.0
    path = _mlp(tmp_path / "m.onnx", _ternary(rng, (6, 4)), six_bit, _ternary(rng, (3, 6)))
    err = _refusal(capsys, [str(path), "--board", "zcu111", "-o", str(tmp_path / "out")])
    assert "node 'hidden' (Gemm)" in err and "distinct weight magnitudes" in err and "within 4 bits" in err
    assert "integers of at most 4 signed bits times a scale" in err and "--quantize-weights hidden=BITS" in err
    assert not (tmp_path / "out").exists()


def test_float_last_layer_is_refused_with_the_quantize_hint(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = _mlp(tmp_path / "m.onnx", _ternary(rng, (6, 4)), _ternary(rng, (6, 6)), rng.standard_normal((3, 6)))
    err = _refusal(capsys, [str(path), "--board", "zcu111", "-o", str(tmp_path / "out")])
    assert "node 'out_fc' (Gemm)" in err and "within 16 bits" in err
    assert "integers of at most 16 signed bits times a scale" in err and "--quantize-weights out_fc=BITS" in err
    err = _refusal(capsys, [str(path), "--board", "zcu111", "--quantize-weights", "nowhere=8"])
    assert "no Gemm/MatMul/Conv node named 'nowhere'" in err and "'out_fc'" in err


@pytest.mark.parametrize("layer", ["out_fc", "last"])
def test_quantize_weights_rounds_builds_verifies_and_reports_the_error(tmp_path, capsys, layer):
    rng = np.random.default_rng(2)
    w3 = rng.standard_normal((3, 6))
    path = _mlp(tmp_path / "m.onnx", _ternary(rng, (6, 4)), _ternary(rng, (6, 6)), w3)
    out = tmp_path / "out"
    argv = [str(path), "--board", "zcu111", "-o", str(out), "--quantize-weights", f"{layer}=6"]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["quantize_weights"] == {layer: 6}
    (row,) = report["weight_rounding"]["layers"]
    assert row["name"] == "out_fc" and row["bits"] == 6
    # The error, from the definition (symmetric per channel, half away from zero, 6 bits: |code| <= 31).
    w = w3.astype(np.float32).astype(np.float64)
    step = np.abs(w).max(axis=1, keepdims=True) / 31
    rounded = np.sign(w) * np.floor(np.abs(w) / step + 0.5) * step
    assert row["max_rel_error"] == pytest.approx((np.abs(rounded - w) / (31 * step)).max())
    assert row["rms_rel_error"] == pytest.approx(np.linalg.norm(rounded - w) / np.linalg.norm(w))
    assert 0 < row["max_rel_error"] <= 0.5 / 31 + 1e-12
    # The accuracy check compares the golden model (rounded weights) with the source model.
    assert report["weight_rounding"]["golden_vs_source"]["max_abs_error"] == report["accuracy"]["max_abs_error"]
    assert report["accuracy"]["max_abs_error"] > 0
    last = next(lay for lay in report["layers"] if lay["name"] == "out_fc")
    assert last["weight_kind"] == "int6" and last["weight_rounding"]["bits"] == 6
    md = (out / "report.md").read_text()
    assert "## Rounded weights (--quantize-weights)" in md and "| out_fc | out_fc | 6 |" in md
    # verify: the same option is accepted, another refused; the RTL matches the golden model.
    assert main(["verify", str(out), "--vectors", "8", "--quantize-weights", f"{layer}=6"]) == 0
    assert "8 passed, 0 failed" in capsys.readouterr().out
    _refusal(capsys, ["verify", str(out), "--quantize-weights", f"{layer}=5"])
