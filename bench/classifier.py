#!/usr/bin/env python3
"""The full-size modulation classifier, end to end: generate, build, simulate, record.

Writes the ONNX model of the published classifier's shape
(``examples/make_conv_net.py``: input [1, 2, 1024], 7 x (Conv1d k=3 'same'
ternary, F=64 -> MaxPool 2 -> BatchNorm -> ReLU), dense 512 -> 512 -> 24),
builds it for zcu111 at two I/Q samples per cycle (``--input-rate 2``) with a
fresh adder-graph cache, runs ``twngen verify`` on Verilator over 20 frames,
and writes the measured numbers to ``bench/results/classifier.json``:

    python bench/classifier.py [--frames 20] [--seed 0] [--channels 64] [--precision incremental]

With ``--precision incremental`` the results go to
``bench/results/classifier_incremental.json``.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--precision", choices=("fixed", "incremental"), default="fixed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    suffix = "" if args.precision == "fixed" else f"_{args.precision}"
    args.out = args.out or str(REPO / "bench" / "results" / f"classifier{suffix}.json")
    extra = [] if args.precision == "fixed" else ["--precision", args.precision]

    import onnx
    from make_conv_net import vgg1d

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
        "model": f"vgg1d channels={args.channels} seed={args.seed} (examples/make_conv_net.py)",
        "command": " ".join(["twngen classifier.onnx --board zcu111 --input-rate", f"{args.rate:g}", *extra]),
        "build_seconds_cold_cache": round(build_s, 1),
        "verilog_bytes": verilog_bytes,
        "adders": report["adders"],
        "naive_adders": report["naive_adders"],
        "initiation_interval_cycles": report["initiation_interval_cycles"],
        "throughput_per_s": report["throughput_per_s"],
        "latency_cycles": report["latency_cycles"],
        "latency_us": report["latency_us"],
        "estimate": report["resources"],
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    ok = sim["failed"] == 0 and sim["measured_latency_cycles"] == report["latency_cycles"]
    sys.exit(0 if ok and proc.returncode == 0 else 1)


if __name__ == "__main__":
    main()
