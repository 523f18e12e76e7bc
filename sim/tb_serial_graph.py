"""cocotb testbench for a generated ``SerialAdderGraph``: bit-exact against ``AdderGraph.evaluate``.

Run by ``tests/test_serial.py`` through ``sim/runner.py``. The vectors come
from a ``.npz`` named by ``TWN_VECTORS``: ``inputs`` [N, n_inputs] and
``expected`` [N, n_outputs] integers (the output *values*, before the output
operands' sign and shift), ``digit_bits``, ``digits`` (per word) and
``latency``. Input words are driven digit by digit, LSB first, with random
idle cycles (probability ``TWN_STALL`` after each word) carrying random
digits; a JSON summary goes to ``TWN_RESULTS``.

Ports of the design: ``x`` (input ``j``'s digit at ``[j*d +: d]``),
``first``, ``y`` (output ``i``'s digit at ``[i*d +: d]``), ``y_first``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@cocotb.test()
async def serial_graph_matches_the_graph(dut):
    vec = np.load(os.environ["TWN_VECTORS"])
    inputs = vec["inputs"].astype(np.int64).tolist()
    expected = vec["expected"].astype(np.int64).tolist()
    d, n, latency = int(vec["digit_bits"]), int(vec["digits"]), int(vec["latency"])
    stall = float(os.environ.get("TWN_STALL", "0.3"))
    rng = random.Random(int(os.environ.get("TWN_SEED", "1")))
    n_in, n_out = len(inputs[0]), len(expected[0])
    mask = (1 << d) - 1

    # Word start cycles: back to back, or after a few idle cycles.
    starts, c = [], 0
    for _ in inputs:
        starts.append(c)
        c += n + (rng.randint(1, 3) if rng.random() < stall else 0)
    owner = {s + t: (w, t) for w, s in enumerate(starts) for t in range(n)}
    total = c + latency + 2

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.first.value = 0
    dut.x.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    y_digits: list = []
    y_first: list[int] = []
    for cycle in range(total):
        w_t = owner.get(cycle)
        word = 0
        for j in range(n_in):
            digit = rng.getrandbits(d) if w_t is None else (inputs[w_t[0]][j] >> (d * w_t[1])) & mask
            word |= digit << (j * d)
        dut.x.value = word
        dut.first.value = int(w_t is not None and w_t[1] == 0)
        await ReadOnly()
        # Reset-less registers may hold X until the first word has flushed them: keep the raw
        # value and convert only the digits that belong to output words.
        y_digits.append(dut.y.value)
        y_first.append(int(dut.y_first.value))
        await FallingEdge(dut.clk)

    firsts = [c for c, f in enumerate(y_first) if f]
    measured_latency = firsts[0] - starts[0] if firsts else -1
    got = []
    for s in starts:
        row = []
        for i in range(n_out):
            value = sum(((int(y_digits[s + latency + t]) >> (i * d)) & mask) << (d * t) for t in range(n))
            row.append(_signed(value, n * d))
        got.append(row)
    mismatches = [
        {"vector": k, "expected": e, "got": g} for k, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g
    ]
    result = {
        "vectors": len(inputs),
        "passed": len(inputs) - len(mismatches),
        "failed": len(mismatches),
        "strobes_ok": firsts == [s + latency for s in starts],
        "measured_latency_cycles": measured_latency,
        "mismatches": mismatches[:5],
    }
    with open(os.environ["TWN_RESULTS"], "w") as f:
        json.dump(result, f, indent=1)
    assert result["strobes_ok"], f"y_first at {firsts}, expected {[s + latency for s in starts]}"
    assert not mismatches, mismatches[:5]
