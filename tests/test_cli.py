"""The CLI contract: outputs, report fields, determinism, and clear refusals."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import PROGRESS_LINE, REPO, stderr_without_progress, write_mlp
from onnx import TensorProto, helper, numpy_helper

from hwgen import golden
from hwgen.cli import main
from hwgen.plan import plan_network
from hwgen.verify import load_build


def run_cli(*args, cwd=None, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hwgen.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "mlp"
    model = REPO / "examples" / "mlp_ternary.onnx"
    assert main([str(model), "--board", "zcu111", "-o", str(out)]) == 0
    return model, out


def test_build_writes_rtl_and_reports(built):
    _, out = built
    assert (out / "rtl" / "twn_top.v").read_text().count("module twn_top") == 1
    assert (out / "report.md").read_text().startswith("# twngen report")
    report = json.loads((out / "report.json").read_text())
    for key in (
        "model",
        "board",
        "clock_mhz",
        "layers",
        "latency_cycles",
        "initiation_interval_cycles",
        "throughput_per_s",
        "resources",
        "fits",
        "accuracy",
        "options",
    ):
        assert key in report
    for layer in report["layers"]:
        for key in ("name", "op", "in_shape", "out_shape", "weights_nonzero", "adders", "act_bits"):
            assert key in layer
    assert set(report["resources"]) == {"lut", "ff", "bram", "dsp"}
    assert not list(out.parent.glob(".mlp.*"))  # no temporary folders left


def test_report_numbers_are_the_plans(built):
    _, out = built
    network, report = load_build(out)
    plan = plan_network(network)
    assert report["latency_cycles"] == plan.latency
    assert report["initiation_interval_cycles"] == plan.initiation_interval
    assert report["throughput_per_s"] == report["clock_mhz"] * 1e6 / plan.initiation_interval
    assert [lay["adders"] for lay in report["layers"]] == [lp.graph.adders for lp in plan.layers]
    assert [lay["weights_nonzero"] for lay in report["layers"]] == [
        int(np.count_nonzero(lp.layer.weights)) for lp in plan.layers
    ]
    assert report["fits"] is True
    assert report["accuracy"]["top1_agreement"] >= 0.99


def _check_parts(report: dict) -> None:
    """Every layer's parts add up to its total, the parts of the design to the design's."""
    keys = ("lut", "ff", "bram", "dsp")
    for layer in report["layers"]:
        assert layer["parts"] and set(layer["parts"]) <= set(report["resource_parts"])
        for k in keys:
            assert sum(p[k] for p in layer["parts"].values()) == layer[k], (layer["name"], k)
    for k in keys:
        assert sum(p[k] for p in report["resources_by_part"].values()) == report["resources"][k]
        outside = sum(p[k] for p in report["resources_outside_layers"].values())
        assert outside + sum(layer[k] for layer in report["layers"]) == report["resources"][k]


def test_report_splits_every_layer_into_parts(built, tmp_path):
    _, out = built
    report = json.loads((out / "report.json").read_text())
    _check_parts(report)
    assert set(report["resources_by_part"]) == {"adder_graph", "requantiser", "io"}
    md = (out / "report.md").read_text()
    assert "## Where the area goes" in md and "| adder graph | requantiser | I/O, FIFO | total |" in md
    # A frame network at a serial rate: window buffers, converters, pools, weights in memory.
    sys.path.insert(0, str(REPO / "examples"))
    from make_conv_net import vgg1d

    model = tmp_path / "conv.onnx"
    onnx.save(vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=5, seed=12), str(model))
    assert main([str(model), "--board", "zcu111", "-o", str(tmp_path / "conv"), "--input-rate", "0.25"]) == 0
    report = json.loads((tmp_path / "conv" / "report.json").read_text())
    _check_parts(report)
    assert {"window_buffer", "serial_converters", "pooling", "weight_memory", "collector"} <= set(
        report["resources_by_part"]
    )
    md = (tmp_path / "conv" / "report.md").read_text()
    for layer in report["layers"]:
        assert f"| {layer['name']} | " in md.split("## Where the area goes")[1]


def test_rebuild_is_byte_identical_across_folders_and_hash_seeds(tmp_path):
    model = REPO / "examples" / "mlp_ternary.onnx"
    outs = []
    for k, seed in enumerate(("0", "12345")):
        cwd = tmp_path / f"wd{k}"
        cwd.mkdir()
        r = run_cli(model, "--board", "zcu111", "-o", "out", cwd=cwd, env={"PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(cwd / "out")
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f


def _sigmoid_model(path: Path) -> Path:
    w = numpy_helper.from_array(np.full((3, 4), 0.5, dtype=np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W"], ["h"], name="fc1", transB=1),
            helper.make_node("Sigmoid", ["h"], ["y"], name="squash"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("unsupported op", ["{sigmoid}", "--board", "zcu111"], "node 'squash' (Sigmoid)"),
        ("missing file", ["{tmp}/nope.onnx", "--board", "zcu111"], "no such model file"),
        ("garbage file", ["{junk}", "--board", "zcu111"], "not a readable ONNX model"),
        ("unknown board", ["{example}", "--board", "zcu999"], "unknown board 'zcu999'"),
        ("bad option", ["{example}", "--board", "zcu111", "--act-bits", "1"], "--act-bits"),
        ("bad calibration", ["{example}", "--board", "zcu111", "--calibrate", "{junk}"], "--calibrate"),
        (
            "unknown layer",
            ["{example}", "--board", "zcu111", "--layer-act-bits", "nope=4"],
            "activation bits given for 'nope', which is not a convolution or dense layer",
        ),
        (
            "two precision choices",
            ["{example}", "--board", "zcu111", "--precision", "incremental", "--layer-act-bits", "fc1=2"],
            "not both",
        ),
        (
            "merge memory too small",
            ["{example}", "--board", "zcu111", "--merge-memory", "0.001"],
            "cannot be merged within the merge memory budget of 0.00 GB",
        ),
        (
            "bad precision bounds",
            ["{example}", "--board", "zcu111", "--precision", "incremental", "--min-act-bits", "20"],
            "--min-act-bits",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, case, args, message):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage\xff")
    subs = {
        "sigmoid": _sigmoid_model(tmp_path / "sig.onnx"),
        "tmp": tmp_path,
        "junk": junk,
        "example": REPO / "examples" / "mlp_ternary.onnx",
    }
    out = tmp_path / "out"
    r = run_cli(*[a.format(**subs) for a in args], "-o", out)
    assert r.returncode == 2, case
    # The stages started before the refusal, then one error line, the last.
    error = stderr_without_progress(r.stderr)
    assert message in error and error.startswith("twngen: error:") and error.count("\n") == 1, r.stderr
    assert r.stderr.endswith(error)
    assert "Traceback" not in r.stderr + r.stdout
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_failed_rebuild_leaves_previous_outdir_intact(tmp_path):
    out = tmp_path / "keep"
    r = run_cli(REPO / "examples" / "mlp_ternary.onnx", "--board", "zcu111", "-o", out)
    assert r.returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = run_cli(_sigmoid_model(tmp_path / "sig.onnx"), "--board", "zcu111", "-o", out)
    assert r.returncode == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_an_output_folder_the_file_system_refuses_exits_2_without_a_traceback(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    r = run_cli(REPO / "examples" / "mlp_ternary.onnx", "--board", "zcu111", "-o", blocker / "out")
    error = stderr_without_progress(r.stderr)
    assert r.returncode == 2 and error.startswith("twngen: error:") and str(blocker) in error, r.stderr
    assert error.count("\n") == 1 and r.stderr.endswith(error)
    assert "Traceback" not in r.stderr + r.stdout
    assert blocker.read_text() == "not a folder\n"


def test_boards_lists_zcu111(capsys):
    assert main(["boards"]) == 0
    text = capsys.readouterr().out
    assert "zcu111" in text and "xczu28dr-ffvg1517-2-e" in text and "425,280" in text


def test_golden_command_writes_dequantised_outputs(tmp_path, built):
    model, out = built
    x = np.random.default_rng(5).standard_normal((64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert (
        main(
            [
                "golden",
                str(model),
                "--inputs",
                str(tmp_path / "x.npy"),
                "--outputs",
                str(tmp_path / "y.npy"),
                "--codes",
                str(tmp_path / "q.npy"),
            ]
        )
        == 0
    )
    y = np.load(tmp_path / "y.npy")
    network, _ = load_build(out)
    assert y.shape == (64, 10)
    np.testing.assert_array_equal(
        np.load(tmp_path / "q.npy"), golden.run_integer(network, golden.quantize_input(network, x))
    )
    np.testing.assert_allclose(y, golden.run(network, x), rtol=1e-6)


def test_golden_options_change_the_arithmetic_like_the_build(tmp_path):
    model = write_mlp(tmp_path / "m.onnx", [16, 8, 4], seed=4)
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    base = ["golden", str(model), "--inputs", str(tmp_path / "x.npy")]
    assert main([*base, "--outputs", str(tmp_path / "a.npy"), "--act-bits", "6"]) == 0
    assert main([*base, "--outputs", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert not np.array_equal(a, b)


def test_incremental_build_records_precisions_that_golden_reproduces(tmp_path):
    model = write_mlp(tmp_path / "m.onnx", [16, 12, 8, 4], seed=6)
    out = tmp_path / "inc"
    args = [str(model), "--board", "zcu111", "-o", str(out), "--input-rate", "2", "--precision", "incremental"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    chosen = report["options"]["layer_act_bits"]
    network, _ = load_build(out)
    hidden = [layer for layer in network.layers[:-1]]
    assert sorted(chosen) == sorted(layer.name for layer in hidden)
    for layer in hidden:  # narrower than the fixed 16 bits: the II is 8 cycles
        assert layer.requant.out.hi == (1 << chosen[layer.name]) - 1 < (1 << 15) - 1
    x = np.random.default_rng(2).standard_normal((32, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    spec = ",".join(f"{name}={bits}" for name, bits in chosen.items())
    golden_args = ["golden", str(model), "--inputs", str(tmp_path / "x.npy"), "--codes", str(tmp_path / "q.npy")]
    assert main([*golden_args, "--outputs", str(tmp_path / "y.npy"), "--layer-act-bits", spec]) == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "q.npy"), golden.run_integer(network, golden.quantize_input(network, x))
    )
    other = ",".join(f"{name}={bits + 1}" for name, bits in chosen.items())
    r = run_cli("verify", out, "--layer-act-bits", other)
    assert r.returncode == 2 and "--layer-act-bits" in r.stderr and "differs from the build" in r.stderr


def test_verify_refuses_options_that_differ_from_the_build(built):
    _, out = built
    r = run_cli("verify", out, "--act-bits", "8")
    assert r.returncode == 2 and "--act-bits 8 differs" in r.stderr


def test_verify_refuses_a_folder_that_is_not_a_build(tmp_path):
    r = run_cli("verify", tmp_path)
    assert r.returncode == 2 and "not a twngen build folder" in r.stderr


#: The stages a build of the example MLP reports, in order.
BUILD_STAGES = [
    "parsing mlp_ternary.onnx",
    "quantising activations",
    "merging adder graphs: 3/3 layers",
    "scheduling digit widths",
    "planning and estimating resources",
    "accuracy check against onnxruntime",
    "emitting Verilog",
    "writing out",
]


def _finished_stages(stderr: str) -> list[str]:
    """The stages a plain progress log says finished, with their elapsed times checked."""
    done = []
    for line in stderr.splitlines():
        assert PROGRESS_LINE.match(line), f"not a progress line: {line!r}"
        m = re.fullmatch(r"twngen: \[ *\d+\.\ds\] (.*?)(?:, |: )done in \d+\.\ds", line)
        if m:
            done.append(m.group(1))
    return done


def test_build_reports_its_stages_on_stderr_and_quiet_silences_them(tmp_path):
    """Plain lines when stderr is not a terminal; -q: nothing; stdout and every file the same."""
    model = REPO / "examples" / "mlp_ternary.onnx"
    runs = {}
    for flags in ((), ("-q",)):
        cwd = tmp_path / ("quiet" if flags else "loud")
        cwd.mkdir()
        runs[flags] = run_cli(model, "--board", "zcu111", "-o", "out", *flags, cwd=cwd)
        assert runs[flags].returncode == 0, runs[flags].stderr
    loud, quiet = runs[()], runs[("-q",)]
    assert _finished_stages(loud.stderr) == BUILD_STAGES
    assert "\r" not in loud.stderr and "\x1b" not in loud.stderr
    assert quiet.stderr == ""
    assert loud.stdout == quiet.stdout and loud.stdout.startswith("twngen: built mlp_ternary.onnx")
    assert not any(PROGRESS_LINE.match(line) for line in loud.stdout.splitlines())
    files = sorted(p.relative_to(tmp_path / "loud") for p in (tmp_path / "loud").rglob("*") if p.is_file())
    assert files and files == sorted(
        p.relative_to(tmp_path / "quiet") for p in (tmp_path / "quiet").rglob("*") if p.is_file()
    )
    for f in files:
        assert (tmp_path / "loud" / f).read_bytes() == (tmp_path / "quiet" / f).read_bytes(), f


def test_verify_reports_the_compile_and_the_vectors_passed(built, tmp_path):
    import shutil

    out = tmp_path / "mlp"  # a fresh copy with no compiled model, not shared with other tests
    shutil.copytree(built[1], out, ignore=shutil.ignore_patterns("sim"))
    own = {"TWNGEN_SIM_CACHE": ""}
    loud = run_cli("verify", out, "--simulator", "icarus", "--vectors", "6", env=own)
    quiet = run_cli("verify", out, "--simulator", "icarus", "--vectors", "6", "--quiet", env=own)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert _finished_stages(loud.stderr) == [
        "compiling with Icarus Verilog",
        "simulating 6 vectors on Icarus Verilog: 6/6 vectors passed",
    ]
    assert quiet.stderr == ""
    assert loud.stdout == quiet.stdout and "[icarus] 6 passed, 0 failed" in loud.stdout


def test_a_value_too_wide_for_the_verilog_generator_exits_2_before_the_verilog(tmp_path, capsys):
    """A flatten of 4,096 16-bit features before a dense adder graph would be one 65,536-bit
    collector value, one bit more than Amaranth's netlist holds (it failed an assertion in a
    worker after minutes of conversion): refused after planning, naming the stage and the fix."""
    from make_conv_net import stack

    from hwgen.backend import MAX_VALUE_BITS, too_wide
    from hwgen.build import ArithmeticOptions, build
    from hwgen.plan import plan_network

    model = tmp_path / "wide.onnx"
    onnx.save(stack("c64k3p1,d4", (1, 8, 8), seed=2), str(model))
    out = tmp_path / "out"
    assert main([str(model), "--board", "zcu111", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    assert "cannot generate the Verilog: stage 1, the frame collector (4,096 elements of 16 bits" in err
    assert f"one 65,536-bit value; the Verilog generator (Amaranth) takes at most {MAX_VALUE_BITS:,}" in err
    assert "elements of at most 15 bits there (--act-bits 15" in err
    narrower = build(model, "zcu111", tmp_path / "e", ArithmeticOptions(act_bits=15), emit_rtl=False)
    assert too_wide(plan_network(narrower.network)) is None
