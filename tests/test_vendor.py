"""hwgen.flow.vendor: the Vivado project every Xilinx build writes (build.tcl, XDC), and --part."""

import re
from pathlib import Path

import pytest
from conftest import REPO, write_mlp

from hwgen.build import build
from hwgen.cli import main
from hwgen.errors import TwnError
from hwgen.flow.boards import load_board
from hwgen.flow.vendor import resolve_part, vivado_project, yosys_family


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_mlp(tmp_path_factory.mktemp("vendor") / "tiny.onnx", [6, 4, 3], seed=2)


def _tcl_lines(tcl: str) -> list[str]:
    return [line.strip() for line in tcl.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize(
    "board, clock, part, period",
    [
        ("zcu111", None, "xczu28dr-ffvg1517-2-e", "4.000"),
        ("zcu111", 312.5, "xczu28dr-ffvg1517-2-e", "3.200"),
        ("pynq-z2", 150, "xc7z020clg400-1", "6.667"),
        ("kv260", None, "xck26-sfvc784-2LV-c", "4.000"),
    ],
)
def test_the_project_names_the_part_files_and_clock(tmp_path, tiny_model, board, clock, part, period):
    out = tmp_path / "out"
    result = build(tiny_model, board, out, clock_mhz=clock)
    tcl = (out / "vivado" / "build.tcl").read_text()
    xdc = (out / "vivado" / "twn_clock.xdc").read_text()
    lines = _tcl_lines(tcl)
    assert f"create_project -force twn_axis [file join $here project] -part {part}" in lines
    assert "[file join $rtl_dir rtl/twn_top.v] \\" in lines and "[file join $rtl_dir rtl/twn_axis.v] \\" in lines
    assert "set_property top twn_axis [get_filesets sources_1]" in lines
    assert "add_files -norecurse -fileset constrs_1 [file join $here twn_clock.xdc]" in lines
    assert any("-mode out_of_context" in line and "synth_1" in line for line in lines)
    assert lines.index("launch_runs synth_1 -jobs $jobs") < lines.index("launch_runs impl_1 -jobs $jobs")
    assert "report_utilization -file [file join $reports utilization.rpt]" in lines
    assert "report_timing_summary -max_paths 10 -file [file join $reports timing_summary.rpt]" in lines
    assert f"set period {period}" in lines
    assert re.findall(r"create_clock .*", xdc) == [f"create_clock -period {period} -name clk [get_ports clk]"]
    mhz = result.report["clock_mhz"]
    assert abs(1000 / float(period) - mhz) < 0.05  # the XDC period is --clock-mhz
    # Every file the project adds exists, relative to the script's folder.
    for rel in re.findall(r"\[file join \$rtl_dir (\S+)\]", tcl):
        assert (out / rel).is_file()
    assert result.report["vendor_project"]["script"] == "vivado/build.tcl"
    assert "## Vivado project" in (out / "report.md").read_text()


def test_the_project_is_deterministic(tmp_path, tiny_model):
    for name in ("a", "b"):
        assert main([str(tiny_model), "--board", "zcu111", "-o", str(tmp_path / name), "--clock-mhz", "300"]) == 0
    for rel in ("vivado/build.tcl", "vivado/twn_clock.xdc"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


class _FakeVivado:
    """A Tcl interpreter whose Vivado commands record their arguments (no Vivado needed)."""

    def __init__(self, slack: float):
        tkinter = pytest.importorskip("tkinter")
        try:
            self.tcl = tkinter.Tcl()
        except tkinter.TclError as exc:
            pytest.skip(f"no Tcl interpreter: {exc}")
        self.calls: list[tuple[str, ...]] = []
        commands = (
            "create_project set_property add_files launch_runs wait_on_run open_run close_design "
            "report_utilization report_timing_summary get_runs get_filesets current_project get_timing_paths"
        )
        for name in commands.split():
            self.tcl.createcommand(name, self._recorder(name, slack))
        self.tcl.createcommand("get_property", self._get_property(slack))

    def _recorder(self, name, slack):
        def call(*args):
            self.calls.append((name, *args))
            return ""

        return call

    def _get_property(self, slack):
        def call(prop, *obj):
            self.calls.append(("get_property", prop))
            return {"PROGRESS": "100%", "STATUS": "route_design Complete!", "SLACK": str(slack)}[prop]

        return call

    def source(self, script: Path) -> None:
        self.tcl.eval(f"source {{{script}}}")


def test_the_script_runs_synthesis_implementation_and_reports_in_order(tmp_path, tiny_model):
    out = tmp_path / "out"
    build(tiny_model, "zcu104", out, clock_mhz=200)
    vivado = _FakeVivado(slack=0.25)
    vivado.source(out / "vivado" / "build.tcl")
    names = [c[0] for c in vivado.calls]
    create = vivado.calls[names.index("create_project")]
    assert create[-2:] == ("-part", "xczu7ev-ffvc1156-2-e")
    added = [c for c in vivado.calls if c[0] == "add_files"]
    assert [Path(p).name for p in added[0][-1].split()] == ["twn_top.v", "twn_axis.v"]
    assert all(Path(p).is_file() for p in added[0][-1].split())
    assert Path(added[1][-1]).name == "twn_clock.xdc" and Path(added[1][-1]).is_file()
    runs = [c[1] for c in vivado.calls if c[0] == "launch_runs"]
    assert runs == ["synth_1", "impl_1"]
    assert names.index("report_timing_summary") > names.index("launch_runs") + 1
    reports = [c[c.index("-file") + 1] for c in vivado.calls if c[0].startswith("report_")]
    assert {Path(p).name for p in reports} == {
        "utilization_synth.rpt",
        "utilization.rpt",
        "utilization_hierarchical.rpt",
        "timing_summary.rpt",
    }
    summary = (out / "vivado" / "summary.txt").read_text().splitlines()
    assert "part xczu7ev-ffvc1156-2-e" in summary and "clock_mhz 200" in summary
    assert "fmax_mhz 210.5" in summary  # 1000 / (5 ns - 0.25 ns)


def test_the_script_fails_when_timing_is_missed(tmp_path, tiny_model):
    import tkinter

    out = tmp_path / "out"
    build(tiny_model, "zcu104", out)
    vivado = _FakeVivado(slack=-0.5)
    with pytest.raises(tkinter.TclError, match="timing not met at 250 MHz"):
        vivado.source(out / "vivado" / "build.tcl")


@pytest.mark.parametrize(
    "part, family, synth_family, device",
    [
        ("xczu7ev-ffvc1156-2-e", "zynquplus", "xcup", "xczu7ev"),
        ("xck26-sfvc784-2LV-c", "zynquplus", "xcup", "xck26"),
        ("xcvu9p-flga2104-2L-e", "zynquplus", "xcup", "xcvu9p"),
        ("xcku040-ffva1156-2-e", "ultrascale", "xcu", "xcku040"),
        ("xc7z020clg400-1", "zynq7000", "xc7", "xc7z020"),
        ("xc7a35tcsg324-1", "zynq7000", "xc7", "xc7a35t"),
    ],
)
def test_part_override_tells_the_family(part, family, synth_family, device):
    board = resolve_part(load_board("zcu111"), part)
    assert (board.part, board.family, board.device) == (part, family, device)
    assert yosys_family(board) == synth_family
    assert board.lut == load_board("zcu111").lut  # capacity stays the preset's


def test_part_option_reaches_the_project_and_report(tmp_path, tiny_model):
    out = tmp_path / "out"
    assert main([str(tiny_model), "--board", "zcu111", "--part", "xczu7ev-ffvc1156-2-e", "-o", str(out)]) == 0
    assert "-part xczu7ev-ffvc1156-2-e" in (out / "vivado" / "build.tcl").read_text()
    assert '"part": "xczu7ev-ffvc1156-2-e"' in (out / "report.json").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--board", "zcu111", "--part", "xczu7ev ffvc1156"], "--part must be a Xilinx part name"),
        (["--board", "zcu111", "--part", "xczu7ev-ffvc1156-2-e;exit"], "--part must be a Xilinx part name"),
        (["--board", "zcu111", "--part", "xcv300-pq240-4"], "twngen knows 7-series"),
        (["--board", "zcu111", "--part", "iCE40UP5K-SG48"], "--part must be a Xilinx part name"),
        (["--board", "icebreaker", "--part", "iCE40HX8K-CT256"], "--part overrides the part of a Xilinx board"),
        (["--board", "zcu111", "--pnr"], "zcu111 (xczu28dr-ffvg1517-2-e) is a xilinx board"),
    ],
)
def test_bad_back_end_options_exit_2_with_one_message(tmp_path, tiny_model, capsys, args, message):
    out = tmp_path / "out"
    assert main([str(tiny_model), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("twngen: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_project_needs_a_xilinx_board():
    with pytest.raises(TwnError, match="a Vivado project needs a Xilinx board"):
        vivado_project(load_board("icebreaker"), 12.0, ["rtl/twn_top.v"])
    with pytest.raises(TwnError, match="cannot hold unquoted"):
        vivado_project(load_board("zcu111"), 250.0, ["rtl/a b.v"])


def test_zcu111_default_flow_is_unchanged_apart_from_the_project(tmp_path):
    out = tmp_path / "out"
    assert main([str(REPO / "examples" / "mlp_ternary.onnx"), "--board", "zcu111", "-o", str(out)]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "network.json",
            "report.json",
            "report.md",
            "rtl/twn_axis.v",
            "rtl/twn_top.v",
            "twn_top.core",
            "twn_top.d",
            "twn_top.f",
            "vivado/build.tcl",
            "vivado/twn_clock.xdc",
        ]
    )
