"""Activation precision (hwgen/passes/precision.py): --precision auto, the accuracy guard, and the
I/Q frames it is calibrated on (examples/iq_frames.py)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import stderr_without_progress
from iq_frames import CLASSES, iq_frames
from make_conv_net import stack

from hwgen import golden
from hwgen.build import ArithmeticOptions, prepare_network
from hwgen.cli import main
from hwgen.passes.precision import AreaTable, auto_ladders, search_activation_bits

#: A small I/Q classifier for the builds (dense layers: quick to emit), 7 classes.
SPEC = "d24,d16,o7"
LENGTH = 32
#: One with convolutions and pooling for the area model (scheduled, not emitted).
CONV_SPEC = "c8k3p1,m2,c8k3p1,m2,d16,o7"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A model and two batches of modulated frames: one to calibrate on, one held out."""
    base = tmp_path_factory.mktemp("precision")
    model = base / "iq.onnx"
    onnx.save(stack(SPEC, (2, LENGTH), seed=0), str(model))
    cal, held = base / "cal.npy", base / "held.npy"
    np.save(cal, iq_frames(128, LENGTH, seed=1)[0])
    np.save(held, iq_frames(128, LENGTH, seed=2)[0])
    return model, cal, held


def _module_build(frames, tmp_path_factory, *args):
    model, cal, _ = frames
    out = tmp_path_factory.mktemp("build") / "b"
    assert main([str(model), "--board", "zcu111", "-o", str(out), "-q", "--calibrate", str(cal), *args]) == 0
    return out


@pytest.fixture(scope="module")
def auto_build(frames, tmp_path_factory):
    return _module_build(frames, tmp_path_factory, "--precision", "auto")


def _build(capsys, model, out, *args):
    code = main([str(model), "--board", "zcu111", "-o", str(out), *args])
    return code, stderr_without_progress(capsys.readouterr().err)


def test_a_poor_agreement_is_loud_on_stderr_and_in_the_report(frames, tmp_path, capsys):
    model, cal, _ = frames
    # Incremental precision on a network trained for nothing gives its first layer 1-bit activations.
    code, err = _build(capsys, model, tmp_path / "b", "-q", "--precision", "incremental", "--calibrate", str(cal))
    assert code == 0
    assert "WARNING: ACCURACY BELOW BUDGET" in err
    assert "--precision fixed" in err and "--act-bits" in err and "90%" in err
    assert err.count("!" * 72) == 2  # a framed block
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["accuracy"]["budget_met"] is False and report["accuracy"]["budget"] is None
    assert report["accuracy"]["required_agreement"] == 0.9
    assert report["warnings"] and "NOT MET" in (tmp_path / "b" / "report.md").read_text()


@pytest.fixture(scope="module")
def fixed_build(frames, tmp_path_factory):
    """A fixed-precision build with a budget it meets, and what it printed on stderr."""
    import contextlib
    import io

    model, cal, _ = frames
    out = tmp_path_factory.mktemp("build") / "b"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(
            [str(model), "--board", "zcu111", "-o", str(out), "--calibrate", str(cal), "--accuracy-budget", "0.05"]
        )
    assert code == 0 and "accuracy check" in err.getvalue()  # stderr was captured: its progress lines are there
    return out, stderr_without_progress(err.getvalue())


def test_a_good_agreement_says_nothing(fixed_build):
    out, err = fixed_build
    assert "WARNING" not in err
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["budget"] == 0.05 and report["accuracy"]["budget_met"] is True
    assert report["warnings"] == []


def test_auto_meets_the_budget_on_held_out_frames_with_narrower_widths(frames, auto_build, fixed_build):
    model, cal, held = frames
    report = json.loads((auto_build / "report.json").read_text())
    choice = report["precision_choice"]
    bits = report["options"]["layer_act_bits"]
    assert choice["layer_act_bits"] == bits and report["accuracy"]["budget"] == 0.01
    assert report["accuracy"]["budget_met"] and choice["agreement"] >= 0.99
    # Narrower than fixed (16-bit signed: 15 value bits after the ReLUs) somewhere, never wider.
    assert all(b <= 15 for b in bits.values()) and min(bits.values()) < 15
    fixed = json.loads((fixed_build[0] / "report.json").read_text())
    assert report["resources"]["lut"] < fixed["resources"]["lut"]
    assert report["resources"]["ff"] < fixed["resources"]["ff"]
    # On frames it was not calibrated on, the build's golden model still agrees with onnxruntime.
    network, _ = prepare_network(model, ArithmeticOptions(calibrate=str(cal), layer_act_bits=tuple(bits.items())))
    acc = golden.compare_with_onnxruntime(model, network, np.load(held).astype(np.float64), "held out")
    assert acc.top1_agreement >= 0.97
    assert "Activation widths (--precision auto)" in (auto_build / "report.md").read_text()


def test_auto_without_calibration_warns_the_synthetic_batch_is_a_poor_stand_in(frames, tmp_path, capsys):
    model, _, _ = frames
    code, err = _build(
        capsys, model, tmp_path / "b", "-q", "--precision", "auto", "--act-bits", "8", "--accuracy-budget", "0.2"
    )
    assert code == 0
    assert "synthetic standard-normal vectors" in err and "--calibrate" in err and "WARNING" in err


def test_an_impossible_budget_exits_2_with_the_best_agreement(frames, tmp_path, capsys):
    model, cal, _ = frames
    code = main(
        [
            str(model),
            "--board",
            "zcu111",
            "-o",
            str(tmp_path / "b"),
            "-q",
            "--precision",
            "auto",
            "--calibrate",
            str(cal),
            "--act-bits",
            "3",
            "--accuracy-budget",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "accuracy budget cannot be met" in err and "best this rate allows" in err and "100.0%" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("budget", ["1", "-0.1", "nan"])
def test_a_budget_outside_0_1_is_refused(frames, tmp_path, capsys, budget):
    model, _, _ = frames
    code = main([str(model), "--board", "zcu111", "-o", str(tmp_path / "b"), "-q", "--accuracy-budget", budget])
    assert code == 2 and "--accuracy-budget must be a fraction" in capsys.readouterr().err


def test_golden_of_a_build_folder_is_the_golden_of_its_model_with_its_options(frames, auto_build, tmp_path, capsys):
    model, cal, held = frames
    bits = json.loads((auto_build / "report.json").read_text())["options"]["layer_act_bits"]
    from_build, from_model = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["golden", str(auto_build), "--inputs", str(held), "--outputs", str(from_build), "--compare"]) == 0
    assert "top1_agreement=" in capsys.readouterr().out  # the source model found from the build's depfile
    layer_bits = ",".join(f"{name}={b}" for name, b in bits.items())
    assert (
        main(
            [
                "golden",
                str(model),
                "--calibrate",
                str(cal),
                "--layer-act-bits",
                layer_bits,
                "--inputs",
                str(held),
                "--outputs",
                str(from_model),
            ]
        )
        == 0
    )
    a, b = np.load(from_build), np.load(from_model)
    assert a.shape == (128, 7) and np.array_equal(a, b)
    # A build folder's arithmetic is its own: options that would change it are refused.
    capsys.readouterr()
    code = main(["golden", str(auto_build), "--inputs", str(held), "--outputs", str(from_build), "--act-bits", "8"])
    assert code == 2 and "drop --act-bits" in capsys.readouterr().err


def test_area_table_prices_the_chosen_widths_close_to_the_full_estimate(frames):
    """The search's additive area model against whole-network estimates, on choices it did not sample."""
    from dataclasses import replace

    from hwgen.build import _graphs_at_rate
    from hwgen.console.progress import SILENT
    from hwgen.estimate import estimate_parts
    from hwgen.passes import run_passes
    from hwgen.passes.schedule import ScheduleDigitWidths
    from hwgen.passes.three_input import ThreeInputAdders
    from hwgen.plan import plan_network

    _, cal, _ = frames
    model = cal.parent / "conv.onnx"
    onnx.save(stack(CONV_SPEC, (2, 64), seed=0), str(model))
    cal = cal.parent / "cal64.npy"
    np.save(cal, iq_frames(64, 64, seed=1)[0])
    options = ArithmeticOptions(calibrate=str(cal))
    network, _, ii = _graphs_at_rate(Path(model), options, 250.0, None, None, None, SILENT)
    graphs = {layer.name: layer.adder_graph for layer in network.linear_layers}

    def scheduled(bits):
        net, _ = prepare_network(model, replace(options, layer_act_bits=tuple(bits.items())))
        layers = tuple(replace(la, adder_graph=graphs[la.name]) if la.name in graphs else la for la in net.layers)
        return run_passes(net.with_layers(layers), (ScheduleDigitWidths(ii), ThreeInputAdders()))

    from hwgen.estimate import total_of
    from hwgen.passes.precision import area_score

    ladders = auto_ladders(network, 1, 16)
    table = AreaTable(scheduled, ladders)
    assert table.estimates == 2 * max(len(v) for v in ladders.values()) - 1
    for choice in ({n: 0 for n in ladders}, {n: k % 3 + 2 for k, n in enumerate(ladders)}):
        estimate = estimate_parts(plan_network(scheduled(table.bits(choice))))
        full = sum(area_score(total_of(p)) for p in estimate.layers) + area_score(total_of(estimate.outside))
        assert table.area(choice) == pytest.approx(full, rel=0.15)

    # The search keeps the budget it is given and never widens past the widest.
    choice = search_activation_bits(table, lambda bits: 1.0 if min(bits.values()) >= 4 else 0.5, 0.99)
    assert all(b >= 4 for _, b in choice.bits) and choice.agreement == 1.0
    assert choice.area <= choice.widest_area


def test_iq_frames_are_deterministic_per_seed_and_realistic():
    a, la = iq_frames(21, 128, seed=5)
    b, lb = iq_frames(21, 128, seed=5)
    c, _ = iq_frames(21, 128, seed=6)
    assert a.dtype == np.float32 and a.shape == (21, 2, 128) and la.dtype == np.int64
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert sorted(set(la.tolist())) == list(range(len(CLASSES)))
    power = np.mean(a.astype(np.float64) ** 2, axis=(1, 2))
    assert np.allclose(power, 0.5, rtol=1e-4)  # unit complex power: RMS 0.707 per I or Q sample
    stepped, _ = iq_frames(4, 64, seed=1, step=1 / 64)
    assert np.array_equal(stepped * 64, np.round(stepped * 64))
