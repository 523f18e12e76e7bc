"""The hardware plan: every register width, delay and latency of a network.

Computed from the quantised IR alone (pure Python), and shared by the
Amaranth backend, which builds exactly this, and by the resource estimator,
which counts it. Keeping one source for widths means the estimate and the RTL
cannot drift apart.

Pipeline of one dense layer (fully parallel, one vector per cycle):

* adder graph: every node registered; a node at depth d reads operands that
  are delayed to depth d - 1; outputs are aligned to the graph depth;
* requantisation stage 1: product of the output value with the effective
  multiplier (the requant multiplier times the output's sign and shift);
* requantisation stage 2: add the offset, arithmetic shift right, clamp.

A layer with spare cycles per vector may share its requantisers in time
(``layer.requant_units`` > 0, chosen by the scheduler): the adder graph's
outputs are registered into a bank, and each of the units serves its
channels one per cycle (:class:`SharedRequantUnit`), ``requant_slots``
channels each; the last result is registered ``requant_slots + 3`` cycles
after the graph's outputs (bank, select, multiply, offset/shift/clamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hwgen.errors import TwnError
from hwgen.ir import LinearLayer, Network, Requant, ThresholdRequant, signed_bits_for_range
from hwgen.ir.widths import wrap_range

__all__ = [
    "INPUT_REGISTER_LATENCY",
    "OUTPUT_FIFO_LATENCY",
    "REQUANT_LATENCY",
    "SHARED_REQUANT_LATENCY",
    "LayerPlan",
    "NetworkPlan",
    "SharedRequantUnit",
    "argmax_bits",
    "check_requant_slots",
    "tree_levels",
]

#: The network input is registered once before the first layer.
INPUT_REGISTER_LATENCY = 1
#: Requantisation: multiply, then offset/shift/clamp.
REQUANT_LATENCY = 2
#: A shared requantiser's pipeline beyond its slots: the bank register, the
#: channel select, the multiply, offset/shift/clamp; slot j's result is
#: registered ``j + SHARED_REQUANT_LATENCY + 1`` cycles after the graph's outputs.
SHARED_REQUANT_LATENCY = 3
#: From a write into the output FIFO to its data being offered downstream
#: (amaranth.lib.fifo.SyncFIFOBuffered); checked by the simulation tests.
OUTPUT_FIFO_LATENCY = 2


def tree_levels(n: int) -> int:
    """Registered levels of a pairwise comparator tree over n values (max/min pools, argmax;
    one register at least)."""
    return max(1, (n - 1).bit_length())


def check_requant_slots(lp: LayerPlan, budget: int) -> None:
    """A shared requantiser must finish a vector's channels before the next vector's outputs arrive."""
    if lp.shared_units and lp.requant_slots > budget:
        raise TwnError(
            f"layer {lp.layer.name!r} ({lp.layer.op}): its shared requantisers take {lp.requant_slots} cycles per "
            f"vector, {budget} available; give it more requant_units"
        )


def argmax_bits(n: int) -> int:
    """Signed width of a class index 0..n-1."""
    return signed_bits_for_range(0, max(n - 1, 0))


@dataclass(frozen=True)
class SharedRequantUnit:
    """One time-shared requantiser: ``channels[j]`` is requantised in its slot ``j``.

    Widths are the widest of its channels' (value, effective multiplier,
    offset, product, sum); its shifts lie in ``shift_lo..shift_hi``.
    """

    channels: tuple[int, ...]
    value_bits: int
    mult_bits: int
    offset_bits: int
    product_bits: int
    sum_bits: int
    shift_lo: int
    shift_hi: int

    @property
    def shift_bits(self) -> int:
        """Bits of the variable part of the shift (``shift - shift_lo``)."""
        return (self.shift_hi - self.shift_lo).bit_length()


def _signed_bits(values: list[int]) -> int:
    return signed_bits_for_range(min(min(values), 0), max(max(values), 0))


@dataclass(frozen=True, eq=False)
class LayerPlan:
    layer: LinearLayer
    in_lo: int
    in_hi: int
    in_bits: int

    @property
    def graph(self):  # type: ignore[no-untyped-def]
        assert self.layer.adder_graph is not None, "run the adder-graph pass first"
        return self.layer.adder_graph

    @cached_property
    def value_ranges(self) -> list[tuple[int, int]]:
        return self.graph.value_ranges(self.in_lo, self.in_hi)

    @cached_property
    def value_bits(self) -> list[int]:
        """Register width of every value (inputs keep the input width).

        With a word width (``layer.wrap_bits``) no node is wider than the word: a node kept
        modulo ``2**w`` is congruent to its true value, sums and left shifts of congruent
        values stay congruent, and a node narrower than the word is exact (its range fits),
        so every output value is its true value modulo the word.
        """
        bits = [self.in_bits] * self.graph.n_inputs
        bits += [signed_bits_for_range(lo, hi) for lo, hi in self.value_ranges[self.graph.n_inputs :]]
        if self.layer.wrap_bits:
            n = self.graph.n_inputs
            bits[n:] = [min(b, self.layer.wrap_bits) for b in bits[n:]]
        return bits

    @cached_property
    def wrapped(self) -> tuple[bool, ...]:
        """Per output: whether its accumulator (the output's sign and shift applied) can exceed
        the layer's word, so the requantiser takes it wrapped to the word
        (:attr:`requant_input_bits`) rather than folding sign and shift into the multiplier."""
        w = self.layer.wrap_bits
        if not w:
            return (False,) * len(self.graph.outputs)
        ranges = self.graph.output_ranges(self.in_lo, self.in_hi)
        return tuple(
            out is not None and wrap_range(lo, hi, w) != (lo, hi)
            for out, (lo, hi) in zip(self.graph.outputs, ranges, strict=True)
        )

    def requant_input_bits(self, i: int) -> int:
        """Width of output ``i``'s value as the requantiser takes it: the word for a wrapped
        output, the adder graph's output value otherwise."""
        out = self.graph.outputs[i]
        assert out is not None
        return self.layer.wrap_bits if self.wrapped[i] else self.value_bits[out.value]

    @property
    def negated_wraps(self) -> int:
        """Wrapped outputs whose sign the requantiser input applies (a negation of the word)."""
        return sum(1 for i, out in enumerate(self.graph.outputs) if self.wrapped[i] and out is not None and out.negate)

    @property
    def serial(self) -> bool:
        return self.layer.digit_bits > 0

    @property
    def digits(self) -> int:
        """Cycles per vector of the adder graph: D = ceil(W/d) serial, 1 parallel."""
        return -(-self.layer.word_bits // self.layer.digit_bits) if self.serial else 1

    @property
    def adder_latency(self) -> int:
        """Cycles from the layer's input vector to its adder-graph outputs in parallel form.

        Serial: parallel-to-serial (1) + graph depth + serial-to-parallel (D).
        """
        if self.serial:
            return 1 + self.graph.depth + self.digits
        return self.graph.depth

    @property
    def requant_latency(self) -> int:
        """Cycles from the adder graph's outputs to the output codes."""
        return self.requant_slots + SHARED_REQUANT_LATENCY if self.shared_units else REQUANT_LATENCY

    @property
    def latency(self) -> int:
        return self.adder_latency + self.requant_latency

    @cached_property
    def shared_units(self) -> tuple[SharedRequantUnit, ...]:
        """The time-shared requantisers (none: one per channel).

        Every channel with a nonzero multiplier is served by a unit (a constant
        channel stays a constant); channels are sorted by shift and split into
        ``layer.requant_units`` runs as even as possible, so each unit's
        variable shift spans few values.
        """
        units = self.layer.requant_units
        if not units:
            return ()
        rq = self.layer.requant
        assert isinstance(rq, Requant), f"{self.layer.name}: only multiply-shift requantisers are shared"
        active = sorted((i for i, m in enumerate(self.effective_multipliers) if m), key=lambda i: (rq.shift[i], i))
        assert 0 < units <= len(active), (self.layer.name, units, len(active))
        base, extra = divmod(len(active), units)
        out = []
        start = 0
        for u in range(units):
            size = base + (1 if u < extra else 0)
            chans = tuple(active[start : start + size])
            start += size
            assert self.graph.outputs[chans[0]] is not None
            out.append(
                SharedRequantUnit(
                    channels=chans,
                    value_bits=max(self.requant_input_bits(i) for i in chans),
                    mult_bits=_signed_bits([self.effective_multipliers[i] for i in chans]),
                    offset_bits=_signed_bits([rq.offset[i] for i in chans]),
                    product_bits=max(self.product_bits[i] for i in chans),
                    sum_bits=max(self.sum_bits[i] for i in chans),
                    shift_lo=min(rq.shift[i] for i in chans),
                    shift_hi=max(rq.shift[i] for i in chans),
                )
            )
        return tuple(out)

    @property
    def requant_slots(self) -> int:
        """Cycles a shared requantiser takes per vector (1 per channel: not shared)."""
        return max((len(u.channels) for u in self.shared_units), default=1)

    @cached_property
    def delays(self) -> dict[int, int]:
        """Longest delay line (in cycles) each value needs, for operand alignment."""
        depths = self.graph.depths
        need: dict[int, int] = {}
        for node_index, node in enumerate(self.graph.nodes):
            d = depths[self.graph.n_inputs + node_index] - 1
            for op in node.operands:
                lag = d - depths[op.value]
                if lag > 0:
                    need[op.value] = max(need.get(op.value, 0), lag)
        for out in self.graph.outputs:
            if out is not None:
                lag = self.adder_latency - depths[out.value]
                if lag > 0:
                    need[out.value] = max(need.get(out.value, 0), lag)
        return need

    @property
    def thresholds(self) -> ThresholdRequant | None:
        """The layer's threshold requantisation, if its output is a graph quantiser's codes."""
        rq = self.layer.requant
        return rq if isinstance(rq, ThresholdRequant) else None

    @cached_property
    def effective_multipliers(self) -> list[int]:
        """Requant multiplier with each output's sign and shift folded in (0: constant output).

        For threshold requantisation the multiplier is 1: stage 1 then holds
        the true accumulator (the output's sign and shift applied). A wrapped output
        (:attr:`wrapped`) reaches the requantiser with its sign and shift already applied
        within the word, so its multiplier is the requant multiplier alone.
        """
        rq = self.layer.requant
        assert rq is not None
        ones = [1] * len(self.graph.outputs)
        multipliers = ones if isinstance(rq, ThresholdRequant) else rq.multiplier
        result = []
        for out, m, wrapped in zip(self.graph.outputs, multipliers, self.wrapped, strict=True):
            if out is None:
                result.append(0)
            elif wrapped:
                result.append(m)
            else:
                result.append((-m if out.negate else m) << out.shift)
        return result

    @cached_property
    def product_ranges(self) -> list[tuple[int, int]]:
        ranges = []
        for out, m, wrapped in zip(self.graph.outputs, self.effective_multipliers, self.wrapped, strict=True):
            if out is None or m == 0:
                ranges.append((0, 0))
                continue
            lo, hi = self.value_ranges[out.value]
            if wrapped:
                lo, hi = -(1 << (self.layer.wrap_bits - 1)), (1 << (self.layer.wrap_bits - 1)) - 1
            cands = (lo * m, hi * m)
            ranges.append((min(cands), max(cands)))
        return ranges

    @cached_property
    def product_bits(self) -> list[int]:
        return [signed_bits_for_range(lo, hi) for lo, hi in self.product_ranges]

    @cached_property
    def sum_bits(self) -> list[int]:
        rq = self.layer.requant
        assert isinstance(rq, Requant)
        return [
            signed_bits_for_range(min(lo + c, 0), max(hi + c, 0))
            for (lo, hi), c in zip(self.product_ranges, rq.offset, strict=True)
        ]

    @property
    def out_bits(self) -> int:
        rq = self.layer.requant
        assert rq is not None
        return rq.out.bits

    @property
    def graph_out_bits(self) -> int:
        """Widest adder-graph output value (before its sign and shift)."""
        return max((self.value_bits[o.value] for o in self.graph.outputs if o is not None), default=1)

    @property
    def accumulator_bits(self) -> int:
        """Widest adder-graph output (the accumulator width the weights imply, at most the word)."""
        widths = [
            self.layer.wrap_bits if wrapped else self.value_bits[o.value] + o.shift
            for o, wrapped in zip(self.graph.outputs, self.wrapped, strict=True)
            if o is not None
        ]
        return max(widths, default=1)


@dataclass(frozen=True, eq=False)
class NetworkPlan:
    network: Network
    layers: tuple[LayerPlan, ...]

    @property
    def in_bits(self) -> int:
        assert self.network.input_format is not None
        return self.network.input_format.bits

    @property
    def out_bits(self) -> int:
        if self.network.argmax_output:
            return argmax_bits(self.layers[-1].layer.out_features)
        return self.layers[-1].out_bits

    @property
    def argmax_levels(self) -> int:
        """Register levels of the argmax tree (0 without one)."""
        return tree_levels(self.layers[-1].layer.out_features) if self.network.argmax_output else 0

    @property
    def beat_elements(self) -> int:
        """Values per input handshake: the whole input vector."""
        return self.network.in_features

    @property
    def beats(self) -> int:
        """Input handshakes per inference."""
        return 1

    @property
    def out_elements(self) -> int:
        return 1 if self.network.argmax_output else self.layers[-1].layer.out_features

    @property
    def pipeline_latency(self) -> int:
        """Cycles from an accepted input to the result entering the output FIFO."""
        return INPUT_REGISTER_LATENCY + sum(lp.latency for lp in self.layers) + self.argmax_levels

    @property
    def latency(self) -> int:
        """Cycles from the input handshake to the output handshake, no backpressure."""
        return self.pipeline_latency + OUTPUT_FIFO_LATENCY

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted inputs at full rate (the schedule's II)."""
        return self.network.initiation_interval

    @property
    def fifo_depth(self) -> int:
        """Output FIFO entries: enough credits for every result in flight at full rate."""
        return self.latency + 1
