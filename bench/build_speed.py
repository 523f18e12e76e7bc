#!/usr/bin/env python3
"""Build time, peak memory and Verilog size of the classifier-shaped network, before and after.

Writes the model of the published modulation classifier's shape
(``examples/make_conv_net.py``, ``vgg1d``: [2, 1024] I/Q in, 7 conv/pool blocks
of 64 channels, dense 512 -> 512 -> 24) and builds it with

    twngen classifier.onnx --board zcu111 --input-rate 2

once per checkout and repetition, each with a fresh (cold) merge cache
(``TWNGEN_CACHE`` in a new folder). A checkout is a folder holding the
``hwgen`` package (by default, for the "before", a temporary git worktree of
the commit the work started from): its build runs in this Python with
``PYTHONPATH`` set to it. Repetitions alternate
between the checkouts, so a machine shared with other jobs loads both alike.
Per build it records the wall time, the CPU time of the build and its worker
processes, the peak resident memory of the largest process (``ru_maxrss`` of
the children), the load average at the start, the stage times twngen printed
on stderr, and the bytes of ``rtl/twn_top.v``; and whether the checkouts'
Verilog is byte-identical across repetitions (it must be: deterministic).
``--verilator`` also times ``twngen verify --simulator verilator`` of two frames
on each checkout's last build, in a fresh simulator cache: nearly all of it
Verilator's C++ build.

    python bench/build_speed.py [--before COMMIT_OR_FOLDER] [--repeat 2] [--verilator]

Results go to ``bench/results/build_speed.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

COMMAND = ["--board", "zcu111", "--input-rate", "2"]
#: The commit the build-speed changes started from (main at the time).
BEFORE = "96d03e1"
_STAGE = re.compile(r"twngen: \[\s*[\d.]+s\] (.+?)(?:: \d+/\d+ [\w ]+,|:) done in ([\d.]+)s")


def _git_commit(path: Path) -> str:
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "hwgen"], capture_output=True, text=True)
    return proc.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def build_once(checkout: Path, model: Path, work: Path) -> dict[str, object]:
    """One cold-cache build of ``model`` with the ``hwgen`` of ``checkout``, measured in a child
    process (its own resource usage: the build and its workers)."""
    outdir = work / "build"
    cache = work / "cache"
    shutil.rmtree(outdir, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "TWNGEN_CACHE": str(cache), "PYTHONPATH": str(checkout)}
    # A fresh interpreter per build (the children's rusage is read around it): each build's
    # peak memory and CPU are its own.
    probe = (
        "import resource, sys, time;"
        "sys.argv = ['twngen', *sys.argv[1:]];"
        "t0 = time.monotonic();"
        "from hwgen.cli import main;"
        "code = main();"
        "wall = time.monotonic() - t0;"
        "own = resource.getrusage(resource.RUSAGE_SELF);"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print('BUILD_SPEED', wall, own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,"
        " max(own.ru_maxrss, kids.ru_maxrss), file=sys.stderr);"
        "sys.exit(code)"
    )
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(model), *COMMAND, "-o", str(outdir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build with {checkout} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("BUILD_SPEED"))
    _, build_wall, cpu, rss_kb = line.split()
    verilog = (outdir / "rtl" / "twn_top.v").read_bytes()
    stages = {re.sub(r"^writing .*", "writing", m.group(1)): float(m.group(2)) for m in _STAGE.finditer(proc.stderr)}
    return {
        "wall_seconds": round(wall, 1),
        "build_seconds": round(float(build_wall), 1),
        "cpu_seconds": round(float(cpu), 1),
        "peak_rss_mb": round(int(rss_kb) / 1024, 1),
        "load_average_at_start": round(load, 2),
        "stage_seconds": stages,
        "verilog_bytes": len(verilog),
        "verilog_sha256": hashlib.sha256(verilog).hexdigest(),
        "network_json_bytes": (outdir / "network.json").stat().st_size,
    }


def verilator_build(checkout: Path, work: Path) -> dict[str, object]:
    """Seconds of ``twngen verify`` on Verilator for two frames of the RTL built in ``work/build``,
    in a fresh simulator cache: almost all of it Verilator's C++ build (with its runtime
    library, the same for every design). The verify's own verdict is recorded beside it."""
    env = {
        **os.environ,
        "TWNGEN_CACHE": str(work / "cache"),
        "PYTHONPATH": str(checkout),
        "TWNGEN_SIM_CACHE": str(work / "simcache"),
    }
    shutil.rmtree(work / "simcache", ignore_errors=True)
    verify = ["verify", str(work / "build"), "--simulator", "verilator", "--vectors", "2"]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hwgen.cli", *verify], capture_output=True, text=True, env=env, cwd=work
    )
    seconds = round(time.monotonic() - t0, 1)
    return {"seconds": seconds, "exit_status": proc.returncode, "output": proc.stdout.strip()[-500:]}


def _summary(runs: list[dict[str, object]]) -> dict[str, object]:
    def best(key: str) -> float:
        return min(float(r[key]) for r in runs)  # type: ignore[arg-type]

    return {
        "builds": len(runs),
        "best_wall_seconds": best("wall_seconds"),
        "best_cpu_seconds": best("cpu_seconds"),
        "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in runs),  # type: ignore[arg-type]
        "verilog_bytes": runs[0]["verilog_bytes"],
        "verilog_mb": round(int(runs[0]["verilog_bytes"]) / 1e6, 2),  # type: ignore[call-overload]
        "deterministic": len({r["verilog_sha256"] for r in runs}) == 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--before",
        default=BEFORE,
        help=f"checkout (a folder) or commit to compare with; a commit is checked out in a temporary "
        f"git worktree (default {BEFORE}: main before the build-speed work)",
    )
    ap.add_argument("--after", default=str(REPO), help="checkout to measure (default: this one)")
    ap.add_argument("--repeat", type=int, default=2, help="builds per checkout, alternating")
    ap.add_argument("--verilator", action="store_true", help="also time Verilator's C++ build of each RTL")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "build_speed.json"))
    args = ap.parse_args()

    import onnx
    from make_conv_net import vgg1d

    verilator: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="twngen-build-speed-") as tmp:
        before = Path(args.before)
        if not before.is_dir():
            before = Path(tmp) / "before-checkout"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before], check=True
            )
        checkouts = {"before": before.resolve(), "after": Path(args.after).resolve()}
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in checkouts}
        model = Path(tmp) / "classifier.onnx"
        onnx.save(vgg1d(channels=args.channels, seed=0), str(model))
        for rep in range(args.repeat):
            for name, checkout in checkouts.items():
                work = Path(tmp) / name
                work.mkdir(exist_ok=True)
                run = build_once(checkout, model, work)
                print(f"{name} #{rep + 1}: {json.dumps(run)}", flush=True)
                runs[name].append(run)
                if args.verilator and rep == args.repeat - 1:
                    verilator[name] = verilator_build(checkout, work)
                    print(f"{name}: verilator {json.dumps(verilator[name])}", flush=True)
        commits = {name: _git_commit(path) for name, path in checkouts.items()}
        if before != Path(args.before):
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=True)

    result: dict[str, object] = {
        "model": f"vgg1d channels={args.channels} seed=0 (examples/make_conv_net.py)",
        "command": "twngen classifier.onnx " + " ".join(COMMAND) + " (cold merge cache: a fresh TWNGEN_CACHE)",
        "machine": f"{os.cpu_count()} cores, shared with other jobs (see load_average_at_start)",
        "checkouts": {name: {"path": str(path), "commit": commits[name]} for name, path in checkouts.items()},
        "summary": {name: _summary(r) for name, r in runs.items()},
        "runs": runs,
    }
    if verilator:
        result["verilator_verify_two_frames"] = verilator
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
