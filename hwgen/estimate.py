"""Resource estimate (LUT, FF, BRAM36, DSP) of the planned hardware.

A first-order model of a 6-input-LUT fabric with carry chains (UltraScale+),
counted from the same :mod:`hwgen.plan.dense` the backend builds from:

* a w-bit registered adder: 1.032 w - 1.296 LUTs (fitted to Yosys on
  parallel pipelines, docs/area_model.md) and w FFs; identical nodes are
  counted once, as synthesis merges them;
* a delay chain of w bits and L > 1 cycles: SRL32 shift registers
  (w * ceil((L-1)/32) LUTs) plus one output register (w FFs); one cycle: w FFs;
* a requantisation multiply: a DSP48E2 when the operands fit its 27x18
  multiplier (more DSPs otherwise), none when the multiplier is a power of
  two (a wire shift); its output register lives in the DSP;
* offset, shift and clamp: the offset add in the DSP's post-adder, one LUT
  per output bit for the clamp (one more per sum bit without a DSP);
* the output FIFO in distributed RAM: two LUTs per bit per 64 entries.

Only the adder coefficients are fitted to synthesis so far;
``twngen --synth-estimate`` puts Yosys's own counts beside these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwgen.ir import AdderGraph, LinearLayer, signed_bits_for_range
from hwgen.plan.bit_serial import AREA_MODEL, SerialGraphPlan, input_converter, input_converter_costs
from hwgen.plan.dense import LayerPlan, NetworkPlan
from hwgen.plan.frames import ArgmaxStage, DenseStage, FramePlan, LanePoolStage, MacStage, SerializeStage, WindowStage

__all__ = [
    "Resources",
    "estimate_layer",
    "estimate_network",
    "mac_cost",
    "mac_cost_for",
    "parallel_graph_cost",
    "serial_graph_cost",
]

DSP_A_BITS, DSP_B_BITS = 27, 18
#: Registered parallel adder node of w bits: LUTs = 1.032 w - 1.296 (Yosys fit).
PARALLEL_LUT_PER_BIT, PARALLEL_LUT_PER_NODE = 1.032, 1.296


def parallel_node_lut(width: int, operands: int) -> float:
    """LUTs of a registered parallel adder node: one carry chain per addition (Yosys builds
    ``a + b + c`` as two; Vivado's ternary adder would need about half)."""
    return (operands - 1) * max(0.0, PARALLEL_LUT_PER_BIT * width - PARALLEL_LUT_PER_NODE)


@dataclass(frozen=True)
class Resources:
    lut: int = 0
    ff: int = 0
    bram: int = 0
    dsp: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.bram + other.bram, self.dsp + other.dsp)

    def to_json(self) -> dict[str, int]:
        return {"lut": self.lut, "ff": self.ff, "bram": self.bram, "dsp": self.dsp}


def _is_power_of_two(v: int) -> bool:
    v = abs(v)
    return v > 0 and v & (v - 1) == 0


def _chunks(bits: int, port: int) -> int:
    """Pieces a signed ``bits``-wide operand needs on a signed ``port``-bit input."""
    return 1 if bits <= port else 1 + math.ceil((bits - port) / (port - 1))


def _dsp_count(a_bits: int, b_bits: int) -> int:
    """DSP48E2s for a signed a x b product (27x18 signed multiplier each)."""
    return min(
        _chunks(a_bits, DSP_A_BITS) * _chunks(b_bits, DSP_B_BITS),
        _chunks(b_bits, DSP_A_BITS) * _chunks(a_bits, DSP_B_BITS),
    )


def parallel_graph_cost(graph: AdderGraph, lo: int, hi: int) -> tuple[float, float]:
    """LUT sites and FFs of a graph's registered parallel adders (the scheduler's comparison)."""
    ranges = graph.value_ranges(lo, hi)
    lut = ff = 0.0
    for k, node in enumerate(graph.nodes):
        w = signed_bits_for_range(*ranges[graph.n_inputs + k])
        lut += parallel_node_lut(w, len(node.operands))
        ff += w
    return lut, ff


def serial_graph_cost(graph: AdderGraph, d: int, word: int, in_bits: int) -> tuple[float, float]:
    """LUT sites and FFs of a graph at digit width d with its converters (Yosys-calibrated)."""
    plan = SerialGraphPlan(graph, d, word)
    digits = plan.digits
    # Converters as measured (docs/area_model.md): the cheaper input converter
    # per input (hwgen.plan.bit_serial.input_converter_costs), serial-to-parallel
    # per output (D*d + log2(D) + 2 FF, at most 6 LUTs).
    n_out = sum(1 for o in graph.outputs if o is not None)
    p2s = input_converter_costs(word, d, in_bits)[input_converter(word, d, in_bits)]
    p2s_lut, p2s_ff = graph.n_inputs * p2s[0], graph.n_inputs * p2s[1]
    s2p_lut, s2p_ff = n_out * 6, n_out * (digits * d + math.ceil(math.log2(digits + 1)) + 2)
    return AREA_MODEL.lut(plan) + p2s_lut + s2p_lut, AREA_MODEL.ff(plan) + p2s_ff + s2p_ff


def estimate_layer(lp: LayerPlan, in_value_bits: int) -> Resources:
    """One layer: adder graph, delay lines, requantisation."""
    graph = lp.graph
    lut = ff = 0
    if lp.serial:
        s_lut, s_ff = serial_graph_cost(graph, lp.layer.digit_bits, lp.layer.word_bits, lp.in_bits)
        return Resources(lut=round(s_lut), ff=round(s_ff)) + _requant_cost(lp, in_value_bits)
    # Synthesis keeps one copy of identical registered nodes (same operands),
    # so only distinct nodes cost; coefficients fitted to Yosys synth_xilinx
    # on parallel pipelines (docs/area_model.md).
    seen: dict[tuple[object, ...], int] = {}
    canonical: list[int] = list(range(graph.n_inputs))
    for k, node in enumerate(graph.nodes):
        key = tuple(sorted((canonical[op.value], op.negate, op.shift) for op in node.operands))
        if key in seen:
            canonical.append(seen[key])
            continue
        seen[key] = graph.n_inputs + k
        canonical.append(graph.n_inputs + k)
        w = lp.value_bits[graph.n_inputs + k]
        lut += round(parallel_node_lut(w, len(node.operands)))
        ff += w
    for value, length in lp.delays.items():
        w = lp.value_bits[value]
        ff += w
        if length > 1:
            lut += w * math.ceil((length - 1) / 32)
    return Resources(lut=lut, ff=ff) + _requant_cost(lp, in_value_bits)


def _requant_cost(lp: LayerPlan, in_value_bits: int) -> Resources:
    """The requantiser: DSP multiplies (or shifts), offset, clamp; or thresholds."""
    lut = ff = dsp = 0
    rq = lp.layer.requant
    assert rq is not None
    if lp.thresholds is not None:
        return _threshold_cost(lp)
    for i, mult in enumerate(lp.effective_multipliers):
        ff += lp.out_bits
        if mult == 0:
            continue
        if not _is_power_of_two(mult):
            # The offset add rides on the DSP's post-adder; the clamp remains.
            dsp += _dsp_count(in_value_bits, abs(int(mult)).bit_length() + 1)
            lut += lp.out_bits
        else:
            ff += lp.product_bits[i]
            lut += lp.sum_bits[i] + lp.out_bits
    return Resources(lut=lut, ff=ff, dsp=dsp)


def _threshold_cost(lp: LayerPlan) -> Resources:
    """Accumulator register (a negation costs an adder), one constant
    comparator per threshold (about half a LUT per bit on the carry chain),
    and the count into the output code."""
    rq = lp.thresholds
    assert rq is not None
    lut = ff = 0
    for i, mult in enumerate(lp.effective_multipliers):
        ff += lp.out_bits
        if mult == 0:
            continue
        w = lp.product_bits[i]
        ff += w
        lut += w if mult < 0 else 0
        n = len(rq.thresholds[i])
        lut += n * math.ceil(w / 2) + (lp.out_bits if n > 1 else 0)
    return Resources(lut=lut, ff=ff)


def window_cost(stage: WindowStage) -> Resources:
    """A window buffer: wait register, shift register (SRLs between taps), masks, control."""
    g = stage.geometry
    width = stage.channels * stage.in_bits
    tapped = {g.tap_offset(kr, kc) for kr in range(g.k_h) for kc in range(g.k_w)} - {0}
    ff = width * (1 + len(tapped))
    lut = 0
    run = 0
    for k in range(1, g.chain_length + 1):
        if k in tapped:
            if run:
                lut += width * math.ceil(run / 32)
            run = 0
        else:
            run += 1
    masked = sum(
        1
        for kr in range(g.k_h)
        for kc in range(g.k_w)
        if g.row_range(kr) != (0, g.out_h - 1) or g.col_range(kc) != (0, g.out_w - 1)
    )
    lut += masked * width
    # Counters, slot control and the emission tables.
    counters = 4 * (max(g.height, g.width, g.out_h, g.out_w, stage.spacing, 2).bit_length() + 1)
    lut += 2 * counters + math.ceil((g.height + 2 * g.width) / 64) + 8
    ff += counters + 6
    return Resources(lut=lut, ff=ff)


def pool_cost(stage: WindowStage) -> Resources:
    """The comparator tree: per channel taps - 1 compare-and-select nodes, registered."""
    nodes = stage.channels * (stage.geometry.taps - 1)
    regs = stage.channels * max(1, stage.geometry.taps - 1)
    return Resources(lut=nodes * 2 * stage.in_bits, ff=regs * stage.in_bits)


def mac_cost(stage: MacStage) -> Resources:
    """A weights-in-memory dense layer: accumulators, shadow bank, output multiplexer,
    one shared requantiser, the weight memory in BRAM36 (72 bits wide at depth 512)."""
    n_in, n_out = stage.layer.in_features, stage.layer.out_features
    acc = sum(stage.acc_bits)
    widest = max(stage.acc_bits)
    # An accumulator bit: the add/subtract/hold of a ternary weight is one LUT on the carry chain;
    # wider weights need a multiplier per output: weight x input in DSP48E2s (one up to 18 x 27 bits,
    # e.g. a 16-bit weight times a 16-bit activation).
    lut = acc + (0 if stage.ternary else n_out * stage.weight_bits)
    dsp = 0 if stage.ternary else n_out * _dsp_count(stage.in_bits, stage.weight_bits)
    ff = 2 * acc
    lut += widest * math.ceil(n_out / 4)  # n_out:1 multiplexer, 4 inputs per LUT6 (plus F7/F8)
    # Shared requantiser: the constants' tables, multiply (DSP), offset, shift, clamp.
    lut += (stage.mult_bits + stage.offset_bits + 5) * math.ceil(n_out / 64) + 2 * stage.product_bits
    ff += widest + stage.mult_bits + stage.offset_bits + stage.product_bits + stage.out_bits + 16
    dsp += _dsp_count(widest, stage.mult_bits)
    width = n_out * stage.weight_bits
    bram = math.ceil(width / 72) * math.ceil(n_in / 512)
    return Resources(lut=lut + 24, ff=ff + 24, bram=bram, dsp=dsp)


def mac_cost_for(layer: LinearLayer, lo: int, hi: int, bits: int) -> Resources:
    return mac_cost(MacStage(layer, lo, hi, bits, tuple(range(layer.in_features)), 0))


def argmax_cost(n: int, bits: int) -> Resources:
    """The class-index tree: n - 1 compare-and-select nodes of (value, index), registered."""
    ibits = max(1, (n - 1).bit_length()) + 1
    return Resources(lut=(n - 1) * (2 * bits + ibits), ff=(n - 1) * (bits + ibits))


def estimate_frames(plan: FramePlan) -> tuple[list[Resources], Resources]:
    """Per-row estimates (convolution with its window buffer, pool, dense) and the total."""
    rows = []
    total = Resources()
    for stage in plan.stages:
        if isinstance(stage, WindowStage):
            res = window_cost(stage)
            if stage.lp is not None:
                res = res + estimate_layer(stage.lp, stage.lp.graph_out_bits)
            else:
                res = res + pool_cost(stage)
            rows.append(res)
        elif isinstance(stage, DenseStage):
            rows.append(estimate_layer(stage.lp, stage.lp.graph_out_bits))
        elif isinstance(stage, MacStage):
            rows.append(mac_cost(stage))
        elif isinstance(stage, ArgmaxStage):
            total = total + argmax_cost(stage.n, stage.bits)
        elif isinstance(stage, SerializeStage):
            total = total + Resources(
                lut=stage.bits * math.ceil(stage.per_beat / 4) + 8, ff=stage.per_beat * stage.bits
            )
        elif isinstance(stage, LanePoolStage):
            outs = stage.layer.out_shape[0]
            nodes = outs * (stage.layer.group - 1)
            rows.append(Resources(lut=nodes * 2 * stage.bits, ff=outs * stage.levels * stage.bits))
        else:
            # The collector's registers (part of the glue).
            total = total + Resources(lut=8, ff=stage.channels * stage.positions * stage.bits + 12)
    fifo_bits = plan.out_elements * plan.out_bits
    glue = Resources(
        lut=2 * fifo_bits * math.ceil(plan.fifo_depth / 64) + 24,
        ff=plan.beat_elements * plan.in_bits + fifo_bits + 3 * plan.fifo_depth.bit_length() + 40,
    )
    total = total + glue
    for r in rows:
        total = total + r
    return rows, total


def estimate_network(plan: NetworkPlan | FramePlan) -> tuple[list[Resources], Resources]:
    """Per-layer estimates and the total (including I/O registers and FIFO)."""
    if isinstance(plan, FramePlan):
        return estimate_frames(plan)
    per_layer = []
    for lp in plan.layers:
        per_layer.append(estimate_layer(lp, lp.graph_out_bits))
    n_in = plan.network.in_features
    n_out = plan.layers[-1].layer.out_features
    fifo_bits = n_out * plan.out_bits
    glue = Resources(
        lut=2 * fifo_bits * math.ceil(plan.fifo_depth / 64) + 16,
        ff=n_in * plan.in_bits + fifo_bits + plan.pipeline_latency + 3 * plan.fifo_depth.bit_length(),
    )
    total = glue
    if plan.argmax_levels:
        total = total + argmax_cost(plan.layers[-1].layer.out_features, plan.layers[-1].out_bits)
    for r in per_layer:
        total = total + r
    return per_layer, total
