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

Layers folded into lanes (:mod:`hwgen.passes.fold_lanes`, several positions a
cycle) are counted as what they are on the folded layout: a convolution's
adder graph over ``P`` lanes of inputs (the zero taps cost nothing) with a
requantiser per output lane and channel, its window buffer ``P`` positions
wide and ``W / P`` long per row; a max across lanes as a comparator tree per
output lane; a lane-window pool as a tree per output lane over that lane's
taps only. The report's ``lanes`` says what each layer takes and gives.

Only the adder coefficients are fitted to synthesis so far;
``twngen --synth-estimate`` puts Yosys's own counts beside these.

Every count is kept by *part* (:data:`PARTS`: adder graph, serial
converters, window buffer, requantiser, ...): :func:`estimate_parts` gives
each layer's parts and the parts outside the layers, and a layer's total (and
the design's) is their sum, so the report can say what costs what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwgen.ir import AdderGraph, LinearLayer, signed_bits_for_range
from hwgen.plan.bit_serial import AREA_MODEL, SerialGraphPlan, input_converter, input_converter_costs
from hwgen.plan.dense import LayerPlan, NetworkPlan
from hwgen.plan.frames import ArgmaxStage, DenseStage, FramePlan, LanePoolStage, MacStage, SerializeStage, WindowStage

__all__ = [
    "LANE_TREE_LUT_PER_BIT",
    "PARTS",
    "Estimate",
    "Resources",
    "dsp_count",
    "estimate_layer",
    "estimate_network",
    "estimate_parts",
    "layer_parts",
    "mac_cost",
    "mac_cost_for",
    "parallel_graph_cost",
    "requant_cost",
    "serial_graph_cost",
    "shared_requant_cost",
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


#: The parts an estimate is split into, in report order, with what each counts.
PARTS: dict[str, str] = {
    "adder_graph": "adder graph: registered adders (parallel) or serial adders and their delay lines",
    "serial_converters": "parallel-to-serial converters of the inputs, serial-to-parallel of the outputs",
    "window_buffer": "window buffer: wait register, shift register / line buffer, padding masks, control",
    "pooling": "max/min comparator trees",
    "requantiser": "multiply (DSP), offset, shift, clamp per channel; thresholds; shared units and their selects",
    "accumulators": "weights-in-memory accumulators, shadow bank and weight multipliers",
    "weight_memory": "weights in block RAM",
    "output_select": "the multiplexer that reads one accumulator per cycle",
    "control": "counters and strobes of a weights-in-memory layer",
    "collector": "frame collectors (positions gathered into one vector)",
    "serializer": "serializers (a beat out one value per cycle)",
    "argmax": "the class-index comparator tree",
    "io": "input register, pacing and credits, output FIFO",
}

Parts = dict[str, Resources]


def total_of(parts: Parts) -> Resources:
    """The sum of the parts (the total of a layer, or of the design)."""
    total = Resources()
    for res in parts.values():
        total = total + res
    return total


def _add_part(parts: Parts, name: str, res: Resources) -> None:
    assert name in PARTS, name
    parts[name] = parts.get(name, Resources()) + res


@dataclass(frozen=True)
class Estimate:
    """Per report row (:func:`hwgen.report.report_units`), the parts of that layer; and the
    parts outside every layer (collectors, serializers, argmax, I/O)."""

    layers: tuple[Parts, ...]
    outside: Parts

    @property
    def per_layer(self) -> list[Resources]:
        return [total_of(parts) for parts in self.layers]

    @property
    def total(self) -> Resources:
        total = total_of(self.outside)
        for r in self.per_layer:
            total = total + r
        return total

    @property
    def by_part(self) -> Parts:
        """The whole design's resources per part (they sum to :attr:`total`)."""
        out: Parts = {}
        for parts in (*self.layers, self.outside):
            for name, res in parts.items():
                _add_part(out, name, res)
        return {name: out[name] for name in PARTS if name in out}


def _is_power_of_two(v: int) -> bool:
    v = abs(v)
    return v > 0 and v & (v - 1) == 0


def _chunks(bits: int, port: int) -> int:
    """Pieces a signed ``bits``-wide operand needs on a signed ``port``-bit input."""
    return 1 if bits <= port else 1 + math.ceil((bits - port) / (port - 1))


def dsp_count(a_bits: int, b_bits: int) -> int:
    """DSP48E2s for a signed a x b product (27x18 signed multiplier each)."""
    return min(
        _chunks(a_bits, DSP_A_BITS) * _chunks(b_bits, DSP_B_BITS),
        _chunks(b_bits, DSP_A_BITS) * _chunks(a_bits, DSP_B_BITS),
    )


def parallel_graph_cost(graph: AdderGraph, lo: int, hi: int, wrap_bits: int = 0) -> tuple[float, float]:
    """LUT sites and FFs of a graph's registered parallel adders (the scheduler's comparison);
    with a word width no node is wider than the word (:attr:`LayerPlan.value_bits`)."""
    ranges = graph.value_ranges(lo, hi)
    lut = ff = 0.0
    for k, node in enumerate(graph.nodes):
        w = signed_bits_for_range(*ranges[graph.n_inputs + k])
        w = min(w, wrap_bits) if wrap_bits else w
        lut += parallel_node_lut(w, len(node.operands))
        ff += w
    return lut, ff


def serial_graph_cost(graph: AdderGraph, d: int, word: int, in_bits: int) -> tuple[float, float]:
    """LUT sites and FFs of a graph at digit width d with its converters (Yosys-calibrated)."""
    lut, ff, _, _ = _serial_graph_parts(graph, d, word, in_bits)
    return lut, ff


def _serial_graph_parts(graph: AdderGraph, d: int, word: int, in_bits: int) -> tuple[float, float, float, float]:
    """(LUT, FF) of :func:`serial_graph_cost` and the converters' share of each."""
    plan = SerialGraphPlan(graph, d, word)
    digits = plan.digits
    # Converters as measured (docs/area_model.md): the cheaper input converter
    # per input (hwgen.plan.bit_serial.input_converter_costs), serial-to-parallel
    # per output (D*d + log2(D) + 2 FF, at most 6 LUTs).
    n_out = sum(1 for o in graph.outputs if o is not None)
    p2s = input_converter_costs(word, d, in_bits)[input_converter(word, d, in_bits)]
    p2s_lut, p2s_ff = graph.n_inputs * p2s[0], graph.n_inputs * p2s[1]
    s2p_lut, s2p_ff = n_out * 6, n_out * (digits * d + math.ceil(math.log2(digits + 1)) + 2)
    return (
        AREA_MODEL.lut(plan) + p2s_lut + s2p_lut,
        AREA_MODEL.ff(plan) + p2s_ff + s2p_ff,
        p2s_lut + s2p_lut,
        p2s_ff + s2p_ff,
    )


def estimate_layer(lp: LayerPlan, in_value_bits: int) -> Resources:
    """One layer: adder graph, delay lines, requantisation."""
    return total_of(layer_parts(lp, in_value_bits))


def layer_parts(lp: LayerPlan, in_value_bits: int) -> Parts:
    """One layer's adder graph (with its delay lines), serial converters and requantiser."""
    graph = lp.graph
    parts: Parts = {}
    if lp.serial:
        s_lut, s_ff, c_lut, c_ff = _serial_graph_parts(graph, lp.layer.digit_bits, lp.layer.word_bits, lp.in_bits)
        # The layer rounds the whole (graph and converters); the converters' share is rounded
        # apart and the graph gets the rest, so the parts add up to the rounded whole.
        lut, ff = round(s_lut), round(s_ff)
        conv = Resources(lut=round(c_lut), ff=round(c_ff))
        parts["adder_graph"] = Resources(lut=lut - conv.lut, ff=ff - conv.ff)
        parts["serial_converters"] = conv
        parts["requantiser"] = requant_cost(lp, in_value_bits)
        return parts
    lut = ff = 0
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
    parts["adder_graph"] = Resources(lut=lut, ff=ff)
    parts["requantiser"] = requant_cost(lp, in_value_bits)
    return parts


def requant_cost(lp: LayerPlan, in_value_bits: int) -> Resources:
    """The requantiser: DSP multiplies (or shifts), offset, clamp; or thresholds. A wrapped
    output with a sign costs a negation of the word before it (one LUT a bit)."""
    negations = Resources(lut=lp.layer.wrap_bits * lp.negated_wraps)
    if lp.thresholds is not None:
        return _threshold_cost(lp) + negations
    if lp.shared_units:
        return shared_requant_cost(lp, in_value_bits) + negations
    return _requant_per_channel_cost(lp, in_value_bits) + negations


def _requant_per_channel_cost(lp: LayerPlan, in_value_bits: int) -> Resources:
    lut = ff = dsp = 0
    for i, mult in enumerate(lp.effective_multipliers):
        ff += lp.out_bits
        if mult == 0:
            continue
        if not _is_power_of_two(mult):
            # The offset add rides on the DSP's post-adder; the clamp remains.
            dsp += dsp_count(in_value_bits, abs(int(mult)).bit_length() + 1)
            lut += lp.out_bits
        else:
            ff += lp.product_bits[i]
            lut += lp.sum_bits[i] + lp.out_bits
    return Resources(lut=lut, ff=ff, dsp=dsp)


def _mux_lut(inputs: int) -> int:
    """LUT6s per bit of an ``inputs``:1 multiplexer (4 inputs a LUT6, F7/F8 muxes free)."""
    return 0 if inputs <= 1 else math.ceil(inputs / 4)


#: Shared requantiser LUTs per bank bit per extra slot (the bank multiplexer), fitted to Yosys
#: synth_xilinx on four layers (2 to 32 slots; docs/streaming.md).
SHARED_LUT_PER_SELECT_BIT = 0.6


def shared_requant_cost(lp: LayerPlan, in_value_bits: int) -> Resources:
    """Requantisers shared in time (:class:`hwgen.plan.dense.SharedRequantUnit`).

    Per channel: its output register, its bank register, a write enable (the
    slot decode); a constant channel only its register. Per unit: a DSP (the
    value and multiplier registers and the product register are its A/B/M
    registers), the bank multiplexer (:data:`SHARED_LUT_PER_SELECT_BIT` per bit
    and extra slot), the offset adder (a variable offset: one LUT per sum bit),
    the variable shift (one 2:1 level per shift bit), the clamp, and the offset
    and shift carried through two stages; the constant tables fold into the
    logic (fitted: Yosys counts no LUTs for them apart). The slot counter and its
    two delayed copies are shared. As for per-channel requantisers, the product
    register is counted in the DSP (Yosys keeps it in flip-flops, docs/streaming.md).
    """
    lut = 0.0
    ff = dsp = 0
    for mult in lp.effective_multipliers:
        ff += lp.out_bits
        lut += 1 if mult else 0
    slots = lp.requant_slots
    slot_bits = max(slots - 1, 1).bit_length()
    for unit in lp.shared_units:
        ff += sum(lp.requant_input_bits(ch) for ch in unit.channels)
        dsp += dsp_count(in_value_bits, unit.mult_bits)
        lut += SHARED_LUT_PER_SELECT_BIT * unit.value_bits * (len(unit.channels) - 1)
        lut += unit.sum_bits * (1 + unit.shift_bits) + lp.out_bits
        ff += 2 * (unit.offset_bits + unit.shift_bits)
    lut += 2 * slot_bits + 2
    ff += 3 * slot_bits + 3
    return Resources(lut=round(lut), ff=ff, dsp=dsp)


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


def window_cost(stage: WindowStage, masks_fold: bool = False) -> Resources:
    """A window buffer: wait register, shift register (SRLs between taps), masks, control.

    ``masks_fold``: the padding masks cost nothing because every tap goes into a LUT with inputs
    to spare, a digit-serial layer's input converters (load or digit select): Yosys folds the
    mask there (``bench/classifier_synth.py``: the serial convolutions' stages came out about one
    window's masks under the estimate that counted them, a LUT per masked tap bit)."""
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
    lut += 0 if masks_fold else masked * width
    # Counters, slot control and the emission tables.
    counters = 4 * (max(g.height, g.width, g.out_h, g.out_w, stage.spacing, 2).bit_length() + 1)
    lut += 2 * counters + math.ceil((g.height + 2 * g.width) / 64) + 8
    ff += counters + 6
    return Resources(lut=lut, ff=ff)


#: LUTs of one compare-and-select node of a pool tree beside its ``bits + ceil(bits / 2)`` (the
#: select, and the comparison two bits a LUT into the carry chain), fitted to Yosys: 27 LUTs per
#: 16-bit node in all seven pools of the classifier (``bench/classifier_synth.py``).
POOL_NODE_LUT_EXTRA = 3


def pool_cost(stage: WindowStage) -> Resources:
    """The comparator tree: per output channel taps - 1 compare-and-select nodes, registered (a
    lane-window pool's outputs are its own lanes', each comparing its lane's taps)."""
    nodes = stage.out_channels * (stage.pool_taps - 1)
    regs = stage.out_channels * max(1, stage.pool_taps - 1)
    return Resources(lut=nodes * _pool_node_lut(stage.in_bits), ff=regs * stage.in_bits)


def _pool_node_lut(bits: int) -> int:
    """LUTs of one compare-and-select node of ``bits``-bit codes (:data:`POOL_NODE_LUT_EXTRA`)."""
    return bits + (bits + 1) // 2 + POOL_NODE_LUT_EXTRA


def mac_cost(stage: MacStage) -> Resources:
    """A weights-in-memory dense layer (:func:`mac_parts`)."""
    return total_of(mac_parts(stage))


def mac_parts(stage: MacStage) -> Parts:
    """A weights-in-memory dense layer: accumulators, shadow bank, output multiplexer,
    one shared requantiser, the weight memory in BRAM36 (72 bits wide at depth 512).
    With lanes (:func:`_laned_accumulators`): an adder tree per accumulator, a requantiser per
    output lane, each with its own ``n_out / out_lanes``:1 multiplexer; the weight memory
    ``lanes`` columns wide and ``in_features / lanes`` deep."""
    laned = stage.lanes > 1 or stage.out_lanes > 1
    widest = max(stage.acc_bits)
    one = _mac_requantiser(stage, stage.out_beats)
    return {
        "accumulators": _laned_accumulators(stage) if laned else _accumulators(stage),
        "weight_memory": _weight_memory(stage.lanes * stage.layer.out_features * stage.weight_bits, stage.in_beats),
        # n_out:1 multiplexers, 4 inputs per LUT6 (plus F7/F8).
        "output_select": Resources(lut=stage.out_lanes * widest * math.ceil(stage.out_beats / 4)),
        "requantiser": Resources(
            lut=stage.out_lanes * one.lut, ff=stage.out_lanes * one.ff, dsp=stage.out_lanes * one.dsp
        ),
        "control": Resources(lut=24, ff=24),
    }


def _accumulators(stage: MacStage) -> Resources:
    """One element a cycle: the add/subtract/hold of a ternary weight is one LUT per
    accumulator bit on the carry chain; wider weights need a multiplier per output: weight x
    input in DSP48E2s (one up to 18 x 27 bits). FFs: accumulators and shadow bank."""
    acc = sum(stage.acc_bits)
    n_out = stage.layer.out_features
    return Resources(
        lut=acc + (0 if stage.ternary else n_out * stage.weight_bits),
        ff=2 * acc,
        dsp=0 if stage.ternary else n_out * dsp_count(stage.in_bits, stage.weight_bits),
    )


#: LUTs per bit of a laned MAC layer's adder trees, fitted to Yosys (``bench/laned_mac.py``,
#: ``synth_xilinx -family xcup``): 128 ternary outputs of 16-bit inputs cost 36-39 LUTs more per
#: output at 2 lanes than at 1 (17-bit adders) and 133 more at 4 (two 17-bit and one 18-bit).
LANE_TREE_LUT_PER_BIT = 2.5


def _mac_requantiser(stage: MacStage, channels: int) -> Resources:
    """One shared requantiser serving ``channels`` outputs in turn: the constants' tables,
    multiply (DSP), offset, shift, clamp."""
    widest = max(stage.acc_bits)
    return Resources(
        lut=(stage.mult_bits + stage.offset_bits + 5) * math.ceil(channels / 64) + 2 * stage.product_bits,
        ff=widest + stage.mult_bits + stage.offset_bits + stage.product_bits + stage.out_bits + 16,
        dsp=dsp_count(widest, stage.mult_bits),
    )


def _weight_memory(width: int, depth: int) -> Resources:
    """Block RAM for weights ``width`` bits wide and ``depth`` rows deep (72 x 512 per BRAM36)."""
    return Resources(bram=math.ceil(width / 72) * math.ceil(depth / 512))


def _laned_accumulators(stage: MacStage) -> Resources:
    """The accumulators of a MAC taking ``lanes`` elements a cycle (:func:`mac_parts`).

    Each accumulator adds a balanced tree of ``lanes`` terms, each level's
    adders a bit wider than the last, at :data:`LANE_TREE_LUT_PER_BIT` LUTs
    per adder bit (the signed selects and negations of ternary weights
    included), and the accumulator's own adder a LUT per bit as with one
    lane; wider weights, ``lanes`` multipliers (DSPs) per output and the
    tree's adders at the products' width.
    """
    lanes = stage.lanes
    n_out = stage.layer.out_features
    acc = sum(stage.acc_bits)
    term_bits = stage.in_bits + 1 if stage.ternary else stage.in_bits + stage.weight_bits
    adder_bits = 0  # bits of one output's tree adders
    width, count = term_bits, lanes
    while count > 1:
        adder_bits += (count // 2) * width
        count, width = count - count // 2, width + 1
    tree = math.ceil(LANE_TREE_LUT_PER_BIT * adder_bits)
    return Resources(
        lut=acc + n_out * tree,
        ff=2 * acc + lanes * stage.in_bits,
        dsp=0 if stage.ternary else n_out * lanes * dsp_count(stage.in_bits, stage.weight_bits),
    )


def mac_cost_for(layer: LinearLayer, lo: int, hi: int, bits: int, lanes: int = 1, out_lanes: int = 1) -> Resources:
    """A MAC layer taking ``lanes`` elements a cycle and giving ``out_lanes`` (:func:`mac_parts`)."""
    return mac_cost(MacStage(layer, lo, hi, bits, tuple(range(layer.in_features)), 0, lanes, out_lanes))


def argmax_cost(n: int, bits: int) -> Resources:
    """The class-index tree: n - 1 compare-and-select nodes of (value, index), registered."""
    ibits = max(1, (n - 1).bit_length()) + 1
    return Resources(lut=(n - 1) * (2 * bits + ibits), ff=(n - 1) * (bits + ibits))


def _frame_parts(plan: FramePlan) -> Estimate:
    """Per-row parts (convolution with its window buffer, pool, dense) and the parts outside them."""
    rows: list[Parts] = []
    outside: Parts = {}
    for stage in plan.stages:
        if isinstance(stage, WindowStage):
            serial = stage.lp is not None and stage.lp.serial
            parts: Parts = {"window_buffer": window_cost(stage, masks_fold=serial)}
            if stage.lp is not None:
                parts.update(layer_parts(stage.lp, stage.lp.graph_out_bits))
            else:
                parts["pooling"] = pool_cost(stage)
            rows.append(parts)
        elif isinstance(stage, DenseStage):
            rows.append(layer_parts(stage.lp, stage.lp.graph_out_bits))
        elif isinstance(stage, MacStage):
            rows.append(mac_parts(stage))
        elif isinstance(stage, ArgmaxStage):
            _add_part(outside, "argmax", argmax_cost(stage.n, stage.bits))
        elif isinstance(stage, SerializeStage):
            _add_part(
                outside,
                "serializer",
                Resources(
                    lut=stage.lanes * stage.bits * math.ceil(stage.out_beats / 4) + 8, ff=stage.per_beat * stage.bits
                ),
            )
        elif isinstance(stage, LanePoolStage):
            outs = stage.layer.out_shape[0]
            nodes = outs * (stage.layer.group - 1)
            rows.append(
                {"pooling": Resources(lut=nodes * _pool_node_lut(stage.bits), ff=outs * stage.levels * stage.bits)}
            )
        else:
            # The collector's registers.
            _add_part(outside, "collector", Resources(lut=8, ff=stage.channels * stage.positions * stage.bits + 12))
    fifo_bits = plan.out_elements * plan.out_bits
    _add_part(
        outside,
        "io",
        Resources(
            lut=2 * fifo_bits * math.ceil(plan.fifo_depth / 64) + 24,
            ff=plan.beat_elements * plan.in_bits + fifo_bits + 3 * plan.fifo_depth.bit_length() + 40,
        ),
    )
    return Estimate(tuple(rows), outside)


def estimate_frames(plan: FramePlan) -> tuple[list[Resources], Resources]:
    """Per-row estimates (convolution with its window buffer, pool, dense) and the total."""
    est = _frame_parts(plan)
    return est.per_layer, est.total


def estimate_parts(plan: NetworkPlan | FramePlan) -> Estimate:
    """The estimate by part: each report row's parts and the parts outside the layers."""
    if isinstance(plan, FramePlan):
        return _frame_parts(plan)
    rows = [layer_parts(lp, lp.graph_out_bits) for lp in plan.layers]
    n_in = plan.network.in_features
    n_out = plan.layers[-1].layer.out_features
    fifo_bits = n_out * plan.out_bits
    outside: Parts = {}
    if plan.argmax_levels:
        _add_part(outside, "argmax", argmax_cost(plan.layers[-1].layer.out_features, plan.layers[-1].out_bits))
    _add_part(
        outside,
        "io",
        Resources(
            lut=2 * fifo_bits * math.ceil(plan.fifo_depth / 64) + 16,
            ff=n_in * plan.in_bits + fifo_bits + plan.pipeline_latency + 3 * plan.fifo_depth.bit_length(),
        ),
    )
    return Estimate(tuple(rows), outside)


def estimate_network(plan: NetworkPlan | FramePlan) -> tuple[list[Resources], Resources]:
    """Per-layer estimates and the total (including I/O registers and FIFO)."""
    est = estimate_parts(plan)
    return est.per_layer, est.total
