#!/usr/bin/env python3
"""Yosys on the whole classifier-shaped network, stage by stage, beside the estimate.

Writes the classifier (``examples/make_conv_net.py``'s ``vgg1d``: [2, 1024] I/Q in, 7 ternary
conv layers of F channels, dense 512 -> 512 -> 24) and a batch of ``examples/iq_frames.py``
frames to calibrate on, builds it for zcu111 at two I/Q samples per cycle (II 512) with
``--synth-estimate`` (its Verilog is far over the flat limit, so each stage is synthesised
alone: ``hwgen.build.SYNTH_BY_STAGE_BYTES``) for each ``--words`` mode given, and records per
stage Yosys's counts and the estimate's in ``bench/results/classifier_synth.json``:

    python bench/classifier_synth.py [--channels 64] [--words exact,calibrated] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "bench"))
from _common import add_classifier_arguments, git_commit, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_classifier_arguments(ap)
    ap.add_argument("--words", default="exact,calibrated")
    ap.add_argument("--jobs", type=int, default=None, help="Yosys runs at once (default: the cores)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "classifier_synth.json"))
    args = ap.parse_args()

    import numpy as np
    import onnx
    from iq_frames import iq_frames
    from make_conv_net import vgg1d

    from hwgen.build import ArithmeticOptions, build
    from hwgen.passes.words import parse_words

    points = []
    with tempfile.TemporaryDirectory(prefix="twngen-classifier-synth-") as tmp:
        model, cal = Path(tmp) / "classifier.onnx", Path(tmp) / "cal.npy"
        onnx.save(vgg1d(channels=args.channels, seed=args.seed), str(model))
        np.save(cal, iq_frames(args.calibrate, 1024, seed=1)[0])
        for words in args.words.split(","):
            options = ArithmeticOptions(calibrate=str(cal), words=parse_words(words))
            started = time.monotonic()
            result = build(
                model,
                "zcu111",
                Path(tmp) / f"build-{words}",
                options,
                input_rate=args.rate,
                synth_estimate=True,
                jobs=args.jobs,
            )
            seconds = time.monotonic() - started
            report = result.report
            syn = report["synthesis"]
            estimates = {layer["name"]: layer for layer in report["layers"]}  # type: ignore[union-attr]
            stages = []
            for st in syn["stages"]:  # type: ignore[index]
                est = estimates.get(st["what"])
                stages.append(
                    {
                        **st,
                        "estimate_lut": est["lut"] if est else None,
                        "estimate_ff": est["ff"] if est else None,
                        "estimate_dsp": est["dsp"] if est else None,
                    }
                )
            points.append(
                {
                    "words": words,
                    "build_and_synthesis_seconds": round(seconds, 1),
                    "verilog_bytes": (Path(tmp) / f"build-{words}" / "rtl" / "twn_top.v").stat().st_size,
                    "estimate": report["resources"],
                    "yosys": {k: syn[k] for k in ("lut_sites", "lut", "srl", "lutram", "ff", "carry", "dsp", "bram")},  # type: ignore[index]
                    "method": syn["method"],  # type: ignore[index]
                    "stages": stages,
                }
            )
            e, y = report["resources"], syn
            print(
                f"--words {words}: estimate {e['lut']:,} LUT {e['ff']:,} FF {e['dsp']} DSP; "  # type: ignore[index]
                f"Yosys {y['lut_sites']:,} LUT sites {y['ff']:,} FF {y['dsp']} DSP; {seconds:.0f} s",  # type: ignore[index]
                flush=True,
            )
    result_doc = {
        "twngen_commit": git_commit(),
        "model": f"vgg1d channels={args.channels} seed={args.seed} (examples/make_conv_net.py)",
        "command": f"twngen classifier.onnx --board zcu111 --input-rate {args.rate:g} --calibrate cal.npy "
        "--synth-estimate --words WORDS",
        "points": points,
    }
    write_results(args.out, result_doc)


if __name__ == "__main__":
    main()
