#!/usr/bin/env python3
"""The full-size modulation classifier, end to end: generate, build, simulate, record.

Writes the ONNX model of the published classifier's shape
(``examples/make_conv_net.py``: input [1, 2, 1024], 7 x (Conv1d k=3 'same'
ternary, F=64 -> MaxPool 2 -> BatchNorm -> ReLU), dense 512 -> 512 -> 24),
builds it for zcu111 at two I/Q samples per cycle (``--input-rate 2``) with a
fresh adder-graph cache, runs ``twngen verify`` on Verilator over 20 frames,
and writes the measured numbers to ``bench/results/classifier.json``:

    python bench/classifier.py [--frames 20] [--seed 0] [--channels 64] [--precision incremental]
                               [--rate 2] [--synth] [--docs]

With ``--precision incremental`` the results go to
``bench/results/classifier_incremental.json``, at another ``--rate`` to
``classifier_rate4.json`` (and so on). ``--synth`` builds with
``--synth-estimate`` (Yosys, stage by stage) and records its counts beside the
estimate; the area split by part is always recorded. ``--docs`` regenerates
the table of that rate in ``docs/streaming.md`` ("The classifier at 4 samples
a cycle") from the results.

    python bench/classifier.py --rate 4 --frames 3 --synth --docs   # issue 17's bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "bench"))
from _common import git_commit, replace_between, report_figures, write_results  # noqa: E402

_DOCS = REPO / "docs" / "streaming.md"
_BEGIN, _END = "<!-- bench/classifier.py --rate {rate}: begin -->", "<!-- bench/classifier.py --rate {rate}: end -->"


def _table(result: dict) -> str:
    """The run as markdown: the network's figures, then LUT / FF / DSP by part and by layer."""
    e, v = result["estimate"], result["verilator"]
    syn = result.get("synthesis")
    head = [
        f"`{result['command']}` on {result['model']}, twngen {result['twngen_commit']}:",
        "",
        f"- II {result['initiation_interval_cycles']:,} cycles, {result['throughput_per_s']:,.0f} frames/s, "
        f"latency {result['latency_cycles']:,} cycles; build {result['build_seconds_cold_cache']:,.0f} s "
        f"(cold merge cache), {result['verilog_bytes'] / 1e6:.1f} MB of Verilog; fits: {result['fits']}",
        f"- estimate {e['lut']:,} LUT, {e['ff']:,} FF, {e['dsp']:,} DSP, {e['bram']:,} BRAM36"
        + (
            f"; Yosys (stage by stage) {syn['lut_sites']:,} LUT sites, {syn['ff']:,} FF, {syn['dsp']:,} DSP"
            if syn
            else ""
        ),
        f"- Verilator: {v['passed']} of {v['frames']} frames bit-exact, measured II {v['measured_ii_cycles']} and "
        f"latency {v['measured_latency_cycles']} cycles; verify "
        f"{v['verify_seconds_incl_compile']:,.0f} s with the compile",
        "",
        "| part | LUT | FF | DSP |",
        "|---|---:|---:|---:|",
    ]
    parts = [
        f"| {name.replace('_', ' ')} | {r['lut']:,} | {r['ff']:,} | {r['dsp']:,} |"
        for name, r in result["estimate_by_part"].items()
        if r["lut"] or r["ff"] or r["dsp"]
    ]
    layers = [
        "",
        "| layer | arithmetic | cycles / position (available) | LUT | FF | DSP |",
        "|---|---|---|---:|---:|---:|",
    ] + [
        f"| {la['name']} | {la['arithmetic']} | {la['cycles_per_position']} ({la['cycles_available']}) "
        f"| {la['lut']:,} | {la['ff']:,} | {la['dsp']:,} |"
        for la in result["layers"]
    ]
    return "\n".join(head + parts + layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--precision", choices=("fixed", "incremental"), default="fixed")
    ap.add_argument("--out", default=None)
    ap.add_argument("--synth", action="store_true", help="build with --synth-estimate (Yosys counts)")
    ap.add_argument("--docs", action="store_true", help="regenerate the rate's table in docs/streaming.md")
    args = ap.parse_args()
    suffix = "" if args.precision == "fixed" else f"_{args.precision}"
    suffix += "" if args.rate == 2.0 else f"_rate{args.rate:g}"
    args.out = args.out or str(REPO / "bench" / "results" / f"classifier{suffix}.json")
    extra = [] if args.precision == "fixed" else ["--precision", args.precision]
    extra += ["--synth-estimate"] if args.synth else []

    import onnx
    from make_conv_net import vgg1d

    commit = git_commit()  # the code that runs: taken before, not after, a run of many minutes
    twngen = str(Path(sys.executable).parent / "twngen")
    with tempfile.TemporaryDirectory(prefix="twngen-classifier-") as tmp:
        model = Path(tmp) / "classifier.onnx"
        onnx.save(vgg1d(channels=args.channels, seed=args.seed), str(model))
        env = {**os.environ, "TWNGEN_CACHE": str(Path(tmp) / "cache")}  # a cold cache: the full build time
        outdir = Path(tmp) / "build"
        t0 = time.monotonic()
        subprocess.run(
            [twngen, str(model), "--board", "zcu111", "-o", str(outdir), "--input-rate", str(args.rate), *extra],
            check=True,
            env=env,
        )
        build_s = time.monotonic() - t0
        report = json.loads((outdir / "report.json").read_text())
        t0 = time.monotonic()
        proc = subprocess.run(
            [twngen, "verify", str(outdir), "--simulator", "verilator", "--vectors", str(args.frames)],
            capture_output=True,
            text=True,
            env=env,
        )
        verify_s = time.monotonic() - t0
        print(proc.stdout, proc.stderr)
        sim = json.loads((outdir / "sim" / "verilator" / "results.json").read_text())
        verilog_bytes = (outdir / "rtl" / "twn_top.v").stat().st_size

    result = {
        "twngen_commit": commit,
        "model": f"vgg1d channels={args.channels} seed={args.seed} (examples/make_conv_net.py)",
        "command": " ".join(["twngen classifier.onnx --board zcu111 --input-rate", f"{args.rate:g}", *extra]),
        "build_seconds_cold_cache": round(build_s, 1),
        "verilog_bytes": verilog_bytes,
        **report_figures(report),
        "estimate_by_part": report["resources_by_part"],
        "synthesis": report.get("synthesis"),
        "fits": report["fits"],
        "accuracy": report["accuracy"],
        "layer_act_bits": report["options"]["layer_act_bits"],
        "layers": [
            {k: la[k] for k in ("name", "arithmetic", "cycles_per_position", "cycles_available", "lut", "ff", "dsp")}
            for la in report["layers"]
        ],
        "verilator": {
            "frames": sim["vectors"],
            "passed": sim["passed"],
            "failed": sim["failed"],
            "measured_ii_cycles": sim["measured_ii_cycles"],
            "measured_latency_cycles": sim["measured_latency_cycles"],
            "verify_seconds_incl_compile": round(verify_s, 1),
            "simulation_seconds": sim.get("sim_wall_seconds"),
            "frames_simulated": sim.get("frames_simulated"),
            "frames_per_second": round(sim["frames_simulated"] / sim["sim_wall_seconds"], 2)
            if sim.get("sim_wall_seconds")
            else None,
        },
    }
    write_results(args.out, result)
    print(json.dumps(result, indent=1))
    if args.docs:
        replace_between(
            _DOCS, _BEGIN.format(rate=f"{args.rate:g}"), _END.format(rate=f"{args.rate:g}"), f"\n\n{_table(result)}\n\n"
        )
    ok = sim["failed"] == 0 and sim["measured_latency_cycles"] == report["latency_cycles"]
    sys.exit(0 if ok and proc.returncode == 0 else 1)


if __name__ == "__main__":
    main()
