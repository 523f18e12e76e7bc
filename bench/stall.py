#!/usr/bin/env python3
"""No sample lost: thousands of frames through valid/ready and AXI4-Stream tops under random stalls.

A small dense network and a small convolution network (one position per
beat, pooling, digit-serial layers at half rate) are built and simulated on
Verilator with ``twngen verify``'s testbench (sim/tb_twn_top.py): random gaps
on the input valid and random output backpressure, each with probability
``--stall``; every frame must come out exactly once, in order, bit-exact
(``passed == frames``, ``extra_outputs == 0``), on ``twn_top`` and on the
``twn_axis`` wrapper. Results (frames in and out, cycles, wall time) go to
``--results``.

    python bench/stall.py --dense-frames 5000 --conv-frames 2000 --stall 0.3,0.7
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

import onnx  # noqa: E402
from make_conv_net import stack  # noqa: E402
from make_ternary_mlp import make_mlp  # noqa: E402

from hwgen.build import build  # noqa: E402
from hwgen.verify import verify  # noqa: E402

DESIGNS = {
    # name: (model, input rate)
    "dense_16x12x8x5": (lambda: make_mlp([16, 12, 8, 5], seed=3), None),
    "conv1d_c4k3p1_m2_c4k3p1_d6_o3": (lambda: stack("c4k3p1,m2,c4k3p1,d6,o3", (2, 16), seed=3), 0.5),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense-frames", type=int, default=5000)
    ap.add_argument("--conv-frames", type=int, default=2000)
    ap.add_argument("--stall", default="0.3,0.7", help="stall probabilities (input gaps and output backpressure)")
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--tops", default="twn_top,twn_axis")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "stall.json")
    args = ap.parse_args()
    runs = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="twngen-stall-") as tmp:
        for name, (make, rate) in DESIGNS.items():
            model = Path(tmp) / f"{name}.onnx"
            onnx.save(make(), str(model))
            outdir = build(model, "zcu111", Path(tmp) / name, input_rate=rate).outdir
            frames = args.dense_frames if name.startswith("dense") else args.conv_frames
            for top in args.tops.split(","):
                for stall in (float(s) for s in args.stall.split(",")):
                    started = time.monotonic()
                    r = verify(outdir, args.simulator, vectors=frames, seed=7, stall=stall, top=top)
                    summary = json.loads((outdir / "sim" / (args.simulator if top == "twn_top" else
                                          f"{args.simulator}_{top}") / "results.json").read_text())  # fmt: skip
                    run = {
                        "design": name,
                        "top": top,
                        "simulator": args.simulator,
                        "stall_probability": stall,
                        "frames_in": r.vectors,
                        "frames_out_matching": r.passed,
                        "mismatches": r.failed,
                        "extra_outputs": r.extra_outputs,
                        "frames_simulated": summary.get("frames_simulated"),
                        "sim_wall_seconds": summary.get("sim_wall_seconds"),
                        "wall_seconds": round(time.monotonic() - started, 1),
                        "ok": r.passed == frames and r.failed == 0 and r.extra_outputs == 0,
                    }
                    failed |= not run["ok"]
                    runs.append(run)
                    print(json.dumps(run), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "runs": runs}, indent=1) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
