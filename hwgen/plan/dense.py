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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hwgen.ir import LinearLayer, Network, Requant, ThresholdRequant, signed_bits_for_range

__all__ = [
    "INPUT_REGISTER_LATENCY",
    "OUTPUT_FIFO_LATENCY",
    "REQUANT_LATENCY",
    "LayerPlan",
    "NetworkPlan",
    "argmax_bits",
    "tree_levels",
]

#: The network input is registered once before the first layer.
INPUT_REGISTER_LATENCY = 1
#: Requantisation: multiply, then offset/shift/clamp.
REQUANT_LATENCY = 2
#: From a write into the output FIFO to its data being offered downstream
#: (amaranth.lib.fifo.SyncFIFOBuffered); checked by the simulation tests.
OUTPUT_FIFO_LATENCY = 2


def tree_levels(n: int) -> int:
    """Registered levels of a pairwise comparator tree over n values (max/min pools, argmax;
    one register at least)."""
    return max(1, (n - 1).bit_length())


def argmax_bits(n: int) -> int:
    """Signed width of a class index 0..n-1."""
    return signed_bits_for_range(0, max(n - 1, 0))


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
        """Register width of every value (inputs keep the input width)."""
        bits = [self.in_bits] * self.graph.n_inputs
        bits += [signed_bits_for_range(lo, hi) for lo, hi in self.value_ranges[self.graph.n_inputs :]]
        return bits

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
    def latency(self) -> int:
        return self.adder_latency + REQUANT_LATENCY

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
        the true accumulator (the output's sign and shift applied).
        """
        rq = self.layer.requant
        assert rq is not None
        ones = [1] * len(self.graph.outputs)
        multipliers = ones if isinstance(rq, ThresholdRequant) else rq.multiplier
        result = []
        for out, m in zip(self.graph.outputs, multipliers, strict=True):
            if out is None:
                result.append(0)
            else:
                result.append((-m if out.negate else m) << out.shift)
        return result

    @cached_property
    def product_ranges(self) -> list[tuple[int, int]]:
        ranges = []
        for out, m in zip(self.graph.outputs, self.effective_multipliers, strict=True):
            if out is None or m == 0:
                ranges.append((0, 0))
                continue
            lo, hi = self.value_ranges[out.value]
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
        """Widest adder-graph output (the accumulator width the weights imply)."""
        widths = [self.value_bits[o.value] + o.shift for o in self.graph.outputs if o is not None]
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
