"""The hardware plan of a network with convolution or pooling layers (streamed frames).

The input arrives as a frame of positions (all channels of one sample or
pixel per beat, raster order), at most one beat every ``beat_spacing``
cycles; the network's initiation interval is the frame's beats times that
spacing. The plan is a chain of stages:

* :class:`WindowStage` -- a window buffer (:mod:`hwgen.plan.window_schedule`) feeding a
  convolution's adder graph and requantiser, or a max/min-pool tree;
* :class:`CollectStage` -- gathers a frame's positions into one vector
  (the flatten before a dense layer, or the network's output frame);
* :class:`DenseStage` -- a dense layer applied once per frame.

Each stage knows the fewest cycles between its input strobes (``spacing``),
which bounds the cycles its arithmetic may take per output (the scheduler's
budget) without any flow control inside the network: the input is paced, and
every stage keeps the spacing it was promised. Latency is computed by
running the control rules cycle by cycle at full rate
(:func:`hwgen.plan.window_schedule.simulate_window`); simulation of the RTL measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir import (
    LanePoolLayer,
    LaneWindowPoolLayer,
    LinearLayer,
    Network,
    PoolLayer,
    Requant,
    signed_bits_for_range,
)
from hwgen.ir.widths import wrap_range
from hwgen.plan.dense import OUTPUT_FIFO_LATENCY, LayerPlan, argmax_bits, check_requant_slots, tree_levels
from hwgen.plan.window_schedule import WINDOW_LATENCY, WindowGeometry, WindowSchedule, simulate_window, window_schedule

__all__ = [
    "COLLECT_LATENCY",
    "MAC_LATENCY",
    "MAX_MAC_LANES",
    "ArgmaxStage",
    "CollectStage",
    "DenseStage",
    "FramePlan",
    "LanePoolStage",
    "MacStage",
    "SerializeStage",
    "WindowStage",
    "frame_budgets",
    "mac_lanes",
    "mac_refusal",
    "plan_frames",
]

#: The collector registers the frame's vector once its last position arrives.
COLLECT_LATENCY = 1
#: The network input is registered once (payload and strobe).
INPUT_REGISTER_LATENCY = 1


@dataclass(frozen=True, eq=False)
class WindowStage:
    """A convolution (``lp`` set) or pooling layer behind its window buffer."""

    layer: LinearLayer | PoolLayer
    schedule: WindowSchedule
    channels: int
    in_lo: int
    in_hi: int
    in_bits: int
    spacing: int
    lp: LayerPlan | None = None

    @property
    def geometry(self) -> WindowGeometry:
        return self.schedule.geometry

    @property
    def is_conv(self) -> bool:
        return self.lp is not None

    @property
    def fill(self) -> tuple[int, ...]:
        """Value of a padded tap per channel: zero (convolution) or a code that never wins the pool."""
        if self.lp is not None:
            return (0,) * self.channels
        assert isinstance(self.layer, PoolLayer)
        return tuple(self.in_hi if mn else self.in_lo for mn in self.layer.minimum)

    @property
    def pool_taps(self) -> int:
        """Values each pool output compares: the window's taps (a lane-window pool's own lane's)."""
        if isinstance(self.layer, LaneWindowPoolLayer):
            return self.layer.taps_per_output
        return self.geometry.taps

    @property
    def pool_levels(self) -> int:
        """Registered comparator levels of the pool tree (one register at least)."""
        return tree_levels(self.pool_taps)

    @property
    def compute_latency(self) -> int:
        return self.lp.latency if self.lp is not None else self.pool_levels

    @property
    def latency(self) -> int:
        return WINDOW_LATENCY + self.compute_latency

    @property
    def out_spacing(self) -> int:
        """Fewest cycles between two output positions: the arithmetic's budget per position."""
        return self.schedule.min_gap * self.spacing

    @property
    def out_channels(self) -> int:
        if self.lp is not None:
            return self.lp.layer.out_features
        return self.layer.out_shape[0]  # a lane-window pool gives its own lanes

    @property
    def out_range(self) -> tuple[int, int, int]:
        if self.lp is None:
            return self.in_lo, self.in_hi, self.in_bits
        rq = self.lp.layer.requant
        assert rq is not None
        return (0 if rq.relu else rq.out.lo), rq.out.hi, rq.out.bits


@dataclass(frozen=True, eq=False)
class LanePoolStage:
    """Max (min) across the lanes of one beat: no window, a registered comparator tree."""

    layer: LanePoolLayer
    lo: int
    hi: int
    bits: int
    spacing: int

    @property
    def levels(self) -> int:
        return tree_levels(self.layer.group)

    @property
    def latency(self) -> int:
        return self.levels

    @property
    def out_spacing(self) -> int:
        return self.spacing


@dataclass(frozen=True, eq=False)
class CollectStage:
    """Gathers a frame's ``positions`` positions of ``channels`` values into one vector (channels-first)."""

    channels: int
    positions: int
    bits: int
    spacing: int
    #: Flatten position-major (beat ``p`` lane ``c`` is value ``p * channels + c``): a MAC
    #: layer's output beats of several elements, which are consecutive elements.
    position_major: bool = False
    #: The network's output frame arriving folded: ``lanes`` positions per beat on rows of
    #: ``width`` beats (channel ``lane * C + c`` of beat ``p`` is position ``lanes * p + lane``
    #: of its row); the vector is the unfolded frame, channels-first. (1, 0): not folded.
    unfold: tuple[int, int] = (1, 0)

    def flat_index(self, position: int, channel: int) -> int:
        """Where value ``channel`` of beat ``position`` goes in the collected vector."""
        if self.position_major:
            return position * self.channels + channel
        lanes, width = self.unfold
        if lanes == 1:
            return channel * self.positions + position
        lane, c = divmod(channel, self.channels // lanes)
        row, t = divmod(position, width)
        return (c * (self.positions // width) + row) * width * lanes + t * lanes + lane

    @property
    def latency(self) -> int:
        return COLLECT_LATENCY

    @property
    def out_spacing(self) -> int:
        return self.positions * self.spacing


@dataclass(frozen=True, eq=False)
class SerializeStage:
    """A beat of ``per_beat`` values (a position's channels, or a whole vector) out ``lanes`` per cycle.

    ``lanes`` divides ``per_beat``; value ``j * lanes + l`` leaves in lane ``l`` of the ``j``-th cycle.
    """

    per_beat: int
    bits: int
    spacing: int
    lanes: int = 1

    @property
    def latency(self) -> int:
        return 1

    @property
    def out_beats(self) -> int:
        return self.per_beat // self.lanes


#: Cycles from a MAC layer's last input element to its first output element.
MAC_LATENCY = 5
#: The most elements a MAC layer takes (or gives) per cycle: beyond that its adder trees and
#: weight memory approach a parallel layer's, which the adder graphs do better.
MAX_MAC_LANES = 16


def mac_lanes(elements: int, budget: int) -> int | None:
    """The fewest elements per cycle (a divisor of ``elements``, at most :data:`MAX_MAC_LANES`)
    that move ``elements`` in ``budget`` cycles; None when none does."""
    for lanes in range(1, MAX_MAC_LANES + 1):
        if elements % lanes == 0 and elements // lanes <= budget:
            return lanes
    return None


@dataclass(frozen=True, eq=False)
class MacStage:
    """A dense layer with weights in memory: ``lanes`` input elements per cycle, ``out_lanes``
    shared requantisers (outputs per cycle).

    ``order[a]`` is the weight column of the frame's ``a``-th element; element ``a`` arrives in
    lane ``a % lanes`` of the frame's ``a // lanes``-th input beat.
    """

    layer: LinearLayer
    in_lo: int
    in_hi: int
    in_bits: int
    order: tuple[int, ...]
    spacing: int  # cycles between frames (at least the larger of input and output beats)
    lanes: int = 1
    out_lanes: int = 1

    @property
    def in_beats(self) -> int:
        return self.layer.in_features // self.lanes

    @property
    def out_beats(self) -> int:
        return self.layer.out_features // self.out_lanes

    @property
    def ternary(self) -> bool:
        return int(abs(self.layer.weights).max(initial=0)) <= 1

    @property
    def weight_bits(self) -> int:
        w = self.layer.weights
        return signed_bits_for_range(min(int(w.min(initial=0)), -1), max(int(w.max(initial=0)), 1))

    @cached_property
    def acc_ranges(self) -> list[tuple[int, int]]:
        w = self.layer.weights
        pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
        hi = pos.sum(axis=1) * self.in_hi + neg.sum(axis=1) * self.in_lo
        lo = pos.sum(axis=1) * self.in_lo + neg.sum(axis=1) * self.in_hi
        ranges = [(min(int(a), 0), max(int(b), 0)) for a, b in zip(lo, hi, strict=True)]
        if self.layer.wrap_bits:
            # Accumulators as wide as the word at most: they wrap as the golden model's do.
            return [wrap_range(a, b, self.layer.wrap_bits) for a, b in ranges]
        return ranges

    @cached_property
    def acc_bits(self) -> list[int]:
        return [signed_bits_for_range(lo, hi) for lo, hi in self.acc_ranges]

    @property
    def requant(self) -> Requant:
        rq = self.layer.requant
        assert isinstance(rq, Requant)
        return rq

    @property
    def mult_bits(self) -> int:
        return max(signed_bits_for_range(min(v, 0), max(v, 0)) for v in self.requant.multiplier)

    @property
    def offset_bits(self) -> int:
        return max(signed_bits_for_range(min(v, 0), max(v, 0)) for v in self.requant.offset)

    @property
    def product_bits(self) -> int:
        return max(self.acc_bits) + self.mult_bits + 1

    @property
    def out_bits(self) -> int:
        return self.requant.out.bits

    @property
    def out_range(self) -> tuple[int, int, int]:
        rq = self.requant
        return (0 if rq.relu else rq.out.lo), rq.out.hi, rq.out.bits


@dataclass(frozen=True, eq=False)
class ArgmaxStage:
    """The class index of a frame's output vector (first maximum), instead of the vector."""

    n: int
    bits: int

    @property
    def latency(self) -> int:
        return tree_levels(self.n)

    @property
    def out_bits(self) -> int:
        return argmax_bits(self.n)


@dataclass(frozen=True, eq=False)
class DenseStage:
    lp: LayerPlan
    spacing: int

    @property
    def latency(self) -> int:
        return self.lp.latency


Stage = WindowStage | LanePoolStage | CollectStage | DenseStage | SerializeStage | MacStage | ArgmaxStage


def _shape_error(layer: LinearLayer | PoolLayer, got: tuple[int, ...]) -> TwnError:
    return TwnError(
        f"layer {layer.name!r} ({layer.op}) takes {list(layer.in_shape)} but the stream before it carries "
        f"{list(got)} (channels, positions); twngen streams a reshape between convolution or pooling layers only "
        "when it keeps that layout"
    )


def mac_refusal(layer: LinearLayer, budget: int) -> str | None:
    """Why ``layer`` cannot be a MAC layer at ``budget`` cycles per frame (None: it can, taking
    :func:`mac_lanes` elements per cycle)."""
    if not isinstance(layer.requant, Requant):
        return "its output uses thresholds"
    for what, n in (("inputs", layer.in_features), ("outputs", layer.out_features)):
        if mac_lanes(n, budget) is None:
            return (
                f"its {n} {what} need more than {MAX_MAC_LANES} elements per cycle (or a divisor of {n} "
                f"that is not) to move in {budget} cycles"
            )
    return None


def _stages(network: Network, beat_spacing: int, with_graphs: bool) -> tuple[Stage, ...]:
    fmt = network.input_format
    assert fmt is not None
    shape = network.stream_shape
    if len(shape) not in (2, 3):
        raise TwnError(
            f"input {network.input_name!r} has shape {list(shape)}; convolution networks stream inputs of shape "
            "[channels, length] or [channels, height, width]"
        )
    lo, hi, bits = fmt.lo, fmt.hi, fmt.bits
    spacing = beat_spacing
    stream: tuple[int, ...] | None = shape  # None once collected into a vector
    elements = 0  # a MAC layer's outputs, element_lanes per cycle (0: not an element stream)
    element_lanes = 1
    frame = beat_spacing * math.prod(shape[1:])
    stages: list[Stage] = []
    for layer in network.layers:
        if isinstance(layer, LanePoolLayer):
            assert stream is not None and tuple(layer.in_shape) == stream, layer.name
            stages.append(LanePoolStage(layer, lo, hi, bits, spacing))
            stream = tuple(layer.out_shape)
            continue
        windowed = isinstance(layer, PoolLayer) or layer.is_conv
        if windowed:
            if stream is None:
                raise TwnError(
                    f"layer {layer.name!r} ({layer.op}) follows a dense layer; twngen streams convolution and "
                    "pooling layers before the dense ones"
                )
            if tuple(layer.in_shape) != stream:
                raise _shape_error(layer, stream)
            if len(layer.kernel) > 2:
                raise TwnError(f"layer {layer.name!r} ({layer.op}): twngen streams 1-D and 2-D windows only")
            geometry = WindowGeometry.of(layer.in_shape, layer.kernel, layer.stride, layer.pads)
            sched = window_schedule(geometry, f"layer {layer.name!r} ({layer.op})")
            lp = None
            if isinstance(layer, LinearLayer):
                # Padding is zero: the graph's input range must include it.
                lp = LayerPlan(layer, min(lo, 0), max(hi, 0), bits) if with_graphs else None
            stage = WindowStage(layer, sched, layer.in_shape[0], lo, hi, bits, spacing, lp)
            if lp is not None:
                check_requant_slots(lp, stage.out_spacing)
            if isinstance(layer, LinearLayer):
                rq = layer.requant
                assert rq is not None
                lo, hi, bits = (0 if rq.relu else rq.out.lo), rq.out.hi, rq.out.bits
            stages.append(stage)
            spacing = stage.out_spacing
            stream = tuple(layer.out_shape)
            continue
        assert isinstance(layer, LinearLayer)
        if layer.realisation == "mac":
            why = mac_refusal(layer, frame)
            if why is not None:
                raise TwnError(f"layer {layer.name!r} ({layer.op}) cannot use weights in memory: {why}")
            # The fewest lanes in and out that fit the frame; a MAC layer after this one takes as
            # many lanes as this one gives (its inputs are these outputs, in the same frame).
            lanes = mac_lanes(layer.in_features, frame)
            out_lanes = mac_lanes(layer.out_features, frame)
            assert lanes is not None and out_lanes is not None
            order: tuple[int, ...] = tuple(range(layer.in_features))
            if stream is not None:
                positions = math.prod(stream[1:])
                if stream[0] % lanes == 0 and stream[0] // lanes <= spacing:
                    # Position by position: element p * C + c is column c * positions + p.
                    stages.append(SerializeStage(stream[0], bits, spacing, lanes))
                    order = tuple(c * positions + p for p in range(positions) for c in range(stream[0]))
                else:
                    stages.append(CollectStage(stream[0], positions, bits, spacing))
                    stages.append(SerializeStage(layer.in_features, bits, frame, lanes))
                stream = None
            elif elements and element_lanes != lanes:
                stages.append(CollectStage(element_lanes, elements // element_lanes, bits, 1, True))
                stages.append(SerializeStage(layer.in_features, bits, frame, lanes))
            elif not elements:
                stages.append(SerializeStage(layer.in_features, bits, spacing, lanes))
            mac = MacStage(layer, lo, hi, bits, order, frame, lanes, out_lanes)
            stages.append(mac)
            lo, hi, bits = mac.out_range
            elements, element_lanes, spacing = layer.out_features, out_lanes, 1
            continue
        if elements:
            stages.append(_element_collector(elements, element_lanes, bits))
            elements, spacing = 0, frame
        if stream is not None:
            collect = CollectStage(stream[0], math.prod(stream[1:]), bits, spacing)
            stages.append(collect)
            spacing = collect.out_spacing
            stream = None
        dense = DenseStage(LayerPlan(layer, lo, hi, bits) if with_graphs else _no_plan(layer), spacing)
        if with_graphs:
            check_requant_slots(dense.lp, spacing)
        stages.append(dense)
        rq = layer.requant
        assert rq is not None
        lo, hi, bits = (0 if rq.relu else rq.out.lo), rq.out.hi, rq.out.bits
    if stream is not None:
        unfold = (network.output_lanes, stream[-1]) if network.output_lanes > 1 else (1, 0)
        stages.append(CollectStage(stream[0], math.prod(stream[1:]), bits, spacing, unfold=unfold))
    if elements:
        stages.append(_element_collector(elements, element_lanes, bits))
    if network.argmax_output:
        last = stages[-1]
        n = last.lp.layer.out_features if isinstance(last, DenseStage) else last.channels * last.positions  # type: ignore[union-attr]
        stages.append(ArgmaxStage(n, bits))
    return tuple(stages)


def _element_collector(elements: int, lanes: int, bits: int) -> CollectStage:
    """The vector of a MAC layer's output elements, ``lanes`` a cycle."""
    return CollectStage(lanes, elements // lanes, bits, 1, lanes > 1)


def _no_plan(layer: LinearLayer) -> LayerPlan:
    return LayerPlan(layer, 0, 0, 1)


def frame_budgets(network: Network, beat_spacing: int) -> dict[str, int]:
    """Cycles each linear layer may take per output position (conv) or per frame (dense)."""
    budgets = {}
    for stage in _stages(network, beat_spacing, with_graphs=False):
        if isinstance(stage, WindowStage) and isinstance(stage.layer, LinearLayer):
            budgets[stage.layer.name] = stage.out_spacing
        elif isinstance(stage, DenseStage):
            budgets[stage.lp.layer.name] = stage.spacing
        elif isinstance(stage, MacStage):
            budgets[stage.layer.name] = stage.spacing
    return budgets


@dataclass(frozen=True, eq=False)
class FramePlan:
    network: Network
    stages: tuple[Stage, ...]
    beat_spacing: int

    @property
    def layers(self) -> tuple[LayerPlan, ...]:
        """The plans of the linear layers (convolutions and dense), in order."""
        out: list[LayerPlan] = []
        for s in self.stages:
            if isinstance(s, (WindowStage, DenseStage)) and s.lp is not None:
                out.append(s.lp)
        return tuple(out)

    @property
    def in_bits(self) -> int:
        assert self.network.input_format is not None
        return self.network.input_format.bits

    @property
    def beat_elements(self) -> int:
        """Values per input beat: the input's channels (times the lanes when folded)."""
        return self.network.stream_shape[0]

    @property
    def beats(self) -> int:
        """Input beats per frame (positions, over the lanes when folded)."""
        return math.prod(self.network.stream_shape[1:])

    @property
    def macs(self) -> tuple[MacStage, ...]:
        return tuple(s for s in self.stages if isinstance(s, MacStage))

    @property
    def out_bits(self) -> int:
        last = self.stages[-1]
        if isinstance(last, ArgmaxStage):
            return last.out_bits
        if isinstance(last, DenseStage):
            return last.lp.out_bits
        assert isinstance(last, CollectStage)
        return last.bits

    @property
    def out_elements(self) -> int:
        last = self.stages[-1]
        if isinstance(last, ArgmaxStage):
            return 1
        if isinstance(last, DenseStage):
            return last.lp.layer.out_features
        assert isinstance(last, CollectStage)
        return last.channels * last.positions

    @property
    def initiation_interval(self) -> int:
        return self.beats * self.beat_spacing

    def output_cycles(self, frames: int) -> tuple[list[int], list[int]]:
        """At full rate: (first-beat accept cycle, output-FIFO write cycle) of each of ``frames`` frames."""
        accepts = [i * self.beat_spacing for i in range(frames * self.beats)]
        times = [a + INPUT_REGISTER_LATENCY for a in accepts]
        for stage in self.stages:
            if isinstance(stage, WindowStage):
                times = simulate_window(times, stage.schedule, stage.spacing)
                times = [t + stage.compute_latency for t in times]
            elif isinstance(stage, CollectStage):
                times = [t + COLLECT_LATENCY for t in times[stage.positions - 1 :: stage.positions]]
            elif isinstance(stage, (LanePoolStage, ArgmaxStage)):
                times = [t + stage.latency for t in times]
            elif isinstance(stage, SerializeStage):
                times = [t + 1 + k for t in times for k in range(stage.out_beats)]
            elif isinstance(stage, MacStage):
                lasts = times[stage.in_beats - 1 :: stage.in_beats]
                times = [t + MAC_LATENCY + i for t in lasts for i in range(stage.out_beats)]
            else:
                times = [t + stage.latency for t in times]
        assert len(times) == frames, (len(times), frames)
        return accepts[:: self.beats], times

    @cached_property
    def latency(self) -> int:
        """Cycles from a frame's first input handshake to its output handshake, at full rate."""
        firsts, writes = self.output_cycles(3)
        return max(w - f for f, w in zip(firsts, writes, strict=True)) + OUTPUT_FIFO_LATENCY

    @property
    def fifo_depth(self) -> int:
        """Output FIFO entries: a credit for every frame that can be in flight."""
        return -(-self.latency // self.initiation_interval) + 2


def plan_frames(network: Network) -> FramePlan:
    ii = network.initiation_interval
    beats = math.prod(network.stream_shape[1:])
    if ii % beats:
        raise TwnError(f"the initiation interval {ii} is not a whole number of cycles per input position ({beats})")
    return FramePlan(network, _stages(network, ii // beats, with_graphs=True), ii // beats)
