"""cocotb testbench for a generated ``twn_top``: bit-exact against the golden model.

Run by ``twngen verify`` (and the tests) through cocotb's Python runner. The
vectors come from the golden model in a ``.npz`` named by ``TWN_VECTORS``
(``inputs`` [frames, beats, elements] and ``expected`` [frames, outputs]
integer codes, ``in_bits``, ``out_bits``, ``ii``); a dense network takes a
frame in one beat, a convolution network one position per beat. A JSON
summary is written to ``TWN_RESULTS``.

Two phases:

1. *measure*: inputs offered back to back with the output always ready; the
   cycles from a frame's first input handshake to its output handshake give
   the latency, and the spacing of output handshakes the initiation interval;
2. *stress*: every vector again with random gaps on the input valid and
   random output backpressure (``TWN_STALL`` probability each), checking that
   every output arrives once, in order, bit-exact.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

#: Port names of the two generated tops (TWN_TOP selects one).
PORTS = {
    "twn_top": {
        "x_data": "x__payload", "x_valid": "x__valid", "x_ready": "x__ready",
        "y_data": "y__payload", "y_valid": "y__valid", "y_ready": "y__ready",
    },
    "twn_axis": {
        "x_data": "s_axis_tdata", "x_valid": "s_axis_tvalid", "x_ready": "s_axis_tready",
        "y_data": "m_axis_tdata", "y_valid": "m_axis_tvalid", "y_ready": "m_axis_tready",
    },
}  # fmt: skip


def _sig(dut, role):
    return getattr(dut, PORTS[os.environ.get("TWN_TOP", "twn_top")][role])


def _pack(values: np.ndarray, bits: int) -> int:
    mask = (1 << bits) - 1
    word = 0
    for j, v in enumerate(values.tolist()):
        word |= (int(v) & mask) << (j * bits)
    return word


def _unpack(word: int, bits: int, count: int) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for j in range(count):
        v = (word >> (j * bits)) & mask
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


async def _run_phase(dut, inputs, expected, in_bits, out_bits, p_gap, p_stall, rng, timeout):
    """Stream all frames through; return (outputs, first-beat accept cycles, deliver cycles)."""
    n = len(inputs)
    beats = inputs.shape[1]
    n_out = expected.shape[1]
    sent = 0  # beats
    outputs: list[list[int]] = []
    accept_cycles: list[int] = []
    deliver_cycles: list[int] = []
    cycle = 0
    idle_after_done = 0
    while True:
        await FallingEdge(dut.clk)
        offer = sent < n * beats and rng.random() >= p_gap
        _sig(dut, "x_valid").value = int(offer)
        if offer:
            _sig(dut, "x_data").value = _pack(inputs[sent // beats, sent % beats], in_bits)
            if os.environ.get("TWN_TOP") == "twn_axis":
                dut.s_axis_tlast.value = int(sent % beats == beats - 1)
        _sig(dut, "y_ready").value = int(rng.random() >= p_stall)
        await ReadOnly()
        accepted = offer and int(_sig(dut, "x_ready").value) == 1
        delivered = int(_sig(dut, "y_valid").value) == 1 and int(_sig(dut, "y_ready").value) == 1
        word = int(_sig(dut, "y_data").value) if delivered else 0
        if delivered and os.environ.get("TWN_TOP") == "twn_axis":
            assert int(dut.m_axis_tlast.value) == 1, "every output beat ends a frame"
        await RisingEdge(dut.clk)
        cycle += 1
        if accepted:
            if sent % beats == 0:
                accept_cycles.append(cycle)
            sent += 1
        if delivered:
            outputs.append(_unpack(word, out_bits, n_out))
            deliver_cycles.append(cycle)
        if len(outputs) > n:
            break  # a duplicate: reported as a failure by the caller
        if len(outputs) == n:
            # Keep clocking a while to catch any extra (duplicated) output.
            idle_after_done += 1
            if idle_after_done > 50:
                break
        if cycle > timeout:
            break
    await FallingEdge(dut.clk)
    _sig(dut, "x_valid").value = 0
    _sig(dut, "y_ready").value = 0
    return outputs, accept_cycles, deliver_cycles


@cocotb.test()
async def twn_top_matches_golden(dut):
    vec = np.load(os.environ["TWN_VECTORS"])
    inputs = vec["inputs"].astype(np.int64)
    expected = vec["expected"].astype(np.int64)
    in_bits = int(vec["in_bits"])
    out_bits = int(vec["out_bits"])
    stall = float(os.environ.get("TWN_STALL", "0.3"))
    seed = int(os.environ.get("TWN_SEED", "1"))
    rng = random.Random(seed)
    n = len(inputs)
    beats = inputs.shape[1]
    ii = int(vec["ii"]) if "ii" in vec else 1
    timeout = 2000 + 4 * ii + (50 + 4 * ii) * n * (1 + int(10 * stall)) + 4 * n * beats

    started = time.monotonic()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    if os.environ.get("TWN_TOP") == "twn_axis":
        dut.s_axis_tlast.value = 1
    _sig(dut, "x_valid").value = 0
    _sig(dut, "y_ready").value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    # Phase 1: full rate, no backpressure.
    m = min(n, 32)
    outs, acc, dlv = await _run_phase(dut, inputs[:m], expected[:m], in_bits, out_bits, 0.0, 0.0, rng, timeout)
    latency = [d - a for a, d in zip(acc, dlv, strict=False)]
    spacing = [b - a for a, b in itertools.pairwise(dlv)]
    measured_latency = max(latency) if latency else -1
    measured_ii = max(spacing) if spacing else (1 if len(dlv) == 1 else -1)
    phase1_ok = len(outs) == m and all(list(o) == list(e) for o, e in zip(outs, expected[:m].tolist(), strict=False))

    # Phase 2: random gaps and backpressure over every vector.
    outs2, _, _ = await _run_phase(dut, inputs, expected, in_bits, out_bits, stall, stall, rng, timeout)
    passed = failed = 0
    mismatches = []
    for i, e in enumerate(expected.tolist()):
        got = outs2[i] if i < len(outs2) else None
        if got == e:
            passed += 1
        else:
            failed += 1
            if len(mismatches) < 5:
                mismatches.append({"vector": i, "expected": e, "got": got})
    extra = max(0, len(outs2) - n)
    result = {
        "vectors": n,
        "passed": passed,
        "failed": failed,
        "extra_outputs": extra,
        "phase1_ok": phase1_ok,
        "measured_latency_cycles": measured_latency,
        "measured_ii_cycles": measured_ii,
        "stall_probability": stall,
        # Simulation speed: wall time of both phases (not the simulator's build).
        "frames_simulated": m + n,
        "sim_wall_seconds": round(time.monotonic() - started, 3),
        "mismatches": mismatches,
    }
    with open(os.environ["TWN_RESULTS"], "w") as f:
        json.dump(result, f, indent=1)
    assert phase1_ok, "outputs at full rate differ from the golden model"
    assert failed == 0 and extra == 0, f"{failed} mismatches, {extra} extra outputs: {mismatches}"
