"""Build-flow integration: depfile, filelist, FuseSoC core, the Makefile fragment, board presets."""

import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO

from hwgen.cli import main
from hwgen.flow.boards import list_boards, load_board


def test_board_presets_are_complete():
    names = {b.name for b in list_boards()}
    assert {"zcu111", "zcu104", "zcu102", "ultra96v2", "pynq-z2", "kv260"} <= names
    for b in list_boards():
        assert b.part.startswith(b.device) and b.clock_mhz > 0
        assert min(b.lut, b.ff, b.bram36, b.dsp) > 0 and b.ff >= b.lut
    assert load_board("zcu111").part == "xczu28dr-ffvg1517-2-e"


def test_build_writes_depfile_filelist_and_core(tmp_path):
    model = REPO / "examples" / "mlp_ternary.onnx"
    out = tmp_path / "ip"
    assert main([str(model), "--board", "zcu104", "-o", str(out)]) == 0
    dep = (out / "twn_top.d").read_text()
    assert dep.startswith(f"{out}/rtl/twn_top.v {out}/rtl/twn_axis.v {out}/report.json: {model}\n")
    assert (out / "twn_top.f").read_text().split() == ["rtl/twn_top.v", "rtl/twn_axis.v"]
    core = (out / "twn_top.core").read_text()
    assert core.startswith("CAPI=2:") and "toplevel: twn_top" in core and "- rtl/twn_top.v" in core
    for line in (out / "twn_top.f").read_text().split():
        assert (out / line).is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_fragment_rebuilds_exactly_when_inputs_change(tmp_path):
    frag = subprocess.run(
        [sys.executable, "-m", "hwgen.cli", "make-fragment"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "twngen.mk").write_text(frag)
    shutil.copy(REPO / "examples" / "mlp_ternary.onnx", tmp_path / "net.onnx")
    (tmp_path / "Makefile").write_text(
        "TWNGEN_MODEL := net.onnx\nTWNGEN_OUT := build/net\n"
        f"TWNGEN := {sys.executable} -m hwgen.cli\ninclude twngen.mk\nall: $(TWNGEN_RTL)\n"
    )

    def make(*args):
        r = subprocess.run(["make", "-s", *args], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    rtl = tmp_path / "build" / "net" / "rtl" / "twn_top.v"
    assert "built net.onnx" in make()
    first = rtl.stat().st_mtime_ns
    assert make() == ""  # nothing changed: nothing rebuilt
    assert rtl.stat().st_mtime_ns == first
    time.sleep(0.01)
    os.utime(tmp_path / "net.onnx")  # the model changed
    assert "built net.onnx" in make()
    assert "built net.onnx" in make("TWNGEN_FLAGS=--act-bits 12")  # the options changed
    assert make("TWNGEN_FLAGS=--act-bits 12") == ""


def test_synth_estimate_puts_yosys_counts_beside_the_model(tmp_path):
    from conftest import write_mlp

    from hwgen.build import build

    model = write_mlp(tmp_path / "tiny.onnx", [6, 4, 3], seed=2)
    result = build(model, "zcu104", tmp_path / "out", synth_estimate=True)
    syn = result.report["synthesis"]
    res = result.report["resources"]
    assert syn["lut_sites"] > 0 and syn["ff"] > 0
    assert syn["dsp"] == res["dsp"]  # one DSP48E2 per requantisation multiply, as estimated
    # The first-order model stays within a factor of two of synthesis on a tiny design.
    assert 0.5 < res["lut"] / syn["lut_sites"] < 2.0
    assert "Yosys (yosys synth_xilinx" in (tmp_path / "out" / "report.md").read_text()
