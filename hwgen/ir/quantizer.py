"""Activation quantisers that a graph states itself (QONNX, FINN, QDQ, sign idioms).

A :class:`Quantizer` maps float values to integer codes meaning ``code *
step``: QONNX ``Quant``/``BipolarQuant``, FINN ``MultiThreshold``,
``QuantizeLinear``+``DequantizeLinear``, ``Sign`` and the ``Greater``+``Where``
sign idiom all become one. Every kind is a monotone non-decreasing step
function of its input, which is what lets the quantise pass turn "affine,
then quantise" into integer thresholds on the accumulator. The float
evaluation here follows the ONNX/QONNX definitions (round half to even for
``ROUND`` and ``QuantizeLinear``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hwgen.ir.widths import signed_bits_for_range

__all__ = ["QUANTIZER_KINDS", "Quantizer"]

QUANTIZER_KINDS = ("uniform", "thresholds", "binary", "sign")


@dataclass(frozen=True, eq=False)
class Quantizer:
    """A monotone step function from floats to codes ``code_lo .. code_hi`` (value = code * step).

    * ``uniform``: ``code = clip(rnd(y / scale), code_lo, code_hi)`` with
      ``rounding`` one of ROUND (half to even), FLOOR, CEIL, ROUND_TO_ZERO;
      zero points are folded into the code range (code = q - zero_point).
    * ``thresholds``: ``code = code_lo + code_stride * #{k : y >= T[c, k]}``
      (FINN MultiThreshold; ``T`` per channel or shared).
    * ``binary``: ``code = code_hi if y > t (or >= t when not strict) else code_lo``.
    * ``sign``: ONNX ``Sign``, codes -1, 0, +1.
    """

    kind: str
    step: float
    code_lo: int
    code_hi: int
    scale: float = 1.0
    zero_point: int = 0
    rounding: str = "ROUND"
    thresholds: np.ndarray | None = None  # [C or 1, n] for kind "thresholds"
    code_stride: int = 1
    threshold: float = 0.0
    strict: bool = True
    clip: tuple[float, float] | None = None  # applied before quantising (Clip / ReLU6)
    source: str = ""

    @property
    def bits(self) -> int:
        return signed_bits_for_range(min(self.code_lo, 0), max(self.code_hi, 0))

    def codes(self, y: np.ndarray) -> np.ndarray:
        """Codes for float values y [batch, C, ...] (channel axis 1)."""
        y = np.asarray(y, dtype=np.float64)
        if self.clip is not None:
            y = np.clip(y, self.clip[0], self.clip[1])
        if self.kind == "sign":
            return np.sign(y).astype(np.int64)
        if self.kind == "uniform":
            # q = clip(rnd(y / scale + zero_point)); code = q - zero_point.
            r = y / self.scale + self.zero_point
            if self.rounding == "ROUND":
                q = np.round(r)  # half to even, as QONNX and QuantizeLinear
            elif self.rounding == "FLOOR":
                q = np.floor(r)
            elif self.rounding == "CEIL":
                q = np.ceil(r)
            elif self.rounding == "ROUND_TO_ZERO":
                q = np.trunc(r)
            else:
                raise ValueError(f"rounding mode {self.rounding!r}")
            zp = self.zero_point
            return (np.clip(q, self.code_lo + zp, self.code_hi + zp) - zp).astype(np.int64)
        if self.kind == "thresholds":
            assert self.thresholds is not None
            t = self.thresholds
            shape = [1, t.shape[0]] + [1] * (y.ndim - 2)
            count = np.zeros(y.shape, dtype=np.int64)
            for k in range(t.shape[1]):
                count += (y >= t[:, k].reshape(shape)).astype(np.int64)
            return self.code_lo + self.code_stride * count
        if self.kind == "binary":
            hit = y > self.threshold if self.strict else y >= self.threshold
            return np.where(hit, self.code_hi, self.code_lo).astype(np.int64)
        raise ValueError(f"quantizer kind {self.kind!r}")

    def channel(self, c: int) -> Quantizer:
        """The quantiser of channel ``c`` alone (only per-channel thresholds differ by channel)."""
        if self.thresholds is None or self.thresholds.shape[0] == 1:
            return self
        return replace(self, thresholds=self.thresholds[c : c + 1])

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.float64) * self.step

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return self.dequantize(self.codes(y))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "code_lo": self.code_lo,
            "code_hi": self.code_hi,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "rounding": self.rounding,
            "thresholds": self.thresholds.tolist() if self.thresholds is not None else None,
            "code_stride": self.code_stride,
            "threshold": self.threshold,
            "strict": self.strict,
            "clip": list(self.clip) if self.clip is not None else None,
            "source": self.source,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Quantizer:
        return Quantizer(
            kind=d["kind"],
            step=float(d["step"]),
            code_lo=int(d["code_lo"]),
            code_hi=int(d["code_hi"]),
            scale=float(d["scale"]),
            zero_point=int(d.get("zero_point", 0)),
            rounding=d["rounding"],
            thresholds=np.array(d["thresholds"], dtype=np.float64) if d["thresholds"] is not None else None,
            code_stride=int(d["code_stride"]),
            threshold=float(d["threshold"]),
            strict=bool(d["strict"]),
            clip=(float(d["clip"][0]), float(d["clip"][1])) if d["clip"] is not None else None,
            source=d["source"],
        )
