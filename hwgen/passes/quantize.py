"""Choose every tensor's fixed-point format and the integer requantisation.

The input is quantised to ``input_bits`` signed bits. Its fraction bits come
from a calibration batch (the largest magnitude seen) or, without one, from
``input_range`` (default 8: codes cover [-8, 8), wide enough for
standardised data). Each layer's output gets ``act_bits`` signed bits with
fraction bits from the largest output magnitude: measured on a batch through
the float network, or bounded by interval analysis from the input range. By
default (``ranges="sampled"``) the peak seen on the calibration
batch, or on a synthetic standard-normal batch, times a headroom factor is
used, capped at the safe bound; ``ranges="safe"`` uses the bound alone so that
nothing can saturate. The float scale and bias of each output
channel become an integer multiplier with 18 signed bits, an offset and a
right shift, with round-half-up; see :mod:`hwgen.ir.network` for the exact
arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from hwgen.errors import TwnError
from hwgen.estimate import dsp_count
from hwgen.ir import FixedFormat, Layer, LinearLayer, Network, PoolLayer, Quantizer, Requant, ThresholdRequant
from hwgen.ir.widths import signed_bits_for_range
from hwgen.passes.code_ladder import ChannelLadder, affine_requant, channel_ladders, ladder_thresholds
from hwgen.passes.schedule import LUT_PER_DSP

__all__ = [
    "GRAPH_QUANTIZER_FORMS",
    "MULTIPLIER_BITS",
    "RANGE_METHODS",
    "SYNTHETIC_SAMPLES",
    "QuantizeActivations",
    "accumulator_ranges",
    "frac_bits_for",
    "synthetic_batch",
]

RANGE_METHODS = ("sampled", "safe")
SYNTHETIC_SAMPLES = 1024


def synthetic_batch(features: int) -> np.ndarray:
    """The stand-in calibration batch: standard-normal (standardised) inputs."""
    return np.random.default_rng(20261123).standard_normal((SYNTHETIC_SAMPLES, features))


#: Signed width of the requantisation multipliers (one DSP48 B port).
MULTIPLIER_BITS = 18
#: Largest requantisation shift.
MAX_SHIFT = 40
#: Multiplier widths tried, in order, for a graph quantiser's exact affine form: a DSP's B port,
#: its A port, then two DSPs. A 16-bit quantiser over a wide accumulator needs more than 18 bits
#: to place all its steps exactly.
AFFINE_MULTIPLIER_BITS = (18, 27, 35, 44)


def frac_bits_for(max_abs: float, bits: int) -> int:
    """Fraction bits so that a signed ``bits``-bit code covers [-max_abs, max_abs).

    Values at exactly ``+max_abs`` (a power of two) saturate by one code.
    """
    if not math.isfinite(max_abs):
        raise TwnError(f"cannot choose a fixed-point format for a range of {max_abs}")
    if max_abs <= 0:
        max_abs = 1.0
    int_bits = math.ceil(math.log2(max_abs))
    return bits - 1 - int_bits


def _interval_forward(layer: Layer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of a float layer's outputs, per output channel, from bounds per input channel.

    For a convolution the zero padding lies inside every bound (bounds always
    contain zero here), so per-channel bounds of the window taps are safe.
    """
    expected = layer.in_features if isinstance(layer, LinearLayer) and not layer.is_conv else layer.in_shape[0]
    if len(lo) != expected and not (expected % len(lo) == 0 and isinstance(layer, LinearLayer) and not layer.is_conv):
        # A reshape between layers: per-channel bounds no longer line up.
        lo, hi = np.full(expected, lo.min()), np.full(expected, hi.max())
    if isinstance(layer, PoolLayer):
        return lo, hi
    if layer.is_conv:
        taps = int(np.prod(layer.kernel))
        lo, hi = np.repeat(np.minimum(lo, 0), taps), np.repeat(np.maximum(hi, 0), taps)
    elif len(lo) != layer.in_features:
        per_channel = layer.in_features // len(lo)
        lo, hi = np.repeat(lo, per_channel), np.repeat(hi, per_channel)
    w = layer.weights.astype(np.float64) * layer.scale[:, None]
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    out_lo = wp @ lo + wn @ hi + layer.bias
    out_hi = wp @ hi + wn @ lo + layer.bias
    if layer.relu:
        out_lo, out_hi = np.maximum(out_lo, 0), np.maximum(out_hi, 0)
    return out_lo, out_hi


def _requant(layer: LinearLayer, in_res: float, out: FixedFormat) -> Requant:
    """Integer multiplier (MULTIPLIER_BITS signed), offset and shift per channel."""
    real = layer.scale * (in_res / out.resolution)
    limit = (1 << (MULTIPLIER_BITS - 1)) - 1
    mults, offsets, shifts = [], [], []
    for r, b in zip(real, layer.bias, strict=True):
        shift = 0
        if r != 0:
            # Capped: a multiplier below 2**-MAX_SHIFT rounds to zero, a constant channel.
            shift = min(MAX_SHIFT, max(0, math.floor(math.log2(limit / abs(r)))))
            while shift > 0 and math.floor(abs(r) * 2.0**shift + 0.5) > limit:
                shift -= 1
        # Round half up, like every other rounding in the arithmetic.
        mults.append(math.floor(r * 2.0**shift + 0.5))
        rounding = (1 << (shift - 1)) if shift > 0 else 0
        offsets.append(math.floor(float(b) / out.resolution * 2.0**shift + 0.5) + rounding)
        shifts.append(shift)
    return Requant(tuple(mults), tuple(offsets), tuple(shifts), out, layer.relu)


def accumulator_ranges(layer: LinearLayer, fmt: FixedFormat) -> tuple[np.ndarray, np.ndarray]:
    """Integer bounds of every output channel's accumulator for inputs coded in ``fmt``."""
    lo, hi = min(fmt.lo, 0), max(fmt.hi, 0)  # zero padding lies in the range
    w = layer.weights
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, w, 0).sum(axis=1)
    return pos * lo + neg * hi, pos * hi + neg * lo


def _levels(q: Quantizer) -> tuple[int, int]:
    """(stride, number of steps) of a quantiser's code ladder."""
    if q.kind == "thresholds":
        assert q.thresholds is not None
        return q.code_stride, q.thresholds.shape[1]
    if q.kind == "binary":
        return q.code_hi - q.code_lo, 1
    if q.kind == "sign":
        return 1, 2
    return 1, q.code_hi - q.code_lo


#: How a graph quantiser is built: "auto" (one multiply when its ladder is affine and the
#: comparators would cost more), "thresholds" (always comparators) or "affine" (one multiply
#: wherever the ladder is affine).
GRAPH_QUANTIZER_FORMS = ("auto", "thresholds", "affine")


def graph_quantizer_requant(layer: LinearLayer, fmt: FixedFormat, form: str = "auto") -> Requant | ThresholdRequant:
    """The layer's graph quantiser as integer arithmetic on the accumulator, exactly.

    The chain acc -> scale * acc * resolution + bias -> ReLU -> quantiser is
    monotone in acc per channel, so each code step happens at one integer
    accumulator value (:mod:`hwgen.passes.code_ladder`, the chain evaluated in
    float64). Those thresholds are a :class:`ThresholdRequant`, one comparator
    per step; when every channel's steps are affine in the accumulator they are
    also a :class:`Requant` (one multiply, offset and shift), which ``form``
    "auto" takes when the comparators would cost more (a DSP weighed as
    ``LUT_PER_DSP`` LUTs, a comparator about half a LUT per accumulator bit).
    Both give the same code on every reachable accumulator.
    """
    q = layer.quantizer
    assert q is not None
    acc_lo, acc_hi = accumulator_ranges(layer, fmt)
    stride, _ = _levels(q)
    ladders = channel_ladders(layer, fmt, acc_lo, acc_hi, stride)
    code_lo = min(ladder.first for ladder in ladders)
    code_hi = max(ladder.first + stride * ladder.levels for ladder in ladders)
    out = FixedFormat.for_codes(code_lo, code_hi, q.step)
    if form != "thresholds":
        comparators = _comparator_lut(ladders)
        for bits in AFFINE_MULTIPLIER_BITS:
            used = sum(1 for ladder in ladders if ladder.levels)
            multiplies = LUT_PER_DSP * used * dsp_count(max(_acc_bits(ladder) for ladder in ladders), bits)
            if form == "auto" and multiplies >= comparators:
                break
            affine = affine_requant(ladders, out, out.lo >= 0, bits, MAX_SHIFT)
            if affine is not None:
                return affine
    return ThresholdRequant(
        tuple(ladder.first for ladder in ladders),
        stride,
        tuple(ladder_thresholds(ladder) for ladder in ladders),
        tuple(ladder.rising for ladder in ladders),
        out,
    )


def _acc_bits(ladder: ChannelLadder) -> int:
    return signed_bits_for_range(ladder.lo, ladder.hi)


def _comparator_lut(ladders: list[ChannelLadder]) -> int:
    """LUTs of the layer's threshold comparators: about half a LUT per accumulator bit each."""
    return sum(ladder.levels * math.ceil(_acc_bits(ladder) / 2) for ladder in ladders)


@dataclass(frozen=True)
class QuantizeActivations:
    """Fix the input format, every layer's output format and requantisation."""

    name: ClassVar[str] = "quantize-activations"
    act_bits: int = 16
    input_bits: int = 16
    input_range: float = 8.0
    calibration: np.ndarray | None = None
    #: "sampled": each layer's range is the peak seen on the calibration
    #: batch (or, without one, on SYNTHETIC_SAMPLES standard-normal vectors)
    #: times ``headroom``, never more than the safe bound; larger values
    #: saturate. "safe": interval analysis from the input format's full
    #: range, so nothing can saturate (at a cost in resolution).
    ranges: str = "sampled"
    headroom: float = 2.0
    #: Width of the network's output codes; None keeps the last layer's
    #: accumulator precision (so the output adds no rounding error of its
    #: own), up to 32 bits.
    out_bits: int | None = None
    #: Per-layer activation precision in value bits, overriding ``act_bits``:
    #: a ReLU output of ``p`` bits takes the codes 0 .. 2**p - 1, any other
    #: output ``p`` signed bits (at least 2). Chosen by
    #: :mod:`hwgen.passes.precision` for ``--precision incremental``.
    layer_act_bits: tuple[tuple[str, int], ...] = ()
    #: How the graph's own activation quantisers are built (:data:`GRAPH_QUANTIZER_FORMS`).
    graph_quantizers: str = "auto"
    #: (layer index, float range) of each linear layer's output, from :meth:`output_peaks`
    #: on the same network and options; empty: measured (or bounded) here.
    peaks: tuple[tuple[int, float], ...] = ()

    def apply(self, network: Network) -> Network:
        for what, bits in (
            ("--act-bits", self.act_bits),
            ("--input-bits", self.input_bits),
            ("--out-bits", self.out_bits or 16),
        ):
            if not 2 <= bits <= 32:
                raise TwnError(f"{what} must be between 2 and 32, not {bits}")
        if self.graph_quantizers not in GRAPH_QUANTIZER_FORMS:
            raise TwnError(
                f"--graph-quantizers must be one of {', '.join(GRAPH_QUANTIZER_FORMS)}, not {self.graph_quantizers!r}"
            )
        if self.ranges not in RANGE_METHODS:
            raise TwnError(f"--ranges must be one of {', '.join(RANGE_METHODS)}, not {self.ranges!r}")
        if not (math.isfinite(self.headroom) and self.headroom >= 1):
            raise TwnError(f"--headroom must be a number >= 1, not {self.headroom}")
        if not (math.isfinite(self.input_range) and self.input_range > 0):
            raise TwnError(f"--input-range must be a positive number, not {self.input_range}")

        chosen = self._layer_bits(network)
        calib, in_fmt = self._input_format(network)
        peaks = dict(self.peaks) if self.peaks else self._peaks(network, calib, in_fmt)

        layers: list[Layer] = []
        current = in_fmt
        last = max(peaks)
        for k, layer in enumerate(network.layers):
            if isinstance(layer, PoolLayer):
                layers.append(layer)
                continue
            requant: Requant | ThresholdRequant
            if layer.quantizer is not None:
                requant = graph_quantizer_requant(layer, current, self.graph_quantizers)
                out = requant.out
            else:
                if layer.name in chosen:
                    bits = chosen[layer.name] + 1 if layer.relu else max(2, chosen[layer.name])
                    full = FixedFormat.full(bits, frac_bits_for(peaks[k], bits))
                elif k == last:
                    full = self._output_format(layer, current.resolution, peaks[k])
                else:
                    full = FixedFormat.full(self.act_bits, frac_bits_for(peaks[k], self.act_bits))
                out = replace(full, lo=0) if layer.relu else full
                requant = _requant(layer, current.resolution, out)
            layers.append(replace(layer, requant=requant))
            current = out
        return network.with_layers(tuple(layers), input_format=in_fmt)

    def output_peaks(self, network: Network) -> tuple[tuple[int, float], ...]:
        """(layer index, float range) of every linear layer's output, as :meth:`apply` measures them:
        given back as ``peaks``, they spare a second application the float pass over the batch."""
        calib, in_fmt = self._input_format(network)
        return tuple(sorted(self._peaks(network, calib, in_fmt).items()))

    def _input_format(self, network: Network) -> tuple[np.ndarray | None, FixedFormat]:
        """The preprocessed calibration batch (None without one) and the input format."""
        calib = self.calibration
        if calib is not None:
            calib = network.preprocess(np.asarray(calib, dtype=np.float64))
        if network.input_quantizer is not None:
            # The graph quantises its own input: the accelerator takes those codes.
            iq = network.input_quantizer
            return calib, FixedFormat.for_codes(iq.code_lo, iq.code_hi, iq.step)
        peak_in = float(np.max(np.abs(calib))) if calib is not None and calib.size else self.input_range
        return calib, FixedFormat.full(self.input_bits, frac_bits_for(peak_in, self.input_bits))

    def _peaks(self, network: Network, calib: np.ndarray | None, in_fmt: FixedFormat) -> dict[int, float]:
        """Output ranges per linear layer, in float: the safe bound always, and
        the sampled peak with headroom unless the user asked for safe ranges."""
        channels = network.input_shape[0] if len(network.input_shape) > 1 else network.in_features
        lo = np.full(channels, in_fmt.lo * in_fmt.resolution)
        hi = np.full(channels, in_fmt.hi * in_fmt.resolution)
        safe: dict[int, float] = {}
        for k, layer in enumerate(network.layers):
            lo, hi = _interval_forward(layer, lo, hi)
            if isinstance(layer, LinearLayer):
                safe[k] = float(max(np.max(np.abs(lo), initial=0), np.max(np.abs(hi), initial=0)))
                if layer.quantizer is not None:
                    q = layer.quantizer
                    lo = np.full(len(lo), q.code_lo * q.step)
                    hi = np.full(len(hi), q.code_hi * q.step)
        peaks = dict(safe)
        if self.ranges == "sampled":
            y = calib if calib is not None else synthetic_batch(network.in_features)
            y = y.reshape(len(y), *network.input_shape)
            if network.input_quantizer is not None:
                y = network.input_quantizer(y)
            else:
                y = in_fmt.dequantize(in_fmt.quantize(y))
            for k, layer in enumerate(network.layers):
                y = layer.float_forward(y)
                if isinstance(layer, LinearLayer):
                    seen = float(np.max(np.abs(y))) if y.size else 0.0
                    peaks[k] = min(safe[k], seen * self.headroom)
        return peaks

    def _layer_bits(self, network: Network) -> dict[str, int]:
        """``layer_act_bits`` checked against the network's layers."""
        linear = {layer.name: layer for layer in network.layers if isinstance(layer, LinearLayer)}
        chosen = dict(self.layer_act_bits)
        for name, bits in chosen.items():
            if name not in linear:
                raise TwnError(
                    f"activation bits given for {name!r}, which is not a convolution or dense layer of this network "
                    f"(those are: {', '.join(map(repr, linear))})"
                )
            if linear[name].quantizer is not None:
                raise TwnError(f"layer {name!r} ({linear[name].op}): its activations are quantised by the model itself")
            if not (isinstance(bits, int) and 1 <= bits <= 31):
                raise TwnError(f"layer {name!r}: activation bits must be between 1 and 31, not {bits!r}")
        return chosen

    def _output_format(self, layer: LinearLayer, in_res: float, peak: float) -> FixedFormat:
        if self.out_bits is not None:
            return FixedFormat.full(self.out_bits, frac_bits_for(peak, self.out_bits))
        # One accumulator step is worth min|scale| * in_res; resolve 1/256 of
        # it (the output then adds almost no rounding error of its own), with
        # enough integer bits for the peak.
        used = np.abs(layer.scale[np.any(layer.weights != 0, axis=1) & (layer.scale != 0)])
        step = float(used.min()) * in_res if used.size else in_res
        frac = 8 - math.floor(math.log2(step))
        int_bits = math.ceil(math.log2(peak)) if peak > 0 else 0
        bits = min(32, max(2, 1 + int_bits + frac))
        return FixedFormat.full(bits, bits - 1 - int_bits)
