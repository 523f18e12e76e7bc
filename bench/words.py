#!/usr/bin/env python3
"""``--words`` on the modulation classifier's shape: exact, calibrated and 16-bit accumulator words.

Writes the classifier (``examples/make_conv_net.py``'s ``vgg1d``: [2, 1024] I/Q in, 7 ternary
conv layers of F channels, dense 512 -> 512 -> 24) and two batches of ``examples/iq_frames.py``
frames (one to calibrate on, one held out), schedules and estimates it for zcu111 at two I/Q
samples per cycle (II 512) with 16-bit activations and each ``--words`` mode (no Verilog), and
measures on the held-out frames the golden model's top-1 agreement with onnxruntime and what
the words' wraps changed (:func:`hwgen.golden.word_wraps`). Results in
``bench/results/words.json``; the table in ``docs/precision.md`` is regenerated from them:

    python bench/words.py [--channels 64] [--calibrate 256] [--held-out 512] [--words exact,calibrated,16]
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
from _common import add_classifier_arguments, git_commit, replace_between, write_results  # noqa: E402

_DOCS = REPO / "docs" / "precision.md"
_BEGIN, _END = "<!-- bench/words.py: begin -->", "<!-- bench/words.py: end -->"


def _point(model: Path, cal: Path, held: Path, words: str, rate: float) -> dict[str, object]:
    import numpy as np

    from hwgen import golden
    from hwgen.build import ArithmeticOptions, accuracy_check, scheduled_network
    from hwgen.estimate import estimate_parts, total_of
    from hwgen.passes.words import parse_words
    from hwgen.plan import plan_network

    started = time.monotonic()
    options = ArithmeticOptions(calibrate=str(cal), words=parse_words(words))
    network, batch, _ = scheduled_network(model, options, 250.0, input_rate=rate)
    plan = plan_network(network)
    estimate = estimate_parts(plan)
    seconds = time.monotonic() - started
    accuracy = accuracy_check(model, network, batch)
    x = np.load(held).astype(np.float64)
    held_out = golden.compare_with_onnxruntime(model, network, x, "held out")
    wraps = golden.word_wraps(network, golden.quantize_input(network, x))
    layers = [{"name": la.name, "word_bits": la.wrap_bits} for la in network.linear_layers]
    return {
        "words": words,
        "schedule_and_estimate_seconds": round(seconds, 1),
        "estimate": estimate.total.to_json(),
        "calibration_top1_agreement": accuracy.top1_agreement,
        "held_out_top1_agreement": held_out.top1_agreement,
        "held_out_word_wraps": wraps,
        "layers": layers,
        "rows": [total_of(parts).to_json() for parts in estimate.layers],
    }


def _table(result: dict[str, object]) -> str:
    rows = [
        "| `--words` | LUT | FF | DSP | top-1 vs onnxruntime (held out) | held-out samples a wrap changed "
        "| words (bits) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in result["points"]:  # type: ignore[attr-defined]
        e = p["estimate"]
        ww = p["held_out_word_wraps"]
        changed = f"{ww['samples_changed']} of {ww['samples']}" if ww else "-"
        bits = ", ".join(str(la["word_bits"]) for la in ww["layers"]) if ww else "exact"
        rows.append(
            f"| {p['words']} | {e['lut']:,} | {e['ff']:,} | {e['dsp']} | {100 * p['held_out_top1_agreement']:.1f}% "
            f"| {changed} | {bits} |"
        )
    return (
        f"{result['model']}, {result['frames']}; `{result['command']}` with each `--words`, "
        f"estimate (hwgen.estimate), twngen {result['twngen_commit']}:\n\n" + "\n".join(rows)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_classifier_arguments(ap)
    ap.add_argument("--held-out", type=int, default=512, help="held-out frames (seed 2)")
    ap.add_argument("--words", default="exact,calibrated,16")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "words.json"))
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate the table in docs/precision.md")
    args = ap.parse_args()

    import numpy as np
    import onnx
    from iq_frames import iq_frames
    from make_conv_net import vgg1d

    with tempfile.TemporaryDirectory(prefix="twngen-words-") as tmp:
        model, cal, held = Path(tmp) / "classifier.onnx", Path(tmp) / "cal.npy", Path(tmp) / "held.npy"
        onnx.save(vgg1d(channels=args.channels, seed=args.seed), str(model))
        np.save(cal, iq_frames(args.calibrate, 1024, seed=1)[0])
        np.save(held, iq_frames(args.held_out, 1024, seed=2)[0])
        points = [_point(model, cal, held, w, args.rate) for w in args.words.split(",")]
    result = {
        "twngen_commit": git_commit(),
        "model": f"vgg1d channels={args.channels} seed={args.seed} (examples/make_conv_net.py)",
        "frames": f"examples/iq_frames.py: {args.calibrate} calibration frames (seed 1), "
        f"{args.held_out} held out (seed 2), length 1024",
        "command": f"twngen classifier.onnx --board zcu111 --input-rate {args.rate:g} --calibrate cal.npy",
        "points": points,
    }
    write_results(args.out, result)
    table = _table(result)
    print(table)
    if not args.no_docs:
        replace_between(_DOCS, _BEGIN, _END, f"\n\n{table}\n\n")


if __name__ == "__main__":
    main()
