"""Vendor-tool project files: the Vivado batch project every Xilinx build writes to OUTDIR/vivado/.

``vivado_project`` fills ``rtl_templates/vivado_build.tcl.tmpl`` and
``vivado_clock.xdc.tmpl`` from the board preset (or a ``--part`` override) and
the clock. Templates rather than Amaranth's ``XilinxPlatform``: the generated
core is an out-of-context IP with hundreds of stream ports and no pins, while
the platform flow requests board pins and I/O buffers, synthesises in context
and always ends in ``write_bitstream`` (which an out-of-context design cannot
do); it would also re-emit the Verilog instead of adding the very files the
user lints and simulates (``docs/build_flow.md``).

``resolve_part`` checks a ``--part`` and tells its family, so the Yosys
estimate and the Vivado project agree on the device.
"""

from __future__ import annotations

import re
from dataclasses import replace
from string import Template

from hwgen import __version__
from hwgen.errors import TwnError
from hwgen.flow.boards import Board
from hwgen.paths import RTL_TEMPLATES_DIR

__all__ = ["VIVADO_DIR", "resolve_part", "vivado_project"]

#: Where the project files go inside OUTDIR.
VIVADO_DIR = "vivado"

# Xilinx part names: device, package and speed grade (7-series glue device and
# package: xc7z020clg400-1; UltraScale+ separates them: xczu28dr-ffvg1517-2-e).
_PART = re.compile(r"^xc[a-z0-9]+(-[a-z0-9]+){1,3}$", re.IGNORECASE)

# (prefix, board family, synth_xilinx family): the first prefix that matches wins.
_FAMILIES = (
    (re.compile(r"^xc7", re.I), "zynq7000", "xc7"),
    (re.compile(r"^xc(zu|k26|k24|au|[kv]u\d+p)", re.I), "zynquplus", "xcup"),
    (re.compile(r"^xc[kv]u\d+", re.I), "ultrascale", "xcu"),
)


class _TclTemplate(Template):
    # TCL is full of $ and % ; @{name} is free.
    delimiter = "@"


def resolve_part(board: Board, part: str | None) -> Board:
    """The board with ``part`` (``--part``) in place of its own, its family from the part name.

    Raises
    ------
    TwnError
        ``part`` is not a Xilinx part name twngen can tell the family of, or the
        board is not a Xilinx board (a Lattice board's pins fix its device).
    """
    if part is None:
        return board
    if board.vendor != "xilinx":
        raise TwnError(
            f"--part overrides the part of a Xilinx board (its Vivado project); {board.name} is a "
            f"{board.vendor} {board.family} board whose pin map fixes the device {board.part}: "
            "for another device write a board preset (boards/*.toml)"
        )
    if not _PART.match(part):
        raise TwnError(
            f"--part must be a Xilinx part name such as xczu28dr-ffvg1517-2-e or xc7z020clg400-1, not {part!r}"
        )
    for prefix, family, _ in _FAMILIES:
        if prefix.match(part):
            device = part.split("-")[0].lower()
            glued = re.match(r"xc7[a-z]+\d+t?", device)  # xc7z020clg400-1: device glued to package
            if family == "zynq7000" and glued:
                device = glued.group()
            return replace(board, part=part, family=family, device=device, package="", speed="")
    raise TwnError(
        f"--part {part!r}: twngen knows 7-series (xc7...), UltraScale (xcku/xcvu...) and UltraScale+ "
        "(xczu, xck26, xcau, xc[kv]u...p) parts"
    )


def yosys_family(board: Board) -> str | None:
    """``synth_xilinx -family`` for a Xilinx board (None for other vendors)."""
    if board.vendor != "xilinx":
        return None
    return {"zynq7000": "xc7", "zynquplus": "xcup", "ultrascale": "xcu"}.get(board.family)


def vivado_project(
    board: Board, clock_mhz: float, rtl: list[str], top: str = "twn_axis", model: str = "model"
) -> dict[str, str]:
    """``{path in OUTDIR: text}`` of the Vivado project: ``vivado/build.tcl`` and ``vivado/twn_clock.xdc``.

    Parameters
    ----------
    board : Board
        A Xilinx board (after :func:`resolve_part`).
    clock_mhz : float
        The clock constrained on ``top``'s ``clk``.
    rtl : list of str
        RTL files, relative to OUTDIR.
    top : str
        The top module (the AXI4-Stream wrapper by default).
    model : str
        The model's file name, for the header comment.
    """
    if board.vendor != "xilinx":
        raise TwnError(f"a Vivado project needs a Xilinx board, not {board.name} ({board.vendor})")
    if not (clock_mhz > 0):
        raise TwnError(f"clock_mhz must be positive, not {clock_mhz!r}")
    period = _period_ns(clock_mhz)
    xdc = "twn_clock.xdc"
    fields = {
        "version": __version__,
        "model": "".join(c if c.isprintable() and c not in "\r\n{}[]$\\" else "_" for c in model),
        "part": board.part,
        "top": top,
        "project": top,
        "xdc": xdc,
        "clock_mhz": f"{clock_mhz:g}",
        "period_ns": period,
        "rtl_dir": "..",
        "rtl_files": "".join(f"    [file join $rtl_dir {_tcl_word(path)}] \\\n" for path in rtl),
    }
    tcl = _TclTemplate((RTL_TEMPLATES_DIR / "vivado_build.tcl.tmpl").read_text()).substitute(fields)
    constraints = _TclTemplate((RTL_TEMPLATES_DIR / "vivado_clock.xdc.tmpl").read_text()).substitute(fields)
    return {f"{VIVADO_DIR}/build.tcl": tcl, f"{VIVADO_DIR}/{xdc}": constraints}


def _period_ns(clock_mhz: float) -> str:
    """The clock period in ns, to the picosecond (Vivado keeps three decimals)."""
    return f"{1000.0 / clock_mhz:.3f}"


def _tcl_word(path: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", path):
        raise TwnError(f"RTL path {path!r} has characters a TCL word cannot hold unquoted")
    return path
