#!/usr/bin/env python3
"""A CIFAR-10-shaped ternary VGG, end to end: generate, build at one pixel a cycle, simulate, record.

Writes ``examples/make_conv_net.py --preset cifar10-vgg`` (input 3x32x32; 3x3 'same'
ternary convolutions 3 -> 64 -> 64 -> 128 -> 128 -> 256 -> 256 with a 2x2 max pool after
the 2nd, 4th and 6th, each with batch norm and ReLU; dense 4096 -> 512 -> 512 -> 10, the
head of FINN's CNV), builds it for zcu111 at the default input rate (one pixel a cycle:
II 1,024) with a cold adder-graph cache, and records the build's wall time, its stages
(from the progress lines on stderr), its peak memory (the largest process, and the whole
process tree sampled every 0.2 s), II, latency, the estimate per layer and whether it
fits. The design is written with ``--allow-overflow`` when it does not fit; the build's own
refusal (what the build says without that option) is in the results. Then ``twngen
verify --simulator verilator`` over ``--frames`` frames, bit-exact with the measured II and
latency checked against the report. ``--verify-channels C`` verifies the same network at
base width ``C`` (8: 8, 8, 16, 16, 32, 32; dense 512, 512) instead, for when the full
design's Verilog is more than Verilator can compile in the time at hand. Results go to
``bench/results/cifar_vgg.json`` and the table in ``docs/streaming.md`` ("A CIFAR-10-shaped VGG"):

    python bench/cifar_vgg.py [--channels 64] [--frames 3] [--verify-channels 8] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "bench"))

from _common import git_commit, replace_between, report_figures, write_results  # noqa: E402

_DOCS = REPO / "docs" / "streaming.md"
_BEGIN, _END = "<!-- bench/cifar_vgg.py: begin -->", "<!-- bench/cifar_vgg.py: end -->"
_STAGE_DONE = re.compile(r"^twngen: \[\s*[\d.]+s\] (.+?): (?:[\d/]+ \w+, )?done in ([\d.]+)s$")


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_measured(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run ``cmd``; its wall time, exit status, stdout/stderr, the largest resident set of any
    one process in its tree (rusage of a wrapper that only waits for it) and the largest sum
    over the tree seen while it ran."""
    wrapper = (
        "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(u.ru_maxrss, round(u.ru_utime + u.ru_stime), file=sys.stderr); sys.exit(rc)"
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.wait(0.2):
            peak_tree = max(peak_tree, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.monotonic() - t0
    lines = err.rstrip("\n").splitlines()
    last = lines.pop().split() if lines else []
    peak_one_kb, cpu = (int(last[0]), int(last[1])) if len(last) == 2 and "".join(last).isdigit() else (0, 0)
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": cpu,
        "load_average": round(os.getloadavg()[0], 1),
        "returncode": proc.returncode,
        "stdout": out,
        "stderr": "\n".join(lines),
        "peak_process_gb": round(peak_one_kb / 2**20, 2),
        "peak_tree_gb": round(peak_tree / 2**30, 2),
    }


def _stages(stderr: str) -> dict[str, float]:
    """Seconds per build stage, from the plain progress lines ("...: done in 12.3s")."""
    stages: dict[str, float] = {}
    for line in stderr.splitlines():
        m = _STAGE_DONE.match(line.strip())
        if m:
            name = re.sub(r"^parsing .*", "parsing", re.sub(r"^writing .*", "writing OUTDIR", m.group(1)))
            stages[name] = float(m.group(2))
    return stages


def _layers(report: dict) -> list[dict[str, object]]:
    keys = ("name", "arithmetic", "cycles_per_position", "cycles_available", "lut", "ff", "bram", "dsp")
    return [{k: la.get(k) for k in keys} for la in report["layers"]]


def _from_report(report: dict) -> dict[str, object]:
    return {
        **report_figures(report),
        "utilisation": report["utilisation"],
        "fits": report["fits"],
        "accuracy": report["accuracy"],
        "layers": _layers(report),
    }


def build_and_verify(
    channels: int, dense: tuple[int, ...], seed: int, frames: int, tmp: Path, verify: bool
) -> dict[str, object]:
    """One width of the network: the build (cold cache) and, with ``verify``, Verilator."""
    import onnx
    from make_conv_net import cifar10_vgg, cifar10_vgg_spec

    twngen = str(Path(sys.executable).parent / "twngen")
    model = tmp / f"cifar_vgg_{channels}.onnx"
    onnx.save(cifar10_vgg(channels, dense, seed=seed), str(model))
    env = {**os.environ, "TWNGEN_CACHE": str(tmp / f"cache_{channels}")}  # a cold cache: the full build time
    outdir = tmp / f"build_{channels}"
    cmd = [twngen, str(model), "--board", "zcu111", "-o", str(outdir), "--allow-overflow"]
    print(f"bench: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    run = run_measured(cmd, env)
    print(run["stderr"], file=sys.stderr)
    # What the build run measured, refused or not.
    measured = {
        "model": f"examples/make_conv_net.py --preset cifar10-vgg --channels {channels} "
        f"--dense {','.join(map(str, dense))} --seed {seed}",
        "spec": cifar10_vgg_spec(channels, dense),
        "build_seconds_cold_cache": run["seconds"],
        "build_cpu_seconds": run["cpu_seconds"],
        "load_average_at_end": run["load_average"],
        "build_peak_process_gb": run["peak_process_gb"],
        "build_peak_tree_gb": run["peak_tree_gb"],
        "build_stages_seconds": _stages(str(run["stderr"])),
    }
    failed = {**measured, "build_returncode": run["returncode"]}
    if run["returncode"] != 0:
        # A refusal is a result too: what the build says, and how long it took to say it; the
        # estimate (II, latency, area, fit) then comes from an estimate-only build (twngen explore).
        errors = [line for line in str(run["stderr"]).splitlines() if line.startswith("twngen: error:")]
        failed["build_error"] = errors[-1] if errors else str(run["stderr"])[-2000:]
        xdir = tmp / f"explore_{channels}"
        xcmd = [twngen, "explore", str(model), "--board", "zcu111", "--rates", "1", "--keep", "-o", str(xdir)]
        print(f"bench: {' '.join(xcmd[1:])}", file=sys.stderr, flush=True)
        xrun = run_measured([*xcmd, "--jobs", "1"], env)
        print(xrun["stderr"], file=sys.stderr)
        reports = sorted(xdir.glob("points/**/report.json"))
        if xrun["returncode"] != 0 or not reports:
            return failed
        failed["estimate_only_seconds_warm_cache"] = xrun["seconds"]
        return {**failed, **_from_report(json.loads(reports[0].read_text()))}
    report = json.loads((outdir / "report.json").read_text())
    summary = [line.strip() for line in str(run["stdout"]).splitlines() if "does not fit" in line]
    result: dict[str, object] = {
        **measured,
        "command": "twngen cifar_vgg.onnx --board zcu111 --allow-overflow   (default --input-rate: 1 pixel/cycle)",
        "verilog_bytes": (outdir / "rtl" / "twn_top.v").stat().st_size,
        **_from_report(report),
        "does_not_fit": summary[0] if summary else None,
    }
    if not verify:
        return result
    vcmd = [twngen, "verify", str(outdir), "--simulator", "verilator", "--vectors", str(frames)]
    print(f"bench: {' '.join(vcmd[1:])}", file=sys.stderr, flush=True)
    ver = run_measured(vcmd, env)
    print(ver["stdout"], ver["stderr"], file=sys.stderr)
    sim_path = outdir / "sim" / "verilator" / "results.json"
    sim = json.loads(sim_path.read_text()) if sim_path.exists() else {}
    result["verilator"] = {
        "returncode": ver["returncode"],
        "frames": sim.get("vectors"),
        "passed": sim.get("passed"),
        "failed": sim.get("failed"),
        "measured_ii_cycles": sim.get("measured_ii_cycles"),
        "measured_latency_cycles": sim.get("measured_latency_cycles"),
        "verify_seconds_incl_compile": ver["seconds"],
        "verify_peak_tree_gb": ver["peak_tree_gb"],
        "simulation_seconds": sim.get("sim_wall_seconds"),
        "frames_simulated": sim.get("frames_simulated"),
    }
    return result


def _row(label: str, r: dict) -> str:
    cpu = f" ({r['build_cpu_seconds']:,.0f} s CPU)" if "build_cpu_seconds" in r else ""
    if r.get("build_returncode") and "estimate" in r:
        est = r["estimate"]
        return (
            f"| {label} | refused after {r['build_seconds_cold_cache']:,.0f} s{cpu} | "
            f"{r['build_peak_tree_gb']:.1f} GB ({r['build_peak_process_gb']:.1f}) | "
            f"{r['initiation_interval_cycles']:,} | {r['latency_cycles']:,} | {est['lut']:,} | {est['ff']:,} | "
            f"{est['bram']:,} | {est['dsp']:,} | {'yes' if r['fits'] else '**no**'} | no Verilog (see below); "
            f"estimate-only build {r['estimate_only_seconds_warm_cache']:,.0f} s |"
        )
    if r.get("build_returncode"):
        return (
            f"| {label} | refused after {r['build_seconds_cold_cache']:,.0f} s{cpu} | "
            f"{r['build_peak_tree_gb']:.1f} GB ({r['build_peak_process_gb']:.1f}) | | | | | | | | "
            f"exit {r['build_returncode']}: see below |"
        )
    est, v = r["estimate"], r.get("verilator")
    ok = "yes" if r["fits"] else "**no**"
    if v:
        exact = v["failed"] == 0 and v["passed"] == v["frames"]
        timing = v["measured_ii_cycles"] == r["initiation_interval_cycles"] and (
            v["measured_latency_cycles"] == r["latency_cycles"]
        )
        sim = (
            f"{v['passed']}/{v['frames']} bit-exact, II {v['measured_ii_cycles']:,} / latency "
            f"{v['measured_latency_cycles']:,} measured ({'= report' if timing else '**differs from the report**'}); "
            f"{v['verify_seconds_incl_compile']:,.0f} s ({v['simulation_seconds']:,.0f} s simulating "
            f"{v['frames_simulated']} frames)"
        )
        sim = sim if exact else f"**{v['failed']} failed**: {sim}"
    else:
        sim = "not simulated"
    return (
        f"| {label} | {r['build_seconds_cold_cache']:,.0f} s{cpu} | {r['build_peak_tree_gb']:.1f} GB "
        f"({r['build_peak_process_gb']:.1f}) | {r['initiation_interval_cycles']:,} | {r['latency_cycles']:,} | "
        f"{est['lut']:,} | {est['ff']:,} | {est['bram']:,} | {est['dsp']:,} | {ok} | {sim} |"
    )


def table(result: dict) -> str:
    """The markdown tables of ``docs/streaming.md``, from the results alone."""
    runs = result["runs"]
    words = result["arguments"].split()
    shown = [a for k, a in enumerate(words) if a not in ("--no-docs", "--out") and words[k - 1 : k] != ["--out"]]
    arguments = " ".join(shown)
    lines = [
        f"Measured {result['date']} (`python bench/cifar_vgg.py {arguments}`, commit "
        f"{result['twngen_commit']}, {result['machine']}; numbers from `bench/results/cifar_vgg.json`):",
        "",
        "| network | build (cold cache) | peak memory: tree (one process) | II | latency | LUT | FF | BRAM36 | DSP "
        "| fits zcu111 | Verilator |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(_row(f"base width {r['channels']} (`{r['spec']}`)", r))
    for r in runs:
        stages = ", ".join(f"{k} {v:,.0f} s" for k, v in r["build_stages_seconds"].items() if v >= 1)
        lines += ["", f"Where the build of base width {r['channels']} went: {stages}."]
        if r.get("build_error"):
            lines += ["", f"It stops with: `{r['build_error']}`"]
        else:
            lines[-1] += (
                f" {r['verilog_bytes'] / 2**20:,.1f} MB of Verilog, {r['adders']:,} merged adders "
                f"({r['naive_adders']:,} in naive trees)."
            )
        if r.get("does_not_fit"):
            lines += ["", f"It says: `{r['does_not_fit']}`"]
    full = next((r for r in runs if "layers" in r), None)
    if full is None:
        return "\n".join(lines)
    lines += [
        "",
        f"Per layer (base width {full['channels']}, estimate):",
        "",
        "| layer | arithmetic | cycles/position (available) | LUT | FF | BRAM36 | DSP |",
        "|---|---|---|---|---|---|---|",
    ]
    for la in full["layers"]:
        lines.append(
            f"| {la['name']} | {la['arithmetic']} | {la['cycles_per_position']} ({la['cycles_available']}) | "
            f"{la['lut']:,} | {la['ff']:,} | {la['bram']:,} | {la['dsp']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=64, help="base width (64: the CIFAR-10 VGG)")
    ap.add_argument("--dense", default="512,512", help="hidden dense widths")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=3, help="frames to verify on Verilator")
    ap.add_argument(
        "--verify-channels",
        type=int,
        default=None,
        help="verify the network at this base width instead of --channels (built as well)",
    )
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "cifar_vgg.json"))
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate the table in docs/streaming.md")
    ap.add_argument("--combine", nargs="+", metavar="JSON", help="join the runs of earlier results into --out")
    ap.add_argument("--tables-only", action="store_true", help="regenerate the docs' table from --out, run nothing")
    args = ap.parse_args()
    if args.combine:
        # Runs measured by separate invocations of this script (one width each), as one result.
        parts = [json.loads(Path(f).read_text()) for f in args.combine]
        result = {**parts[0], "runs": [r for p in parts for r in p["runs"]]}
        result["arguments"] = " ; ".join(p["arguments"] for p in parts)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        args.tables_only = True
    if args.tables_only:
        replace_between(_DOCS, _BEGIN, _END, f"\n\n{table(json.loads(Path(args.out).read_text()))}\n\n")
        return
    dense = tuple(int(v) for v in args.dense.split(",") if v)
    widths = [args.channels] + ([args.verify_channels] if args.verify_channels not in (None, args.channels) else [])

    runs = []
    with tempfile.TemporaryDirectory(prefix="twngen-cifar-") as tmp:
        for k, channels in enumerate(widths):
            verify = args.frames > 0 and (k == len(widths) - 1)
            runs.append(
                {"channels": channels, **build_and_verify(channels, dense, args.seed, args.frames, Path(tmp), verify)}
            )
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    result = {
        "twngen_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {memory / 2**30:.0f} GiB (shared with other jobs)",
        "arguments": " ".join(sys.argv[1:]),
        "runs": runs,
    }
    write_results(args.out, result)
    text = table(result)
    print(text)
    if not args.no_docs:
        replace_between(_DOCS, _BEGIN, _END, f"\n\n{text}\n\n")
    last = runs[-1].get("verilator")
    ok = last is None or (
        last["failed"] == 0
        and last["passed"] == last["frames"]
        and last["measured_ii_cycles"] == runs[-1]["initiation_interval_cycles"]
        and last["measured_latency_cycles"] == runs[-1]["latency_cycles"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
