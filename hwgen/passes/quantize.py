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
from hwgen.ir import FixedFormat, Layer, LinearLayer, Network, PoolLayer, Requant

__all__ = [
    "MULTIPLIER_BITS",
    "RANGE_METHODS",
    "SYNTHETIC_SAMPLES",
    "QuantizeActivations",
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


def _requant(layer: LinearLayer, in_frac: int, out: FixedFormat) -> Requant:
    real = layer.scale * (2.0 ** (out.frac - in_frac))
    peak = float(np.max(np.abs(real))) if len(real) else 0.0
    limit = (1 << (MULTIPLIER_BITS - 1)) - 1
    shift = 0
    if peak > 0:
        shift = max(0, math.floor(math.log2(limit / peak)))
        while shift > 0 and math.floor(peak * 2.0**shift + 0.5) > limit:
            shift -= 1
    # Round half up, like every other rounding in the arithmetic.
    mult = tuple(math.floor(r * 2.0**shift + 0.5) for r in real)
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    offset = tuple(math.floor(float(b) * 2.0 ** (out.frac + shift) + 0.5) + rounding for b in layer.bias)
    return Requant(mult, offset, shift, out, layer.relu)


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

    def apply(self, network: Network) -> Network:
        for what, bits in (
            ("--act-bits", self.act_bits),
            ("--input-bits", self.input_bits),
            ("--out-bits", self.out_bits or 16),
        ):
            if not 2 <= bits <= 32:
                raise TwnError(f"{what} must be between 2 and 32, not {bits}")
        if self.ranges not in RANGE_METHODS:
            raise TwnError(f"--ranges must be one of {', '.join(RANGE_METHODS)}, not {self.ranges!r}")
        if not (math.isfinite(self.headroom) and self.headroom >= 1):
            raise TwnError(f"--headroom must be a number >= 1, not {self.headroom}")
        if not (math.isfinite(self.input_range) and self.input_range > 0):
            raise TwnError(f"--input-range must be a positive number, not {self.input_range}")

        calib = self.calibration
        if calib is not None:
            calib = np.asarray(calib, dtype=np.float64).reshape(len(calib), -1)
            peak_in = float(np.max(np.abs(calib))) if calib.size else 0.0
        else:
            peak_in = self.input_range
        in_fmt = FixedFormat.full(self.input_bits, frac_bits_for(peak_in, self.input_bits))

        # Output ranges per linear layer, in float: the safe bound always, and
        # the sampled peak with headroom unless the user asked for safe ranges.
        channels = network.input_shape[0] if len(network.input_shape) > 1 else network.in_features
        lo = np.full(channels, in_fmt.lo * 2.0**-in_fmt.frac)
        hi = np.full(channels, in_fmt.hi * 2.0**-in_fmt.frac)
        safe: dict[int, float] = {}
        for k, layer in enumerate(network.layers):
            lo, hi = _interval_forward(layer, lo, hi)
            if isinstance(layer, LinearLayer):
                safe[k] = float(max(np.max(np.abs(lo), initial=0), np.max(np.abs(hi), initial=0)))
        peaks = dict(safe)
        if self.ranges == "sampled":
            y = calib if calib is not None else synthetic_batch(network.in_features)
            y = in_fmt.dequantize(in_fmt.quantize(y)).reshape(len(y), *network.input_shape)
            for k, layer in enumerate(network.layers):
                y = layer.float_forward(y)
                if isinstance(layer, LinearLayer):
                    seen = float(np.max(np.abs(y))) if y.size else 0.0
                    peaks[k] = min(safe[k], seen * self.headroom)

        layers: list[Layer] = []
        in_frac = in_fmt.frac
        last = max(peaks)
        for k, layer in enumerate(network.layers):
            if isinstance(layer, PoolLayer):
                layers.append(layer)
                continue
            if k == last:
                full = self._output_format(layer, in_frac, peaks[k])
            else:
                full = FixedFormat.full(self.act_bits, frac_bits_for(peaks[k], self.act_bits))
            out = replace(full, lo=0) if layer.relu else full
            layers.append(replace(layer, requant=_requant(layer, in_frac, out)))
            in_frac = out.frac
        return network.with_layers(tuple(layers), input_format=in_fmt)

    def _output_format(self, layer: LinearLayer, in_frac: int, peak: float) -> FixedFormat:
        if self.out_bits is not None:
            return FixedFormat.full(self.out_bits, frac_bits_for(peak, self.out_bits))
        # One accumulator step is worth min|scale| * 2**-in_frac; resolve a
        # quarter of it, with enough integer bits for the peak.
        used = np.abs(layer.scale[np.any(layer.weights != 0, axis=1)])
        step = float(used.min()) * 2.0**-in_frac if used.size else 2.0**-in_frac
        frac = 2 - math.floor(math.log2(step))
        int_bits = math.ceil(math.log2(peak)) if peak > 0 else 0
        bits = min(32, max(2, 1 + int_bits + frac))
        return FixedFormat.full(bits, bits - 1 - int_bits)
