#!/usr/bin/env python3
"""Differential fuzzing campaign (``make fuzz``): random supported networks, three checks each.

For every seed in ``--start .. --start + --networks``: the network of
``tests/fuzz_networks.network_from_seed(seed, generator)`` is written as ONNX, built,
and checked: golden vs onnxruntime within the formats' error bound (and the
report's stated error reproduced), every merged adder graph vs ``W @ x``,
the RTL linted (``verilator --lint-only -Wall`` with only the documented
waivers, ``fuzz_networks.check_lint``), and the RTL vs golden on a simulator
(``--simulators`` in turn, or every one with ``--all-simulators``; none with
``--simulators ''``) with random stalls on both sides. ``--rates both`` builds
every network twice, at full rate and at a quarter of it (digit-serial
layers), instead of at the rate it was drawn with. ``--generator lanes2d``
draws 2-D networks streamed at 2 or 4 pixels a cycle instead
(``fuzz_networks.draw_lane_network``: the first layers folded into lanes). A failing case
(a check disagreeing, a refusal of a network the generator means to be
supported, or a crash) is saved as a regression fixture under
``--fixtures`` (``seed-N/model.onnx`` + ``case.json``), which
``tests/test_fuzz.py`` replays. The summary goes to ``--results`` (JSON).

    nice -n 19 python bench/fuzz.py --networks 200 --vectors 40
    nice -n 19 python bench/fuzz.py --networks 40 --rates both --simulators '' \
        --results bench/results/fuzz_lint.json      # build and lint only
    nice -n 19 python bench/fuzz.py --networks 40 --generator lanes2d --simulators verilator \
        --results bench/results/fuzz_lanes2d.json   # 2-D networks at 2 and 4 pixels a cycle
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "examples"))

from fuzz_networks import (  # noqa: E402
    GENERATORS,
    FuzzFailure,
    build_case,
    check_golden_vs_onnxruntime,
    check_lint,
    check_merged_graphs,
    check_rtl,
    network_from_seed,
    to_onnx,
    with_rate,
    write_case,
)


def _prepared(spec: object, work: Path) -> tuple[Path, object]:
    import onnx

    from hwgen.build import ArithmeticOptions, prepare_network

    work.mkdir(parents=True, exist_ok=True)
    model = work / "model.onnx"
    onnx.save(to_onnx(spec), str(model))  # type: ignore[arg-type]
    return model, prepare_network(model, ArithmeticOptions())[0]


def run_one(
    seed: int,
    simulators: list[str],
    vectors: int,
    work: Path,
    no_build: bool,
    rate: str = "drawn",
    words: str = "exact",
    generator: str = "default",
) -> dict[str, object]:
    from hwgen.errors import TwnError

    spec = with_rate(network_from_seed(seed, generator), rate)
    entry: dict[str, object] = {"seed": seed, "rate": rate, "network": spec.describe(), "outcome": "ok"}
    if words != "exact":
        entry["words"] = words
    if generator != "default":
        entry["generator"] = generator
    started = time.monotonic()
    try:
        if no_build:
            model, network = _prepared(spec, work)
            entry["golden"] = check_golden_vs_onnxruntime(model, network)
            entry["graphs_checked"] = check_merged_graphs(network, seed)
            return entry
        model, network, report, outdir = build_case(spec, work, words)
        entry["adders"] = report["adders"]
        wraps = report.get("word_wraps")
        if wraps and wraps["samples_changed"]:
            # Words that wrap compute another function: the RTL is checked against the golden
            # model (which wraps the same), the golden model against onnxruntime only without wraps.
            entry["samples_changed_by_wraps"] = wraps["samples_changed"]
        else:
            entry["golden"] = check_golden_vs_onnxruntime(model, network, report)
        entry["graphs_checked"] = check_merged_graphs(network, seed)
        entry["lint"] = check_lint(outdir)
        entry["rtl"] = {}
        for sim in simulators:
            entry["rtl"][sim] = check_rtl(outdir, sim, vectors=vectors, seed=seed)  # type: ignore[index]
    except FuzzFailure as exc:
        entry.update(outcome="mismatch", check=exc.check, failure=str(exc))
    except TwnError as exc:
        entry.update(outcome="refused", check="build-refused", failure=str(exc))
    except Exception as exc:
        entry.update(outcome="crash", check=type(exc).__name__, failure=traceback.format_exc()[-3000:])
    finally:
        entry["seconds"] = round(time.monotonic() - started, 2)
    return entry


def run_isolated(
    seed: int,
    simulators: list[str],
    vectors: int,
    work: Path,
    timeout: float,
    rate: str = "drawn",
    words: str = "exact",
    generator: str = "default",
) -> dict[str, object]:
    """run_one in a child process (its own session) killed after ``timeout`` seconds: a simulation that
    hangs or crawls is recorded as a timeout instead of stopping the campaign."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / "entry.json"
    cmd = [sys.executable, __file__, "--one", str(seed), "--simulators", ",".join(simulators) or ",",
           "--vectors", str(vectors), "--work", str(work), "--rates", rate, "--words", words,
           "--generator", generator]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and the simulators it started
        proc.wait()
        return {
            "seed": seed, "rate": rate, "network": with_rate(network_from_seed(seed, generator), rate).describe(),
            "outcome": "timeout",
            "check": f"rtl-{'+'.join(simulators)}-timeout", "seconds": round(time.monotonic() - started, 2),
            "failure": f"no result after {timeout:.0f} s (build and {', '.join(simulators)} simulation)",
        }  # fmt: skip
    if not result.is_file():
        return {
            "seed": seed, "rate": rate, "network": with_rate(network_from_seed(seed, generator), rate).describe(),
            "outcome": "crash", "check": "child",
            "seconds": round(time.monotonic() - started, 2), "failure": err.decode(errors="replace")[-3000:],
        }  # fmt: skip
    return json.loads(result.read_text())


def _compact(e: dict[str, object]) -> list[object]:
    golden = e.get("golden") or {}
    ratio = round(golden["max_abs_error"] / golden["bound"], 4) if golden else None  # type: ignore[index]
    vectors = sum(r["vectors"] for r in (e.get("rtl") or {}).values())  # type: ignore[union-attr]
    rate = [] if e.get("rate", "drawn") == "drawn" else [e["rate"]]
    return [e["seed"], e["outcome"], e["seconds"], ratio, vectors, *rate]


def _dump(summary: dict[str, object]) -> str:
    """JSON with one line per case: seed, outcome, seconds, golden error / bound, RTL vectors
    (and the rate, unless as drawn)."""
    cases = summary.pop("cases")
    head = json.dumps(summary, indent=1)[:-2]
    lines = ",\n".join("  " + json.dumps(c) for c in cases)  # type: ignore[attr-defined]
    return f'{head},\n "cases": [\n{lines}\n ]\n}}\n'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--start", type=int, default=1000, help="first seed (the test suite uses 0-99)")
    ap.add_argument("--vectors", type=int, default=40, help="vectors per RTL simulation")
    ap.add_argument("--simulators", default="icarus,verilator", help="taken in turn, one per network")
    ap.add_argument("--all-simulators", action="store_true", help="every network on every simulator")
    ap.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures" / "fuzz")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "fuzz.json")
    ap.add_argument("--minutes", type=float, default=0, help="stop starting networks after this long (0: never)")
    ap.add_argument(
        "--no-build", action="store_true", help="only the cheap checks (golden vs onnxruntime, merged graphs)"
    )
    ap.add_argument("--timeout-minutes", type=float, default=10, help="per network (build and simulation)")
    ap.add_argument(
        "--rates",
        choices=("drawn", "full", "serial", "both"),
        default="drawn",
        help="build each network at the rate drawn for it, at full rate, at a quarter of it "
        "(digit-serial layers), or both full and serial (default %(default)s)",
    )
    ap.add_argument(
        "--words",
        default="exact",
        help="the build's --words (exact, calibrated or BITS): with BITS most accumulators wrap, and the RTL "
        "must still match the golden model, which wraps the same (default %(default)s)",
    )
    ap.add_argument(
        "--generator",
        choices=GENERATORS,
        default="default",
        help="the networks: any supported (default), or 2-D at 2 or 4 pixels a cycle (lanes2d)",
    )
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one seed into --work/entry.json
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sims = [s for s in args.simulators.split(",") if s]
    rates = ["full", "serial"] if args.rates == "both" else [args.rates]
    if args.one is not None:
        entry = run_one(args.one, sims, args.vectors, args.work, False, rates[0], args.words, args.generator)
        (args.work / "entry.json").write_text(json.dumps(entry))
        return

    started = time.monotonic()
    entries = []
    with tempfile.TemporaryDirectory(prefix="twngen-fuzz-") as tmp:
        os.environ.setdefault("TWNGEN_CACHE", str(Path(tmp) / "cache"))
        for k, seed in enumerate(range(args.start, args.start + args.networks)):
            if args.minutes and time.monotonic() - started > 60 * args.minutes:
                break
            use = sims if args.all_simulators else [sims[k % len(sims)]] if sims else []
            for rate in rates:
                work = Path(tmp) / f"seed-{seed}-{rate}"
                if args.no_build:
                    entry = run_one(seed, use, args.vectors, work, True, rate, args.words, args.generator)
                else:
                    entry = run_isolated(
                        seed, use, args.vectors, work, 60 * args.timeout_minutes, rate, args.words, args.generator
                    )
                shutil.rmtree(work, ignore_errors=True)
                entries.append(entry)
                if entry["outcome"] != "ok":
                    failing_sims = [s for s in use if str(entry.get("check", "")).startswith(f"rtl-{s}")]
                    name = f"seed-{seed}" + ("" if rate == "drawn" else f"-{rate}")
                    name += "" if args.generator == "default" else f"-{args.generator}"
                    folder = args.fixtures / name
                    spec = with_rate(network_from_seed(seed, args.generator), rate)
                    write_case(folder, spec, seed, str(entry["failure"]), str(entry["check"]), args.generator)
                    meta = json.loads((folder / "case.json").read_text())
                    # A timeout is not replayed in the simulator that crawled (the suite has a time budget).
                    meta["simulators"] = [] if entry["outcome"] == "timeout" else failing_sims
                    if args.words != "exact":
                        meta["words"] = args.words
                    (folder / "case.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
                print(f"{seed} {rate}: {entry['outcome']:8s} {entry['seconds']:6.1f}s {entry['network']}"
                      + (f"\n    {entry['check']}: {str(entry['failure'])[:300]}" if entry["outcome"] != "ok" else ""),
                      flush=True)  # fmt: skip
    wall = time.monotonic() - started
    outcomes = {o: sum(e["outcome"] == o for e in entries) for o in ("ok", "mismatch", "refused", "crash", "timeout")}
    by_sim: dict[str, dict[str, int]] = {}
    for e in entries:
        for sim, r in (e.get("rtl") or {}).items():  # type: ignore[union-attr]
            s = by_sim.setdefault(sim, {"networks": 0, "vectors": 0})
            s["networks"] += 1
            s["vectors"] += r["vectors"]
    summary = {
        "command": " ".join(["python", *sys.argv]),
        "mode": "golden and graphs only (--no-build)"
        if args.no_build
        else "build, golden, graphs, lint, RTL"
        if sims
        else "build, golden, graphs, lint (no simulation)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "networks": len(entries),
        "outcomes": outcomes,
        "rtl": by_sim,
        "golden_vs_onnxruntime_networks": sum("golden" in e for e in entries),
        # --words BITS: networks whose wrapped words changed outputs (checked against the golden model only).
        "networks_changed_by_wraps": sum("samples_changed_by_wraps" in e for e in entries),
        "merged_graphs_checked": sum(int(e.get("graphs_checked", 0)) for e in entries),  # type: ignore[call-overload]
        "linted": sum("lint" in e or e.get("check") == "lint" for e in entries),
        "lint_failures": sum(e.get("check") == "lint" for e in entries),
        "worst_error_over_bound": max(
            (e["golden"]["max_abs_error"] / e["golden"]["bound"] for e in entries if "golden" in e), default=0.0
        ),
        "wall_seconds": round(wall, 1),
        "failures": [e for e in entries if e["outcome"] != "ok"],
        # One line a network: seed, outcome, seconds, golden error / bound, RTL vectors.
        "cases": [_compact(e) for e in entries],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(_dump(summary))
    print(
        f"{len(entries)} networks in {wall / 60:.1f} min: {outcomes}; linted {summary['linted']} "
        f"({summary['lint_failures']} with findings); RTL {by_sim}; "
        f"worst error/bound {summary['worst_error_over_bound']:.3f}; results in {args.results}"
    )
    sys.exit(1 if outcomes["mismatch"] or outcomes["crash"] or outcomes["timeout"] else 0)


if __name__ == "__main__":
    main()
