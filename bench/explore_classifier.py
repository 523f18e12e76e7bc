#!/usr/bin/env python3
"""The modulation classifier's shape swept with ``twngen explore``: rates 0.5 to 4 positions a
cycle, ``fixed`` and ``incremental`` precision, on zcu111, points side by side.

Writes the model of the published classifier's shape (``examples/make_conv_net.py`` default:
vgg1d, 7 convolutions of 64 channels over 1024 I/Q samples, dense 512-512-24) to
``build/classifier.onnx``, sweeps it with a fresh merge cache (``--warm-cache``: the user's),
and keeps the sweep's files in ``bench/results/explore_classifier/`` (explore.json, .csv, .md,
.png, .svg) with the wall time and the machine in ``bench/results/explore_classifier.json``:

    python bench/explore_classifier.py [--rates 0.5,1,2,4] [--precision fixed,incremental] [--jobs N]
    python bench/explore_classifier.py --replot     # the plot again from the kept explore.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="0.5,1,2,4")
    ap.add_argument("--precision", default="fixed,incremental")
    ap.add_argument("--board", default="zcu111")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--warm-cache", action="store_true", help="use the user's merge cache instead of a fresh one")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "explore_classifier"))
    ap.add_argument(
        "--replot", action="store_true", help="only draw the plot and explore.md again from the kept explore.json"
    )
    args = ap.parse_args()
    if args.replot:
        from hwgen.explore import replot

        print("\n".join(str(p) for p in replot(args.out)))
        return

    import onnx
    from make_conv_net import vgg1d

    from hwgen.console import progress_for
    from hwgen.explore import explore

    os.chdir(REPO)  # the rows' commands name the model and folders relative to the checkout
    model = Path("build") / "classifier.onnx"
    model.parent.mkdir(exist_ok=True)
    onnx.save(vgg1d(), str(model))
    out = Path(os.path.relpath(args.out, REPO))
    rates = [float(r) for r in args.rates.split(",")]
    precisions = args.precision.split(",")
    command = f"twngen explore {model} --board {args.board} --rates {args.rates} --precision {args.precision} -o {out}"
    with tempfile.TemporaryDirectory(prefix="twngen-explore-cache-") as cache:
        if not args.warm_cache:
            os.environ["TWNGEN_CACHE"] = cache
        started = time.monotonic()
        with progress_for(False) as progress:
            result = explore(
                model,
                args.board,
                rates=rates,
                precisions=precisions,
                outdir=out,
                jobs=args.jobs,
                command=command,
                progress=progress,
            )
        wall = time.monotonic() - started
    summary = {
        "model": "vgg1d (examples/make_conv_net.py defaults)",
        "command": command,
        "merge_cache": "warm (the user's)" if args.warm_cache else "fresh (cold)",
        "wall_seconds": round(wall, 1),
        "executor": result.executor,
        "points": len(result.rows),
        "sum_of_point_seconds": round(sum(float(r["build_s"]) for r in result.rows), 1),  # type: ignore[arg-type]
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "rows": [
            {k: r[k] for k in ("point", "status", "ii_cycles", "frames_per_s", "lut", "ff", "dsp", "top1_agreement")}
            for r in result.rows
        ],
    }
    Path(f"{out}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(result.rows)} points in {wall:.0f}s on {result.executor}; {out}/explore.md, {out}.json")


if __name__ == "__main__":
    main()
