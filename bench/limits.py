#!/usr/bin/env python3
"""How large a dense network twngen builds on this machine: time and peak memory per size.

Each size is a ternary MLP ``N -> N -> ... -> 10`` (``--layers`` hidden layers of
``N``, 50% zeros, examples/make_ternary_mlp.py) built cold (fresh merge cache)
with ``twngen ... --allow-overflow`` under ``/usr/bin/time -v``, ``nice -n 19``
and an address-space cap (``--memory-gib``, default 24: the machine). Sizes
double until a build fails, runs out of the cap or takes longer than
``--max-minutes``; each result (wall time, peak RSS, adders, Verilog bytes)
goes to ``--results`` as it finishes.

    python bench/limits.py --sizes 256,512,1024,2048,4096 --layers 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from make_ternary_mlp import make_mlp  # noqa: E402


def _time_field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}: (.*)$", text, flags=re.M)
    return m.group(1).strip() if m else ""


def run_size(n: int, layers: int, memory: int, max_seconds: float, work: Path, flags: list[str]) -> dict[str, object]:
    import onnx

    sizes = [n] * (layers + 1) + [10]
    model = work / f"mlp_{n}.onnx"
    onnx.save(make_mlp(sizes, seed=1, zeros=0.5), str(model))
    out = work / f"out_{n}"
    env = {**os.environ, "TWNGEN_CACHE": str(work / f"cache_{n}")}
    cmd = ["/usr/bin/time", "-v", "nice", "-n", "19", sys.executable, "-m", "hwgen.cli", str(model),
           "--board", "zcu111", "-o", str(out), "--allow-overflow", *flags]  # fmt: skip

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    started = time.monotonic()
    entry: dict[str, object] = {"inputs": n, "layers": len(sizes) - 1, "sizes": sizes, "flags": flags}
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max_seconds, preexec_fn=cap,
                           check=False, cwd=REPO)  # fmt: skip
    except subprocess.TimeoutExpired:
        entry.update(outcome="timeout", wall_seconds=round(time.monotonic() - started, 1))
        return entry
    entry["wall_seconds"] = round(time.monotonic() - started, 1)
    entry["max_rss_mib"] = round(int(_time_field(r.stderr, "Maximum resident set size (kbytes)") or 0) / 1024, 1)
    entry["user_seconds"] = float(_time_field(r.stderr, "User time (seconds)") or 0)
    entry["exit_status"] = r.returncode
    if r.returncode != 0:
        entry["outcome"] = "failed"
        entry["error"] = r.stderr.strip().splitlines()[0][:500] if r.stderr.strip() else ""
        return entry
    report = json.loads((out / "report.json").read_text())
    entry.update(
        outcome="built",
        weights_nonzero=sum(int(la["weights_nonzero"]) for la in report["layers"]),
        adders=report["adders"],
        naive_adders=report["naive_adders"],
        verilog_bytes=(out / "rtl" / "twn_top.v").stat().st_size,
        lut_estimate=report["resources"]["lut"],
    )
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="128,256", help="comma-separated N, tried in order until one fails")
    ap.add_argument("--layers", type=int, default=2, help="hidden layers of N (then a final layer of 10)")
    ap.add_argument("--memory-gib", type=float, default=24)
    ap.add_argument("--max-minutes", type=float, default=15)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "limits.json")
    ap.add_argument("--flags", default="", help="more twngen options, e.g. '--adder-graph naive'")
    args = ap.parse_args()
    memory = int(args.memory_gib * (1 << 30))
    results = []
    with tempfile.TemporaryDirectory(prefix="twngen-limits-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            work = Path(tmp) / str(n)
            work.mkdir()
            entry = run_size(n, args.layers, memory, 60 * args.max_minutes, work, args.flags.split())
            results.append(entry)
            print(json.dumps(entry), flush=True)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            command = " ".join(["python", *sys.argv])
            summary = {"command": command, "memory_cap_gib": args.memory_gib, "results": results}
            args.results.write_text(json.dumps(summary, indent=1) + "\n")
            subprocess.run(["rm", "-rf", str(work)], check=False)
            if entry["outcome"] != "built":
                break


if __name__ == "__main__":
    main()
