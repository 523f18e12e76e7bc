"""The intermediate representation between the ONNX frontend and the backends.

A :class:`Network` is a chain of layers over one streamed input vector. The IR
is pure data: integer weight matrices with their scales factored out, the
fixed-point format of every tensor, the requantisation between layers, and
(after the adder-graph pass) the adder graph that realises each layer. Passes
take a network and return a new one; :meth:`Network.verify` checks the
invariants after each of them.

Arithmetic conventions (the golden model implements exactly these):

* an activation tensor is a vector of signed two's-complement integers
  ``q`` of ``bits`` bits meaning ``q * 2**-frac``;
* a dense layer computes the exact integer accumulator ``acc = W @ q``;
  with a word width (``wrap_bits``, ``--words``) the accumulator is kept
  modulo ``2**wrap_bits`` as a signed number, as a register of that width
  wraps (:func:`hwgen.ir.widths.wrap_signed`), before requantisation;
* requantisation computes, per output channel ``i``,
  ``floor((acc[i] * multiplier[i] + offset[i]) / 2**shift)`` and clamps it to
  the output format (``[0, 2**(bits-1) - 1]`` after a ReLU). ``offset`` holds
  the bias and the rounding constant ``2**(shift-1)``, so the result is the
  real value rounded half up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir.adder_graph import AdderGraph
from hwgen.ir.quantizer import Quantizer
from hwgen.ir.widths import signed_bits_for_range, wrap_signed

#: Bytes of convolution patches (windows laid out as matrix rows) one product may build at once:
#: larger batches go through :meth:`LinearLayer.float_forward` and ``accumulate`` in slices.
PATCH_BYTES = 1 << 28

__all__ = [
    "OUTPUT_OPS",
    "DenseLayer",
    "FixedFormat",
    "LanePoolLayer",
    "LaneTaps",
    "LaneWindowPoolLayer",
    "Layer",
    "LinearLayer",
    "Network",
    "PoolLayer",
    "Requant",
    "ThresholdRequant",
    "WeightRounding",
    "lane_taps",
]


@dataclass(frozen=True)
class FixedFormat:
    """Signed integer codes of ``bits`` bits meaning ``code * resolution``.

    The resolution is ``2**-frac`` (fixed point), or ``step`` when a graph
    quantiser fixes another one (e.g. a QONNX scale of 0.37). ``lo``/``hi``
    bound the codes that can actually occur (a ReLU output never holds a
    negative code), which narrows the accumulators downstream.
    """

    bits: int
    frac: int
    lo: int
    hi: int
    step: float = 0.0

    @property
    def resolution(self) -> float:
        return self.step if self.step else 2.0**-self.frac

    @staticmethod
    def for_codes(lo: int, hi: int, step: float) -> FixedFormat:
        """The format of a graph quantiser's codes (frac set when step is a power of two)."""
        mant, exp = np.frexp(step)
        frac = int(1 - exp) if mant == 0.5 else 0
        return FixedFormat(
            signed_bits_for_range(min(lo, 0), max(hi, 0)), frac, lo, hi, 0.0 if mant == 0.5 else float(step)
        )

    @staticmethod
    def full(bits: int, frac: int) -> FixedFormat:
        return FixedFormat(bits, frac, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round half up to the nearest code and saturate (float -> int64 codes)."""
        scaled = np.floor(np.asarray(x, dtype=np.float64) * (2.0**self.frac) + 0.5)
        return np.clip(scaled, self.lo, self.hi).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) * self.resolution

    def to_json(self) -> dict[str, Any]:
        return {"bits": self.bits, "frac": self.frac, "lo": self.lo, "hi": self.hi, "step": self.step}

    @staticmethod
    def from_json(d: dict[str, Any]) -> FixedFormat:
        return FixedFormat(int(d["bits"]), int(d["frac"]), int(d["lo"]), int(d["hi"]), float(d.get("step", 0.0)))


@dataclass(frozen=True)
class Requant:
    """Per-channel integer affine, shift and clamp from accumulator to output codes."""

    multiplier: tuple[int, ...]
    offset: tuple[int, ...]
    #: Per channel, so every channel's multiplier keeps its full precision.
    shift: tuple[int, ...]
    out: FixedFormat
    relu: bool

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """Exact integer requantisation of ``acc`` (shape [..., channels])."""
        acc = np.asarray(acc)
        peak = int(np.abs(acc).max(initial=0)) if acc.size else 0
        big = peak * max((abs(m) for m in self.multiplier), default=0) + max((abs(o) for o in self.offset), default=0)
        if acc.dtype.kind in "iu" and big < 2**62:
            # int64 cannot overflow here; >> is a floor division as with Python integers.
            y = (acc.astype(np.int64) * np.array(self.multiplier, dtype=np.int64) + np.array(self.offset)) >> np.array(
                self.shift, dtype=np.int64
            )
        else:
            acc_obj = acc.astype(object)
            mult = np.array(self.multiplier, dtype=object)
            off = np.array(self.offset, dtype=object)
            # Python integers: no width can overflow, and >> is a floor division.
            shift = np.array(self.shift, dtype=object)
            y = (acc_obj * mult + off) >> shift
        lo = 0 if self.relu else self.out.lo
        y = np.minimum(np.maximum(y, lo), self.out.hi)
        return y.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "multiplier": list(self.multiplier),
            "offset": list(self.offset),
            "shift": list(self.shift),
            "out": self.out.to_json(),
            "relu": self.relu,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Requant:
        return Requant(
            tuple(int(v) for v in d["multiplier"]),
            tuple(int(v) for v in d["offset"]),
            tuple(int(v) for v in d["shift"]),
            FixedFormat.from_json(d["out"]),
            bool(d["relu"]),
        )


@dataclass(frozen=True)
class ThresholdRequant:
    """Per-channel integer thresholds from accumulator to the codes of a graph quantiser.

    ``code[c] = base[c] + stride * #{t in thresholds[c] : acc >= t}`` where
    ``rising[c]``, else ``base[c] + stride * #{t : acc <= t}`` (a negative
    scale makes the code fall as the accumulator grows). Exact: thresholds
    are integers and so is the accumulator.
    """

    base: tuple[int, ...]
    stride: int
    thresholds: tuple[tuple[int, ...], ...]
    rising: tuple[bool, ...]
    out: FixedFormat

    @property
    def relu(self) -> bool:
        return self.out.lo >= 0

    def apply(self, acc: np.ndarray) -> np.ndarray:
        acc = np.asarray(acc)
        fast = acc.dtype.kind in "iu"
        values = acc.astype(np.int64) if fast else acc.astype(object)
        lim = 2**63 - 1
        out = np.zeros(values.shape, dtype=np.int64)
        for c, (base, ts, up) in enumerate(zip(self.base, self.thresholds, self.rising, strict=True)):
            a = values[..., c]
            if fast:
                # An int64 accumulator compares with a clipped threshold exactly; a binary search
                # over the sorted thresholds counts them in O(log n) (a 16-bit quantiser has 65535).
                t = np.sort(np.array([max(min(v, lim), -lim) for v in ts], dtype=np.int64))
                count = np.searchsorted(t, a, side="right") if up else len(t) - np.searchsorted(t, a, side="left")
            else:
                count = np.zeros(a.shape, dtype=np.int64)
                for t_obj in ts:
                    count += (a >= t_obj) if up else (a <= t_obj)
            out[..., c] = base + self.stride * count
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "thresholds",
            "base": list(self.base),
            "stride": self.stride,
            "thresholds": [list(t) for t in self.thresholds],
            "rising": list(self.rising),
            "out": self.out.to_json(),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> ThresholdRequant:
        return ThresholdRequant(
            tuple(int(v) for v in d["base"]),
            int(d["stride"]),
            tuple(tuple(int(v) for v in t) for t in d["thresholds"]),
            tuple(bool(v) for v in d["rising"]),
            FixedFormat.from_json(d["out"]),
        )


def requant_from_json(d: dict[str, Any]) -> Requant | ThresholdRequant:
    return ThresholdRequant.from_json(d) if d.get("kind") == "thresholds" else Requant.from_json(d)


def _fold_lanes_json(lanes: tuple[int, int]) -> dict[str, Any]:
    """``fold_lanes`` for network.json: written only when folded, so other layers read as before."""
    return {"fold_lanes": list(lanes)} if lanes != (1, 1) else {}


def _fold_lanes_of(d: dict[str, Any]) -> tuple[int, int]:
    lanes = d.get("fold_lanes", (1, 1))
    return (int(lanes[0]), int(lanes[1]))


@dataclass(frozen=True)
class LaneTaps:
    """Where a window along a folded axis finds its taps (:func:`lane_taps`)."""

    #: Per output lane, per original tap ``k``: (folded offset from the window's first, input lane).
    taps: tuple[tuple[tuple[int, int], ...], ...]
    #: Folded positions a window spans, and how many of them precede the output's own.
    kernel: int
    pad_begin: int


def lane_taps(kernel: int, stride: int, pad_begin: int, lanes: int) -> LaneTaps:
    """A window of ``kernel`` taps, ``stride`` and begin padding ``pad_begin`` along an axis folded
    into ``lanes`` lanes (position ``lanes * t + lane`` in channel group ``lane`` of folded position
    ``t``). Output lane ``l`` of folded position ``t`` is original output ``(lanes / stride) * t + l``,
    whose tap ``k`` reads original position ``lanes * t + stride * l - pad_begin + k``: folded
    offset ``floor((stride * l - pad_begin + k) / lanes)``, input lane the remainder. ``stride``
    divides ``lanes``."""
    assert lanes % stride == 0, (lanes, stride)
    out_lanes = lanes // stride
    pos = [[stride * lane - pad_begin + k for k in range(kernel)] for lane in range(out_lanes)]
    lo = min(min(row) for row in pos) // lanes
    hi = max(max(row) for row in pos) // lanes
    taps = tuple(tuple((q // lanes - lo, q % lanes) for q in row) for row in pos)
    return LaneTaps(taps, hi - lo + 1, -lo)


def _window_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    return (size + pad_begin + pad_end - kernel) // stride + 1


def _windows(
    x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], pads: tuple[int, ...], fill: Any
) -> np.ndarray:
    """Sliding windows of x [batch, C, *spatial] -> [batch, C, *out_spatial, *kernel] (padded with ``fill``)."""
    nd = len(kernel)
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)]
    xp = np.pad(x, pad_width, constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None), *tuple(slice(None, None, st) for st in stride))
    return win[index]


@dataclass(frozen=True)
class WeightRounding:
    """How ``--quantize-weights`` rounded a layer's float weights to ``bits``-bit integers.

    ``max_rel_error``: the largest ``|rounded - w|`` over the layer, each
    relative to its output channel's largest ``|w|``; ``rms_rel_error``:
    ``||rounded - w|| / ||w||`` over the whole layer.
    """

    bits: int
    max_rel_error: float
    rms_rel_error: float

    def to_json(self) -> dict[str, Any]:
        return {"bits": self.bits, "max_rel_error": self.max_rel_error, "rms_rel_error": self.rms_rel_error}

    @staticmethod
    def from_json(d: dict[str, Any]) -> WeightRounding:
        return WeightRounding(int(d["bits"]), float(d["max_rel_error"]), float(d["rms_rel_error"]))


@dataclass(frozen=True, eq=False)
class LinearLayer:
    """A dense or convolution layer: y = clamp(scale * (W @ x) + bias).

    ``weights`` is an int64 matrix [out, in] (ternary, binary or small
    integers). For a dense layer ``in`` is the flattened input (row-major, as
    ONNX flattens); for a convolution (``kernel`` non-empty) a column is one
    tap of the window, in the order of ONNX's [out, in_channels, *kernel]
    weight layout, and the matrix is applied at every output position.
    ``scale`` and ``bias`` are float64 per output channel; ``relu`` clamps
    below at zero. ``requant`` and ``adder_graph`` are filled in by passes.
    """

    name: str
    op: str
    weights: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    relu: bool
    weight_kind: str
    source_nodes: tuple[str, ...]
    in_shape: tuple[int, ...] = ()
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    #: The graph's own activation quantiser after the layer, if any.
    quantizer: Quantizer | None = None
    requant: Requant | ThresholdRequant | None = None
    adder_graph: AdderGraph | None = None
    naive_adders: int = field(default=0)
    #: Chosen by the scheduler: digit width of the adder graph (0: fully
    #: parallel) and the serial word length.
    digit_bits: int = 0
    word_bits: int = 0
    #: "graph" (the adder graph, parallel or digit-serial) or "mac" (weights in
    #: memory, one input element per cycle, shared adders; frame networks).
    realisation: str = "graph"
    #: Chosen by the scheduler: requantisers shared in time by the output
    #: channels (each serves its channels one per cycle, in the cycles a
    #: position leaves spare); 0: one requantiser per channel.
    requant_units: int = 0
    #: Set when the frontend rounded float weights (``--quantize-weights``); None: factored exactly.
    weight_rounding: WeightRounding | None = None
    #: Positions per beat of the input and of the output (set by the lane-folding pass,
    #: :mod:`hwgen.passes.fold_lanes`, on a convolution it rewrote for the folded layout).
    fold_lanes: tuple[int, int] = (1, 1)
    #: Accumulator word width (``--words``): the accumulators wrap modulo ``2**wrap_bits`` (two's
    #: complement), every adder, accumulator and requantiser input at most this wide; 0: exact
    #: (words as wide as the weights and input range need, never wrapping).
    wrap_bits: int = 0

    def __post_init__(self) -> None:
        if not self.in_shape:
            object.__setattr__(self, "in_shape", (int(self.weights.shape[1]),))

    @property
    def is_conv(self) -> bool:
        return bool(self.kernel)

    @property
    def in_features(self) -> int:
        """Columns of the weight matrix (window size for a convolution)."""
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        """Output channels."""
        return int(self.weights.shape[0])

    @property
    def out_shape(self) -> tuple[int, ...]:
        if not self.is_conv:
            return (self.out_features,)
        nd = len(self.kernel)
        spatial = tuple(
            _window_out(self.in_shape[1 + i], self.kernel[i], self.stride[i], self.pads[i], self.pads[nd + i])
            for i in range(nd)
        )
        return (self.out_features, *spatial)

    @property
    def positions(self) -> int:
        """Output positions per input frame (1 for a dense layer)."""
        return int(np.prod(self.out_shape[1:])) if self.is_conv else 1

    @property
    def weights_nonzero(self) -> int:
        return int(np.count_nonzero(self.weights))

    def patches(self, x: np.ndarray, fill: Any = 0) -> np.ndarray:
        """Inputs [batch, *in_shape] -> the vectors the matrix multiplies.

        Dense: [batch, in]. Convolution: [batch, *out_spatial, in] with zero padding.
        """
        x = np.asarray(x)
        if not self.is_conv:
            return x.reshape(len(x), -1)
        win = _windows(x.reshape(len(x), *self.in_shape), self.kernel, self.stride, self.pads, fill)
        nd = len(self.kernel)
        # [batch, C, *out, *k] -> [batch, *out, C, *k] -> [batch, *out, C*prod(k)]
        order = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))
        win = win.transpose(order)
        return win.reshape(*win.shape[: 1 + nd], -1)

    def _times_patches(self, x: np.ndarray, w_t: np.ndarray) -> np.ndarray:
        """``patches(x) @ w_t``, a slice of the batch at a time: a convolution's patches are
        ``kernel taps`` times its input (a 32x32 image's 3x3 convolution over 1024 samples
        would be gigabytes), while the product is only as large as the output."""
        if not self.is_conv or len(x) == 0:
            return self.patches(x) @ w_t
        per_sample = math.prod(self.out_shape[1:]) * self.weights.shape[1] * max(x.dtype.itemsize, 8)
        chunk = max(1, PATCH_BYTES // per_sample)
        if len(x) <= chunk:
            return self.patches(x) @ w_t
        first = self.patches(x[:chunk]) @ w_t
        out = np.empty((len(x), *first.shape[1:]), dtype=first.dtype)
        out[:chunk] = first
        for start in range(chunk, len(x), chunk):
            out[start : start + chunk] = self.patches(x[start : start + chunk]) @ w_t
        return out

    def _channels_first(self, y: np.ndarray) -> np.ndarray:
        """[batch, *out_spatial, O] -> [batch, O, *out_spatial]."""
        return np.moveaxis(y, -1, 1) if self.is_conv else y

    def float_forward(self, x: np.ndarray) -> np.ndarray:
        """The float layer as parsed (before any quantisation): [batch, *out_shape]."""
        w = self.weights.astype(np.float64) * self.scale[:, None]
        y = self._times_patches(np.asarray(x, dtype=np.float64), w.T) + self.bias
        y = self._channels_first(np.maximum(y, 0.0) if self.relu else y)
        return self.quantizer(y) if self.quantizer is not None else y

    def accumulate(self, q: np.ndarray) -> np.ndarray:
        """Exact integer accumulators W @ patch, channels last: [batch, *out_spatial, O].

        Computed in float64 (BLAS) when every partial sum is an integer below
        2**52 in magnitude, where float64 arithmetic is exact; with Python
        integers otherwise.
        """
        q = np.asarray(q)
        peak = int(np.abs(q).max(initial=0)) if q.size else 0
        bound = peak * int(np.abs(self.weights).sum(axis=1).max(initial=0))
        if q.dtype.kind in "iu" and bound < 2**52:
            acc = self._times_patches(q.astype(np.float64), self.weights.T.astype(np.float64))
            return acc.astype(np.int64)
        return self._times_patches(q.astype(object), self.weights.T.astype(object))

    def word_accumulate(self, q: np.ndarray) -> np.ndarray:
        """The accumulators as the hardware's words hold them: :meth:`accumulate`, wrapped to
        ``wrap_bits`` when the layer has a word width."""
        acc = self.accumulate(q)
        return wrap_signed(acc, self.wrap_bits) if self.wrap_bits else acc

    def requantize(self, acc: np.ndarray) -> np.ndarray:
        """Output codes [batch, *out_shape] of accumulators ``acc`` (channels last, as
        :meth:`accumulate` gives them)."""
        assert self.requant is not None
        return self._channels_first(self.requant.apply(acc))

    def integer_forward(self, q: np.ndarray) -> np.ndarray:
        return self.requantize(self.word_accumulate(q))


#: Kept for readers of the first IR version: dense layers are LinearLayers.
DenseLayer = LinearLayer


@dataclass(frozen=True, eq=False)
class PoolLayer:
    """Max pooling over windows (per channel, the minimum where ``minimum[c]``).

    A minimum arises when the frontend moves a negative-scale affine (batch
    norm) from after the pooling to before it: max(a*x + b) = a*min(x) + b
    for a < 0. Works on codes unchanged: pooling commutes with quantisation.
    Padding never wins (it acts as -inf for max, +inf for min).
    """

    name: str
    op: str
    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[int, ...]
    minimum: tuple[bool, ...]
    source_nodes: tuple[str, ...]
    #: Positions per beat of the input and of the output (set by the lane-folding pass on a
    #: pool it rewrote for the folded layout).
    fold_lanes: tuple[int, int] = (1, 1)

    @property
    def out_shape(self) -> tuple[int, ...]:
        nd = len(self.kernel)
        return (
            self.in_shape[0],
            *(
                _window_out(self.in_shape[1 + i], self.kernel[i], self.stride[i], self.pads[i], self.pads[nd + i])
                for i in range(nd)
            ),
        )

    def _pool(self, x: np.ndarray, low: Any, high: Any) -> np.ndarray:
        x = np.asarray(x).reshape(len(x), *self.in_shape)
        nd = len(self.kernel)
        axes = tuple(range(-nd, 0))
        if not any(self.minimum):
            return _windows(x, self.kernel, self.stride, self.pads, low).max(axis=axes)
        if all(self.minimum):
            return _windows(x, self.kernel, self.stride, self.pads, high).min(axis=axes)
        hi = _windows(x, self.kernel, self.stride, self.pads, low).max(axis=axes)
        lo = _windows(x, self.kernel, self.stride, self.pads, high).min(axis=axes)
        mask = np.array(self.minimum, dtype=bool).reshape(1, -1, *([1] * nd))
        return np.where(mask, lo, hi)

    def float_forward(self, x: np.ndarray) -> np.ndarray:
        return self._pool(np.asarray(x, dtype=np.float64), -np.inf, np.inf)

    def integer_forward(self, q: np.ndarray) -> np.ndarray:
        big = np.iinfo(np.int64).max
        return self._pool(np.asarray(q, dtype=np.int64), -big, big)


@dataclass(frozen=True, eq=False)
class LanePoolLayer(PoolLayer):
    """A MaxPool (kernel = stride = ``group``) over positions that arrive ``lanes`` at a time.

    Made by :class:`hwgen.passes.fold_lanes.FoldLanes`: the input is
    [lanes * C, L] with channel ``lane * C + c`` holding original position
    ``lanes * t + lane``; output channel ``l * C + c`` is the max (min where
    ``minimum``) of input lanes ``l * group .. l * group + group - 1`` of
    channel ``c``, so the output carries ``lanes // group`` positions per
    folded position. ``minimum`` is per input channel (tiled over lanes).
    """

    lanes: int = 1
    group: int = 1

    @property
    def channels(self) -> int:
        return self.in_shape[0] // self.lanes

    @property
    def out_shape(self) -> tuple[int, ...]:
        return ((self.lanes // self.group) * self.channels, *self.in_shape[1:])

    def _pool(self, x: np.ndarray, low: Any, high: Any) -> np.ndarray:
        c = self.channels
        x = np.asarray(x).reshape(len(x), self.lanes // self.group, self.group, c, *self.in_shape[1:])
        mask = np.array(self.minimum[:c], dtype=bool).reshape(1, 1, c, *([1] * (len(self.in_shape) - 1)))
        y = np.where(mask, x.min(axis=2), x.max(axis=2))
        return y.reshape(len(x), *self.out_shape)


@dataclass(frozen=True, eq=False)
class LaneWindowPoolLayer(PoolLayer):
    """A MaxPool of any window over positions that arrive ``lanes`` at a time along the last axis.

    Made by :class:`hwgen.passes.fold_lanes.FoldLanes` where the pool's row window overlaps or
    is padded (e.g. kernel 3, stride 2, pads 1): ``in_shape`` is the folded [lanes * C, ...,
    W / lanes] (channel ``lane * C + c`` holds position ``lanes * t + lane``); ``kernel``,
    ``stride`` and ``pads`` are the folded window's (the original's rows; along the row the
    folded span of :func:`lane_taps`, stride 1), read by an ordinary window buffer.
    ``row_kernel``, ``row_stride`` and ``row_pad`` are the original window along the row:
    output channel ``l * C + c`` is the max (min where ``minimum``) of channel ``c``'s taps that
    the original window of output lane ``l`` covers (:attr:`row_taps`), ``lanes / row_stride``
    output lanes. ``minimum`` is per input channel (tiled over lanes).
    """

    lanes: int = 1
    row_kernel: int = 1
    row_stride: int = 1
    row_pad: int = 0

    @property
    def channels(self) -> int:
        return self.in_shape[0] // self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes // self.row_stride

    @property
    def row_taps(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per output lane, per original row tap: (folded offset in the window, input lane)."""
        return lane_taps(self.row_kernel, self.row_stride, self.row_pad, self.lanes).taps

    @property
    def taps_per_output(self) -> int:
        """Values each output compares: the original window's taps."""
        return int(np.prod(self.kernel[:-1], dtype=np.int64)) * self.row_kernel

    def selected_taps(self, out_lane: int) -> list[tuple[int, int]]:
        """(input lane, tap index ``kr * k_folded + offset`` in the folded window) of output lane ``out_lane``."""
        k2 = self.kernel[-1]
        rows = int(np.prod(self.kernel[:-1], dtype=np.int64))
        return [(lane, kr * k2 + off) for kr in range(rows) for off, lane in self.row_taps[out_lane]]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_lanes * self.channels, *super().out_shape[1:])

    def _pool(self, x: np.ndarray, low: Any, high: Any) -> np.ndarray:
        c, nd = self.channels, len(self.kernel)
        x = np.asarray(x).reshape(len(x), *self.in_shape)
        mins = np.array(self.minimum[:c], dtype=bool).reshape(1, c, *([1] * nd))
        win_lo = _windows(x, self.kernel, self.stride, self.pads, low)  # [B, L*C, *out, *kernel]
        win_hi = _windows(x, self.kernel, self.stride, self.pads, high)
        outs = []
        for out_lane in range(self.out_lanes):
            picked = []
            for win in (win_lo, win_hi):
                w = win.reshape(len(x), self.lanes, c, *win.shape[2:])
                w = w.reshape(*w.shape[: 3 + nd], -1)  # [B, L, C, *out, taps]
                picked.append(np.stack([w[:, lane, ..., t] for lane, t in self.selected_taps(out_lane)], axis=-1))
            outs.append(np.where(mins, picked[1].min(axis=-1), picked[0].max(axis=-1)))
        return np.concatenate(outs, axis=1)


Layer = LinearLayer | PoolLayer

#: What the graph does after its last layer; applied to the float outputs only.
OUTPUT_OPS = ("none", "softmax", "logsoftmax", "argmax", "topk1")


@dataclass(frozen=True, eq=False)
class Network:
    """A chain of layers fed by one input tensor (shapes exclude the batch dimension)."""

    name: str
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    input_format: FixedFormat | None = None
    opset: int = 0
    output_op: str = "none"
    #: The ONNX tensor the last layer produces (before the output op): what
    #: the golden model is compared with.
    compare_name: str = ""
    #: Preprocessing the graph applies to its input before the first layer:
    #: y = x * input_scale + input_offset (per input channel, or scalars).
    input_scale: np.ndarray | None = None
    input_offset: np.ndarray | None = None
    #: The graph's own input quantiser (then the accelerator takes its codes).
    input_quantizer: Quantizer | None = None
    #: Cycles between input vectors the hardware is scheduled for.
    initiation_interval: int = 1
    #: The hardware emits the index of the largest output (first on ties)
    #: instead of the output vector.
    argmax_output: bool = False
    #: Input positions per beat (set by the lane-folding pass): the layers
    #: then see the input as [lanes * C, L / lanes] (1-D) or [lanes * C, H, W / lanes]
    #: (2-D: positions of a row), see :meth:`fold_input`.
    input_lanes: int = 1
    #: Positions per beat of the last layer's output when the network ends folded (a
    #: convolution or pool still taking several positions a cycle): the collected output is
    #: unfolded to the ordinary order, see :meth:`unfold_output`.
    output_lanes: int = 1

    def unfold_output(self, y: np.ndarray) -> np.ndarray:
        """The last layer's outputs [batch, lanes * C, ..., W / lanes] (``output_lanes`` > 1)
        in the ordinary layout [batch, C, ..., W]; unchanged otherwise."""
        y = np.asarray(y)
        p = self.output_lanes
        if p == 1:
            return y
        shape = y.shape[1:]
        c, *outer, width = shape
        y = y.reshape(len(y), p, c // p, *outer, width)
        y = np.moveaxis(y, 1, -1)  # [batch, C, *outer, W / lanes, lanes]
        return y.reshape(len(y), c // p, *outer, width * p)

    @property
    def unfolded_stream_shape(self) -> tuple[int, ...]:
        """The input as the unfolded first layer sees it: [channels, *spatial] for a network that
        streams positions (a flat input reshaped by the graph takes the first layer's shape)."""
        first = self.layers[0] if self.layers else None
        if (
            len(self.input_shape) == 1
            and first is not None
            and (isinstance(first, PoolLayer) or first.is_conv)
            and int(np.prod(first.in_shape)) == int(np.prod(self.input_shape))
        ):
            c, *outer, width = first.in_shape  # folded when input_lanes > 1
            return (c // self.input_lanes, *outer, width * self.input_lanes)
        return tuple(self.input_shape)

    @property
    def stream_shape(self) -> tuple[int, ...]:
        """The input as the first layer sees it (:attr:`unfolded_stream_shape`), folded along its
        last axis (the row of a 2-D input) when ``input_lanes`` > 1: [lanes * C, ..., W / lanes]."""
        shape = self.unfolded_stream_shape
        if self.input_lanes == 1:
            return shape
        c, *outer, width = shape
        return (c * self.input_lanes, *outer, width // self.input_lanes)

    def fold_input(self, q: np.ndarray) -> np.ndarray:
        """Inputs [batch, *input_shape] (or flat) -> [batch, *stream_shape]: lane-major positions
        (channel ``lane * C + c`` of folded position ``t`` holds position ``lanes * t + lane`` of
        the last axis)."""
        q = np.asarray(q)
        if self.input_lanes == 1:
            return q.reshape(len(q), *self.stream_shape)
        c, *outer, width = self.unfolded_stream_shape
        p = self.input_lanes
        q = q.reshape(len(q), c, *outer, width // p, p)
        q = np.moveaxis(q, -1, 1)  # [batch, lanes, C, *outer, W / lanes]
        return q.reshape(len(q), *self.stream_shape)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs [batch, *input_shape] (preprocessing not yet applied) to the integer
        codes the accelerator takes, [batch, features]."""
        assert self.input_format is not None, "quantise the network first"
        y = self.preprocess(x)
        if self.input_quantizer is not None:
            return self.input_quantizer.codes(y).reshape(len(x), -1)
        return self.input_format.quantize(y.reshape(len(x), -1))

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Apply the graph's input affine to float inputs [batch, *input_shape]."""
        y = np.asarray(x, dtype=np.float64).reshape(len(x), *self.input_shape)
        if self.input_scale is None:
            return y
        shape = (1, -1) + (1,) * (len(self.input_shape) - 1)
        assert self.input_offset is not None
        return y * self.input_scale.reshape(shape) + self.input_offset.reshape(shape)

    @property
    def in_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def linear_layers(self) -> tuple[LinearLayer, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, LinearLayer))

    @property
    def wrapping_layers(self) -> tuple[LinearLayer, ...]:
        """The linear layers whose accumulators wrap (a word width, ``--words``)."""
        return tuple(layer for layer in self.linear_layers if layer.wrap_bits)

    @property
    def has_conv(self) -> bool:
        return any(isinstance(layer, PoolLayer) or layer.is_conv for layer in self.layers)

    def with_layers(self, layers: tuple[Layer, ...], **changes: Any) -> Network:
        return replace(self, layers=layers, **changes)

    def float_forward(self, x: np.ndarray) -> np.ndarray:
        """Float reference of the parsed network, x: [batch, *input_shape] -> [batch, *last layer's out_shape]."""
        y = self.preprocess(x)
        if self.input_quantizer is not None:
            y = self.input_quantizer(y)
        y = self.fold_input(y)
        for layer in self.layers:
            y = layer.float_forward(y)
        return self.unfold_output(y)

    def verify(self) -> None:
        """Check the IR's invariants; raise TwnError/AssertionError naming the layer."""
        if not self.linear_layers:
            raise TwnError(f"model {self.name!r} has no dense or convolution layer twngen can build")
        assert self.output_op in OUTPUT_OPS, self.output_op
        shape = self.stream_shape
        for layer in self.layers:
            # Reshapes between layers are free (row-major data is unchanged).
            assert int(np.prod(layer.in_shape)) == int(np.prod(shape)), (
                f"{layer.name}: takes {layer.in_shape}, gets {shape}"
            )
            if isinstance(layer, PoolLayer):
                assert len(layer.minimum) == layer.in_shape[0], layer.name
                shape = layer.out_shape
                continue
            w = layer.weights
            assert w.dtype == np.int64 and w.ndim == 2, layer.name
            if layer.is_conv:
                nd = len(layer.kernel)
                assert len(layer.in_shape) == nd + 1 and len(layer.stride) == nd and len(layer.pads) == 2 * nd
                assert w.shape[1] == layer.in_shape[0] * int(np.prod(layer.kernel)), layer.name
                assert all(d > 0 for d in layer.out_shape), f"{layer.name}: empty output {layer.out_shape}"
            assert layer.scale.shape == (w.shape[0],), layer.name
            assert layer.bias.shape == (w.shape[0],), layer.name
            assert np.all(np.isfinite(layer.scale)) and np.all(np.isfinite(layer.bias)), layer.name
            rq = layer.requant
            if isinstance(rq, Requant):
                assert len(rq.multiplier) == w.shape[0] and len(rq.offset) == w.shape[0], layer.name
                assert len(rq.shift) == w.shape[0] and min(rq.shift, default=0) >= 0, layer.name
            elif isinstance(rq, ThresholdRequant):
                assert len(rq.base) == len(rq.thresholds) == len(rq.rising) == w.shape[0], layer.name
                assert all(list(t) == sorted(t) for t in rq.thresholds), layer.name
            assert layer.requant_units >= 0, layer.name
            assert layer.wrap_bits == 0 or layer.wrap_bits >= 2, f"{layer.name}: word of {layer.wrap_bits} bits"
            assert not layer.requant_units or isinstance(rq, Requant), f"{layer.name}: shared thresholds"
            if layer.adder_graph is not None:
                g = layer.adder_graph
                assert g.n_inputs == w.shape[1] and len(g.outputs) == w.shape[0], layer.name
            shape = layer.out_shape
        assert int(np.prod(self.output_shape)) == int(np.prod(shape)), "output shape"

    # Serialisation: the build writes the quantised IR next to the RTL so that
    # `twngen verify` can rebuild the golden model without the ONNX file.
    def to_json(self) -> str:
        def layer_json(layer: Layer) -> dict[str, Any]:
            if isinstance(layer, PoolLayer):
                extra: dict[str, Any] = {}
                kind = "pool"
                if isinstance(layer, LanePoolLayer):
                    extra, kind = {"lanes": layer.lanes, "group": layer.group}, "lanepool"
                elif isinstance(layer, LaneWindowPoolLayer):
                    extra = {
                        "lanes": layer.lanes,
                        "row_kernel": layer.row_kernel,
                        "row_stride": layer.row_stride,
                        "row_pad": layer.row_pad,
                    }
                    kind = "lanewindowpool"
                return {
                    **extra,
                    "kind": kind,
                    "name": layer.name,
                    "op": layer.op,
                    "in_shape": list(layer.in_shape),
                    "kernel": list(layer.kernel),
                    "stride": list(layer.stride),
                    "pads": list(layer.pads),
                    "minimum": list(layer.minimum),
                    "source_nodes": list(layer.source_nodes),
                    **_fold_lanes_json(layer.fold_lanes),
                }
            return {
                "kind": "linear",
                "name": layer.name,
                "op": layer.op,
                "weights": layer.weights.tolist(),
                "scale": [float(v) for v in layer.scale],
                "bias": [float(v) for v in layer.bias],
                "relu": layer.relu,
                "weight_kind": layer.weight_kind,
                "source_nodes": list(layer.source_nodes),
                "in_shape": list(layer.in_shape),
                "kernel": list(layer.kernel),
                "stride": list(layer.stride),
                "pads": list(layer.pads),
                "quantizer": layer.quantizer.to_json() if layer.quantizer else None,
                "requant": layer.requant.to_json() if layer.requant else None,
                "adder_graph": layer.adder_graph.to_json() if layer.adder_graph else None,
                "naive_adders": layer.naive_adders,
                "digit_bits": layer.digit_bits,
                "word_bits": layer.word_bits,
                "realisation": layer.realisation,
                # Written only when shared, so the IR of every other layer reads as before.
                **({"requant_units": layer.requant_units} if layer.requant_units else {}),
                **({"wrap_bits": layer.wrap_bits} if layer.wrap_bits else {}),
                "weight_rounding": layer.weight_rounding.to_json() if layer.weight_rounding else None,
                **_fold_lanes_json(layer.fold_lanes),
            }

        doc = {
            "format": "twngen-ir-1",
            "name": self.name,
            "input_name": self.input_name,
            "input_shape": list(self.input_shape),
            "output_name": self.output_name,
            "output_shape": list(self.output_shape),
            "output_op": self.output_op,
            "compare_name": self.compare_name,
            "input_scale": self.input_scale.tolist() if self.input_scale is not None else None,
            "input_offset": self.input_offset.tolist() if self.input_offset is not None else None,
            "input_quantizer": self.input_quantizer.to_json() if self.input_quantizer else None,
            "initiation_interval": self.initiation_interval,
            "input_lanes": self.input_lanes,
            # Written only when folded, so other networks read as before.
            **({"output_lanes": self.output_lanes} if self.output_lanes != 1 else {}),
            "argmax_output": self.argmax_output,
            "input_format": self.input_format.to_json() if self.input_format else None,
            "opset": self.opset,
            "layers": [layer_json(layer) for layer in self.layers],
        }
        # Compact: the file is for twngen to read back, and indenting a large network's weights
        # and graphs made it several times larger (18.7 MB for the classifier, of which most was
        # whitespace) and slow to write (json's C encoder does not indent).
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Network:
        doc = json.loads(text)
        if doc.get("format") != "twngen-ir-1":
            raise TwnError("network.json is not a twngen IR file (format twngen-ir-1)")

        def layer(d: dict[str, Any]) -> Layer:
            if d["kind"] in ("pool", "lanepool", "lanewindowpool"):
                fields = {
                    "lanepool": ("lanes", "group"),
                    "lanewindowpool": ("lanes", "row_kernel", "row_stride", "row_pad"),
                }
                extra = {f: int(d[f]) for f in fields.get(d["kind"], ())}
                cls = {"lanepool": LanePoolLayer, "lanewindowpool": LaneWindowPoolLayer}.get(d["kind"], PoolLayer)
                return cls(
                    **extra,  # type: ignore[arg-type]
                    name=d["name"],
                    op=d["op"],
                    in_shape=tuple(d["in_shape"]),
                    kernel=tuple(d["kernel"]),
                    stride=tuple(d["stride"]),
                    pads=tuple(d["pads"]),
                    minimum=tuple(bool(v) for v in d["minimum"]),
                    source_nodes=tuple(d["source_nodes"]),
                    fold_lanes=_fold_lanes_of(d),
                )
            return LinearLayer(
                name=d["name"],
                op=d["op"],
                weights=np.array(d["weights"], dtype=np.int64).reshape(len(d["bias"]), -1),
                scale=np.array(d["scale"], dtype=np.float64),
                bias=np.array(d["bias"], dtype=np.float64),
                relu=bool(d["relu"]),
                weight_kind=d["weight_kind"],
                source_nodes=tuple(d["source_nodes"]),
                in_shape=tuple(d["in_shape"]),
                kernel=tuple(d["kernel"]),
                stride=tuple(d["stride"]),
                pads=tuple(d["pads"]),
                quantizer=Quantizer.from_json(d["quantizer"]) if d.get("quantizer") else None,
                requant=requant_from_json(d["requant"]) if d["requant"] else None,
                adder_graph=AdderGraph.from_json(d["adder_graph"]) if d["adder_graph"] else None,
                naive_adders=int(d["naive_adders"]),
                digit_bits=int(d.get("digit_bits", 0)),
                word_bits=int(d.get("word_bits", 0)),
                realisation=str(d.get("realisation", "graph")),
                requant_units=int(d.get("requant_units", 0)),
                wrap_bits=int(d.get("wrap_bits", 0)),
                weight_rounding=WeightRounding.from_json(d["weight_rounding"]) if d.get("weight_rounding") else None,
                fold_lanes=_fold_lanes_of(d),
            )

        fmt = doc["input_format"]
        return Network(
            name=doc["name"],
            input_name=doc["input_name"],
            input_shape=tuple(doc["input_shape"]),
            output_name=doc["output_name"],
            output_shape=tuple(doc["output_shape"]),
            layers=tuple(layer(d) for d in doc["layers"]),
            input_format=FixedFormat.from_json(fmt) if fmt else None,
            opset=int(doc["opset"]),
            output_op=doc.get("output_op", "none"),
            compare_name=doc.get("compare_name", ""),
            input_scale=np.array(doc["input_scale"]) if doc.get("input_scale") is not None else None,
            input_offset=np.array(doc["input_offset"]) if doc.get("input_offset") is not None else None,
            input_quantizer=Quantizer.from_json(doc["input_quantizer"]) if doc.get("input_quantizer") else None,
            initiation_interval=int(doc.get("initiation_interval", 1)),
            input_lanes=int(doc.get("input_lanes", 1)),
            output_lanes=int(doc.get("output_lanes", 1)),
            argmax_output=bool(doc.get("argmax_output", False)),
        )
