"""Quantisation ops of the three dialects: their arithmetic, and their quantisers.

QONNX ``Quant``/``BipolarQuant`` (domains ``qonnx.custom_op.general`` and the
older ``onnx.brevitas``), FINN ``MultiThreshold`` (``finn.custom_op.general``)
and ONNX ``QuantizeLinear``/``DequantizeLinear``. On constants (weights) they
are evaluated, so the frontend sees the dequantised weights and factors them;
on activations they become a :class:`~hwgen.ir.Quantizer`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from hwgen.errors import TwnError
from hwgen.frontend.nodes import node_attrs
from hwgen.ir import Quantizer

__all__ = [
    "FINN_DOMAINS",
    "QONNX_DOMAINS",
    "bipolar_quant",
    "dequantize_linear",
    "multithreshold_quantizer",
    "qdq_quantizer",
    "quant",
    "quant_quantizer",
    "quantize_linear",
]

QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas")
FINN_DOMAINS = ("finn.custom_op.general", "qonnx.custom_op.general")


def _int_range(bits: float, signed: bool, narrow: bool) -> tuple[int, int]:
    b = int(bits)
    if b != bits or b < 1:
        raise ValueError(f"bit width {bits} is not a positive integer")
    if signed:
        lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
        return (lo + 1 if narrow else lo), hi
    return 0, (1 << b) - 1 - (1 if narrow else 0)


def _round(x: np.ndarray, mode: str) -> np.ndarray:
    mode = mode.upper()
    if mode == "ROUND":
        return np.round(x)
    if mode == "FLOOR":
        return np.floor(x)
    if mode == "CEIL":
        return np.ceil(x)
    if mode == "ROUND_TO_ZERO":
        return np.trunc(x)
    raise ValueError(f"rounding_mode {mode!r}")


def _quant_args(
    node: onnx.NodeProto, consts: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    names = list(node.input[1:4])
    if len(names) != 3 or any(n not in consts for n in names):
        raise ValueError("scale, zero point and bit width must be constants")
    scale, zeropt, bits = (np.asarray(consts[n], dtype=np.float64) for n in names)
    if bits.size != 1:
        raise ValueError("bit width must be a scalar")
    return scale, zeropt, float(bits.reshape(-1)[0]), node_attrs(node)


def quant(node: onnx.NodeProto, x: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    """QONNX Quant on a constant: (clip(rnd(x/s + z)) - z) * s."""
    scale, zeropt, bits, at = _quant_args(node, consts)
    lo, hi = _int_range(bits, bool(at.get("signed", 1)), bool(at.get("narrow", 0)))
    q = np.clip(_round(np.asarray(x, dtype=np.float64) / scale + zeropt, at.get("rounding_mode", "ROUND")), lo, hi)
    return ((q - zeropt) * scale).astype(np.float32)


def bipolar_quant(node: onnx.NodeProto, x: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    scale = np.asarray(consts[node.input[1]], dtype=np.float64)
    return (np.where(np.asarray(x) >= 0, 1.0, -1.0) * scale).astype(np.float32)


def _qdq_zero_point(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[np.ndarray, int, int]:
    if len(node.input) > 2 and node.input[2]:
        zp = np.asarray(consts[node.input[2]])
        dtype = zp.dtype
    else:
        zp, dtype = np.zeros(1, dtype=np.uint8), np.dtype(np.uint8)
    if dtype not in (np.int8, np.uint8):
        raise ValueError(f"zero point type {dtype}; accepted: int8 or uint8")
    info = np.iinfo(dtype)
    return zp.astype(np.int64), int(info.min), int(info.max)


def _axis_shape(scale: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    if scale.size == 1:
        return scale.reshape(())
    shape = [1] * x.ndim
    shape[axis] = scale.size
    return scale.reshape(shape)


def quantize_linear(node: onnx.NodeProto, x: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    scale = np.asarray(consts[node.input[1]], dtype=np.float64)
    zp, lo, hi = _qdq_zero_point(node, consts)
    axis = int(node_attrs(node).get("axis", 1))
    x = np.asarray(x, dtype=np.float64)
    q = np.clip(np.round(x / _axis_shape(scale, x, axis)) + _axis_shape(zp, x, axis), lo, hi)
    return q.astype(np.int8 if lo < 0 else np.uint8)


def dequantize_linear(node: onnx.NodeProto, x: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    scale = np.asarray(consts[node.input[1]], dtype=np.float64)
    zp = np.asarray(consts[node.input[2]]).astype(np.int64) if len(node.input) > 2 and node.input[2] else np.zeros(1)
    axis = int(node_attrs(node).get("axis", 1))
    x = np.asarray(x).astype(np.float64)
    return ((x - _axis_shape(zp, x, axis)) * _axis_shape(scale, x, axis)).astype(np.float32)


def _scalar(v: np.ndarray, what: str, label: str) -> float:
    v = np.asarray(v, dtype=np.float64)
    if v.size != 1 or not np.all(np.isfinite(v)):
        raise TwnError(
            f"{label}: the activation {what} must be one finite value (per tensor); "
            "per-channel activation scales are not supported"
        )
    return float(v.reshape(-1)[0])


def quant_quantizer(node: onnx.NodeProto, consts: dict[str, np.ndarray], label: str) -> Quantizer:
    """An activation Quant / BipolarQuant as a quantiser."""
    if node.op_type == "BipolarQuant":
        s = _scalar(consts[node.input[1]], "scale", label)
        return Quantizer("binary", step=s, code_lo=-1, code_hi=1, threshold=0.0, strict=False, source=node.name)
    try:
        scale, zeropt, bits, at = _quant_args(node, consts)
        lo, hi = _int_range(bits, bool(at.get("signed", 1)), bool(at.get("narrow", 0)))
    except ValueError as exc:
        raise TwnError(f"{label}: {exc}") from None
    s, z = _scalar(scale, "scale", label), _scalar(zeropt, "zero point", label)
    if s <= 0 or z != int(z):
        raise TwnError(f"{label}: scale must be positive and the zero point an integer")
    if bits > 16:
        raise TwnError(f"{label}: {int(bits)}-bit activations; accepted: up to 16 bits")
    rounding = str(at.get("rounding_mode", "ROUND")).upper()
    if rounding not in ("ROUND", "FLOOR", "CEIL", "ROUND_TO_ZERO"):
        raise TwnError(f"{label}: rounding_mode {rounding!r} is not supported")
    return Quantizer(
        "uniform", step=s, code_lo=lo - int(z), code_hi=hi - int(z), scale=s, zero_point=int(z),
        rounding=rounding, source=node.name,
    )  # fmt: skip


def qdq_quantizer(
    q_node: onnx.NodeProto, dq_node: onnx.NodeProto, consts: dict[str, np.ndarray], label: str
) -> Quantizer:
    """A QuantizeLinear -> DequantizeLinear pair on activations."""
    try:
        zp, lo, hi = _qdq_zero_point(q_node, consts)
    except ValueError as exc:
        raise TwnError(f"{label}: {exc}") from None
    s = _scalar(consts[q_node.input[1]], "scale", label)
    z = int(_scalar(zp, "zero point", label))
    s2 = _scalar(consts[dq_node.input[1]], "scale", label)
    z2 = (
        int(_scalar(consts[dq_node.input[2]], "zero point", label))
        if len(dq_node.input) > 2 and dq_node.input[2]
        else 0
    )
    if s2 != s or z2 != z:
        raise TwnError(f"{label}: QuantizeLinear and DequantizeLinear must use the same scale and zero point")
    return Quantizer(
        "uniform", step=s, code_lo=lo - z, code_hi=hi - z, scale=s, zero_point=z, rounding="ROUND",
        source=q_node.name,
    )  # fmt: skip


def multithreshold_quantizer(
    node: onnx.NodeProto, consts: dict[str, np.ndarray], channels: int, label: str
) -> Quantizer:
    """FINN MultiThreshold: out = out_scale * #{x >= T[c, k]} + out_bias."""
    at = node_attrs(node)
    if str(at.get("data_layout", "NCHW")) not in ("NCHW", "NC"):
        raise TwnError(f"{label}: data_layout {at.get('data_layout')!r}; accepted: NCHW")
    t = np.asarray(consts[node.input[1]], dtype=np.float64)
    if t.ndim != 2 or t.shape[0] not in (1, channels) or not np.all(np.isfinite(t)):
        raise TwnError(f"{label}: thresholds of shape {list(t.shape)}; accepted: [1 or {channels}, n], finite")
    if np.any(np.diff(t, axis=1) < 0):
        raise TwnError(f"{label}: thresholds must be sorted per channel")
    out_scale = float(at.get("out_scale", 1.0))
    out_bias = float(at.get("out_bias", 0.0))
    if out_scale <= 0:
        raise TwnError(f"{label}: out_scale must be positive")
    for k in range(1, 9):
        step = out_scale / k
        base = out_bias / step
        if base == round(base):
            return Quantizer(
                "thresholds", step=step, code_lo=int(base), code_hi=int(base) + k * t.shape[1],
                thresholds=t.copy(), code_stride=k, source=node.name,  # T of [1, n] is shared by all channels
            )  # fmt: skip
    raise TwnError(f"{label}: out_bias {out_bias} is not a multiple of a step of out_scale {out_scale}")
