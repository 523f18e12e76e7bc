"""Choose every layer's digit width so that each meets the network's rate at the lowest area.

The network accepts one input vector every ``initiation_interval`` (II)
cycles. A dense layer sees one vector per II cycles too, so it may take up to
II cycles per vector: at digit width ``d`` its adder graph needs ``D =
ceil(W / d)`` cycles for a word of ``W`` bits, and any ``d`` with ``D <= II``
meets the rate. Among those (and the fully parallel pipeline) the pass picks
the smallest estimated area: LUT sites from the Yosys-calibrated models
(:data:`hwgen.plan.bit_serial.AREA_MODEL` for serial graphs plus their
converters, :mod:`hwgen.estimate`'s adder cost for parallel ones), flip-flops
breaking ties. The choice is recorded in each layer (``digit_bits``, 0 for
parallel; ``word_bits``) and the II in the network.

In a network that streams frames (convolution or pooling layers), the
input takes one position every ``initiation_interval / positions`` cycles;
:func:`hwgen.plan.frames.frame_budgets` gives each layer the fewest cycles
between its windows (a convolution, per output position: pooling and stride
make it grow layer by layer) or between its frames (a dense layer after the
flatten), and that budget plays the role of the II above.

A layer whose budget leaves it cycles to spare may also share its
requantisers in time (``requant_units``, :class:`hwgen.plan.dense.SharedRequantUnit`):
every count of units whose slots fit the budget is costed with
:func:`hwgen.estimate.requant_cost`, a DSP weighed as :data:`LUT_PER_DSP`
LUTs, and the cheapest is kept (0, one requantiser per channel, when nothing
is cheaper). Threshold requantisers (graph quantisers) stay per channel: they
have no multiplier to share, and their comparators are per channel anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from hwgen.errors import TwnError
from hwgen.estimate import Resources, mac_cost_for, parallel_graph_cost, requant_cost, serial_graph_cost
from hwgen.ir import AdderGraph, Layer, LinearLayer, Network, PoolLayer, Requant
from hwgen.passes.three_input import regroups, three_input_graph
from hwgen.plan.bit_serial import digits_per_word, serial_word_bits
from hwgen.plan.dense import LayerPlan
from hwgen.plan.frames import frame_budgets, mac_lanes, mac_refusal

__all__ = [
    "LUT_PER_DSP",
    "LayerChoice",
    "ScheduleDigitWidths",
    "choose_layer",
    "choose_requant_units",
    "layer_budgets",
    "layer_choices",
    "output_codes",
]

#: A DSP48E2 weighed as the LUTs a device has per DSP when sharing requantisers
#: trades DSPs for LUTs (ZCU111: 425,280 LUTs / 4,272 DSPs, about 100).
LUT_PER_DSP = 100


@dataclass(frozen=True)
class LayerChoice:
    digit_bits: int  # 0: fully parallel
    word_bits: int
    cycles: int  # cycles per vector (D; 1 for parallel)
    lut: float
    ff: float


def layer_choices(
    graph: AdderGraph,
    lo: int,
    hi: int,
    in_bits: int,
    initiation_interval: int,
    three_input: bool = True,
    wrap_bits: int = 0,
) -> list[LayerChoice]:
    """Every digit width that meets the II (one per distinct cycle count), and parallel; costed
    with three-input adders where :func:`hwgen.passes.three_input.regroups` says the build uses
    them (unless ``three_input`` is false). A word width (``wrap_bits``) bounds the serial word
    and every parallel node."""
    word = serial_word_bits(graph, lo, hi)
    word = min(word, wrap_bits) if wrap_bits else word
    regrouped = three_input_graph(graph) if three_input and graph.adders else graph
    lut, ff = parallel_graph_cost(regrouped, lo, hi, wrap_bits)
    choices = [LayerChoice(0, word, 1, lut, ff)]
    if graph.adders == 0:
        return choices  # nothing to serialise
    best_d_for: dict[int, int] = {}
    for d in range(1, word):
        digits = digits_per_word(word, d)
        if digits <= initiation_interval and digits not in best_d_for:
            best_d_for[digits] = d  # the narrowest digit giving this many cycles
    for digits, d in sorted(best_d_for.items()):
        lut, ff = serial_graph_cost(regrouped if regroups(d) else graph, d, word, in_bits)
        choices.append(LayerChoice(d, word, digits, lut, ff))
    return choices


def layer_budgets(network: Network, initiation_interval: int) -> dict[str, int]:
    """Cycles each linear layer may take per vector: the II, or its window/frame budget in a frame network."""
    ii = initiation_interval
    if not isinstance(ii, int) or ii < 1:
        raise TwnError(f"the initiation interval must be a positive number of cycles, not {ii!r}")
    if not network.has_conv:
        return {layer.name: ii for layer in network.layers if isinstance(layer, LinearLayer)}
    beats = math.prod(network.stream_shape[1:])
    if ii % beats:
        raise TwnError(f"the initiation interval {ii} is not a whole number of cycles per input position")
    return frame_budgets(network, ii // beats)


def choose_layer(
    network: Network, layer: LinearLayer, budget: int, lo: int, hi: int, bits: int
) -> tuple[LayerChoice | None, str]:
    """The least-area realisation of ``layer`` for inputs in [lo, hi] (``bits`` wide) at ``budget``.

    Returns the best adder-graph choice (None when not even costed) and the
    realisation: "graph", or "mac" when weights in memory
    (:mod:`hwgen.backend.mac`, :func:`hwgen.plan.frames.mac_lanes` elements per cycle)
    beat every adder graph.
    """
    assert layer.adder_graph is not None
    mac = None
    if network.has_conv and not layer.is_conv and mac_refusal(layer, budget) is None:
        # Weights in memory with shared adders, taking (and giving) the fewest elements per cycle
        # that fit the budget: one when the layer has the idle cycles for it.
        lanes, out_lanes = mac_lanes(layer.in_features, budget), mac_lanes(layer.out_features, budget)
        assert lanes is not None and out_lanes is not None
        mac = mac_cost_for(layer, lo, hi, bits, lanes, out_lanes)
        if mac.lut < layer.adder_graph.adders:
            return None, "mac"  # every adder costs at least one LUT at any digit width: no graph can win
    g_lo, g_hi = (min(lo, 0), max(hi, 0)) if layer.is_conv else (lo, hi)
    choices = layer_choices(layer.adder_graph, g_lo, g_hi, bits, budget, wrap_bits=layer.wrap_bits)
    best = min(choices, key=lambda c: (c.lut, c.ff, -c.cycles))
    return best, "mac" if mac is not None and (mac.lut, mac.ff) < (best.lut, best.ff) else "graph"


def choose_requant_units(layer: LinearLayer, budget: int, lo: int, hi: int, bits: int) -> int:
    """How many time-shared requantisers ``layer`` should have at ``budget`` cycles per vector
    (0: one per channel), for inputs in [lo, hi] (``bits`` wide)."""
    if not isinstance(layer.requant, Requant) or layer.realisation != "graph" or budget < 2:
        return 0
    g_lo, g_hi = (min(lo, 0), max(hi, 0)) if layer.is_conv else (lo, hi)
    base = LayerPlan(replace(layer, requant_units=0), g_lo, g_hi, bits)
    active = sum(1 for m in base.effective_multipliers if m)

    def score(res: Resources) -> tuple[int, int]:
        return res.lut + LUT_PER_DSP * res.dsp, res.ff

    best, best_units = score(requant_cost(base, base.graph_out_bits)), 0
    tried = set()
    for slots in range(2, min(budget, active) + 1):
        units = -(-active // slots)
        if units in tried:
            continue
        tried.add(units)
        cand = LayerPlan(replace(layer, requant_units=units), g_lo, g_hi, bits)
        # The same graph and inputs: reuse the intervals and the widths.
        cand.__dict__["value_ranges"] = base.value_ranges
        cand.__dict__["value_bits"] = base.value_bits
        assert cand.requant_slots <= budget
        cost = score(requant_cost(cand, cand.graph_out_bits))
        if cost < best:
            best, best_units = cost, units
    return best_units


def output_codes(layer: LinearLayer) -> tuple[int, int, int]:
    """(lo, hi, bits) of the codes ``layer`` passes on (a ReLU never passes a negative one)."""
    assert layer.requant is not None
    out = layer.requant.out
    return (0 if layer.requant.relu else out.lo), out.hi, out.bits


@dataclass(frozen=True)
class ScheduleDigitWidths:
    """Pick each dense layer's digit width for a network II (cycles per input vector)."""

    name: ClassVar[str] = "schedule-digit-widths"
    initiation_interval: int = 1
    #: Share requantisers in time where a layer has cycles to spare (see the module docstring).
    share_requantisers: bool = True

    def apply(self, network: Network) -> Network:
        ii = self.initiation_interval
        fmt = network.input_format
        if fmt is None:
            raise ValueError("schedule after quantisation")
        budgets = layer_budgets(network, ii)
        layers: list[Layer] = []
        lo, hi, bits = fmt.lo, fmt.hi, fmt.bits
        for layer in network.layers:
            if isinstance(layer, PoolLayer):
                layers.append(layer)
                continue
            assert isinstance(layer, LinearLayer)
            budget = budgets.get(layer.name, ii)
            best, realisation = choose_layer(network, layer, budget, lo, hi, bits)
            digit_bits, word_bits = (best.digit_bits, best.word_bits) if best is not None else (0, 0)
            chosen = replace(layer, digit_bits=digit_bits, word_bits=word_bits, realisation=realisation)
            units = choose_requant_units(chosen, budget, lo, hi, bits) if self.share_requantisers else 0
            layers.append(replace(chosen, requant_units=units))
            lo, hi, bits = output_codes(layer)
        return network.with_layers(tuple(layers), initiation_interval=ii)
