#!/usr/bin/env python3
"""``--precision auto`` on the modulation classifier's shape, calibrated on modulated I/Q frames.

Writes the classifier (``examples/make_conv_net.py``'s ``vgg1d``: [2, 1024] I/Q in,
7 ternary conv layers of F channels, dense 512 -> 512 -> 24) and two batches of
``examples/iq_frames.py`` frames (one to calibrate on, one held out), builds it for
zcu111 at two I/Q samples per cycle with ``--precision auto --calibrate`` (budget
0.01), runs the build's golden model on the held-out frames against onnxruntime
(``twngen golden OUTDIR --compare``), and estimates the same network at fixed 16-bit
activations and with ``--precision incremental`` (scheduled and estimated, no
Verilog). Results in ``bench/results/auto_precision.json``:

    python bench/auto_precision.py [--channels 64] [--calibrate 256] [--held-out 512] [--budget 0.01]
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
from _common import add_classifier_arguments, git_commit, write_results  # noqa: E402


def _estimate(model: Path, calib: Path, precision: str, rate: float) -> dict[str, object]:
    """Schedule and estimate without emitting Verilog; the accuracy check on the calibration batch."""
    from hwgen.build import ArithmeticOptions, accuracy_check, scheduled_network
    from hwgen.estimate import estimate_parts
    from hwgen.plan import plan_network

    options = ArithmeticOptions(calibrate=str(calib))
    network, batch, options = scheduled_network(model, options, 250.0, input_rate=rate, precision=precision)
    estimate = estimate_parts(plan_network(network))
    accuracy = accuracy_check(model, network, batch)
    return {
        "estimate": estimate.total.to_json(),
        "layer_act_bits": dict(options.layer_act_bits),
        "calibration_top1_agreement": accuracy.top1_agreement,
        "calibrated_network": network,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_classifier_arguments(ap)
    ap.add_argument("--held-out", type=int, default=512, help="held-out frames (seed 2)")
    ap.add_argument("--budget", type=float, default=0.01)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "auto_precision.json"))
    args = ap.parse_args()

    import numpy as np
    import onnx
    from iq_frames import iq_frames
    from make_conv_net import vgg1d

    from hwgen import golden

    twngen = str(Path(sys.executable).parent / "twngen")
    with tempfile.TemporaryDirectory(prefix="twngen-auto-") as tmp:
        model, cal, held = Path(tmp) / "classifier.onnx", Path(tmp) / "cal.npy", Path(tmp) / "held.npy"
        onnx.save(vgg1d(channels=args.channels, seed=args.seed), str(model))
        np.save(cal, iq_frames(args.calibrate, 1024, seed=1)[0])
        np.save(held, iq_frames(args.held_out, 1024, seed=2)[0])
        env = {**os.environ, "TWNGEN_CACHE": os.environ.get("TWNGEN_CACHE", str(Path(tmp) / "cache"))}
        outdir = Path(tmp) / "build"
        command = [twngen, str(model), "--board", "zcu111", "-o", str(outdir), "--input-rate", f"{args.rate:g}"]
        command += ["--precision", "auto", "--calibrate", str(cal), "--accuracy-budget", f"{args.budget:g}", "-q"]
        t0 = time.monotonic()
        built = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        build_s = time.monotonic() - t0
        report = json.loads((outdir / "report.json").read_text())
        t0 = time.monotonic()
        compare = subprocess.run(
            [twngen, "golden", str(outdir), "--inputs", str(held), "--outputs", str(Path(tmp) / "y.npy"), "--compare"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        golden_s = time.monotonic() - t0
        held_top1 = float(compare.stdout.split("top1_agreement=")[1].split()[0])

        others = {}
        for precision in ("fixed", "incremental"):
            r = _estimate(model, cal, precision, args.rate)
            network = r.pop("calibrated_network")
            x = np.load(held).astype(np.float64)
            r["held_out_top1_agreement"] = golden.compare_with_onnxruntime(model, network, x, "held out").top1_agreement
            others[precision] = r

    choice = report["precision_choice"]
    result = {
        "twngen_commit": git_commit(),
        "model": f"vgg1d channels={args.channels} seed={args.seed} (examples/make_conv_net.py)",
        "frames": f"examples/iq_frames.py: {args.calibrate} calibration frames (seed 1), "
        f"{args.held_out} held out (seed 2), length 1024",
        "command": "twngen classifier.onnx --board zcu111 --input-rate "
        f"{args.rate:g} --precision auto --calibrate cal.npy --accuracy-budget {args.budget:g}",
        "build_seconds": round(build_s, 1),
        "golden_held_out_seconds": round(golden_s, 1),
        "initiation_interval_cycles": report["initiation_interval_cycles"],
        "throughput_per_s": report["throughput_per_s"],
        "latency_cycles": report["latency_cycles"],
        "auto": {
            "estimate": report["resources"],
            "layer_act_bits": report["options"]["layer_act_bits"],
            "calibration_top1_agreement": report["accuracy"]["top1_agreement"],
            "held_out_top1_agreement": held_top1,
            "search": {k: choice[k] for k in ("area_score", "widest", "evaluations", "area_estimates", "steps")},
            "warnings": report["warnings"],
            "stderr": built.stderr,
        },
        **others,
        "layers": [
            {k: la[k] for k in ("name", "act_bits", "arithmetic", "lut", "ff", "dsp")} for la in report["layers"]
        ],
    }
    write_results(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "layers"}, indent=1))


if __name__ == "__main__":
    main()
