"""Factor float weight matrices into small integers times per-channel scales.

A trained ternary layer arrives as floats {-a, 0, +a}; a binary one as
{-a, +a}; a low-bit fixed-point layer as multiples of a step (e.g. k/64).
``a`` (or the step) is per tensor or per output channel. The factorisation
must be exact: ``float32(integer * scale)`` reproduces every float weight bit
for bit, or the layer is refused, never approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.errors import TwnError

__all__ = ["FactoredWeights", "factor_weights", "signed_bits"]


@dataclass(frozen=True, eq=False)
class FactoredWeights:
    integers: np.ndarray  # int64 [out, in]
    scale: np.ndarray  # float64 [out]
    kind: str  # "binary", "ternary" or "int<bits>"
    per_channel: bool
    bits: int  # signed bits of the integers (2 for ternary/binary)


def signed_bits(max_abs: int) -> int:
    """Signed width of integers in [-max_abs, max_abs]."""
    return max(2, int(max_abs).bit_length() + 1)


def _describe(values: np.ndarray, limit: int = 4) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _exact(w: np.ndarray, ints: np.ndarray, scale: float | np.ndarray) -> bool:
    """Does ints * scale give back w in float32 (the precision the model stores)?"""
    return bool(np.array_equal((ints * scale).astype(np.float32), w.astype(np.float32)))


def _integer_step(values: np.ndarray, limit: int) -> float | None:
    """The largest step s with every value an integer multiple of s, |multiple| <= limit."""
    mags = np.unique(np.abs(values[values != 0]))
    if len(mags) == 0:
        return 0.0
    smallest = float(mags[0])
    for k in range(1, limit + 1):
        step = smallest / k
        ratios = mags / step
        if np.all(np.abs(ratios - np.round(ratios)) <= 1e-6 * ratios) and np.round(ratios).max() <= limit:
            ints = np.round(values / step).astype(np.int64)
            # smallest / k is rarely the exporter's float32 scale itself when no
            # weight is +-1 step (float32(k * s) / k != s): try the float32
            # values around it too.
            for candidate in _float32_neighbours(step):
                if _exact(values, ints, candidate):
                    return candidate
    return None


def _float32_neighbours(step: float) -> list[float]:
    """``step`` and the float32 values within two ulps of it, nearest first."""
    near = np.float32(step)
    up, down = np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(0))
    further = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
    return [step, *(float(v) for v in (near, up, down, *further))]


def factor_weights(w: np.ndarray, where: str, max_bits: int = 2) -> FactoredWeights:
    """Split ``w`` [out, in] into integers and a per-row scale.

    ``max_bits`` is the widest signed integer accepted (2: ternary or binary
    only). ``where`` names the node and tensor for error messages.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise TwnError(f"{where}: weights must be a 2-D matrix, not shape {list(w.shape)}")
    if not np.all(np.isfinite(w)):
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise TwnError(f"{where}: {bad} weights are NaN or infinite; weights must be finite")
    w = w + 0.0  # -0.0 becomes +0.0
    limit = (1 << (max_bits - 1)) - 1 if max_bits > 2 else 1
    accepted = (
        "ternary {-a, 0, +a} or binary {-a, +a} weights"
        if max_bits <= 2
        else f"weights that are integers of at most {max_bits} signed bits times a scale"
    )

    # Prefer ternary/binary (one magnitude per tensor, then per channel), and
    # only then wider integers: a per-channel ternary layer must not become a
    # per-tensor multi-bit one.
    scale = np.zeros(w.shape[0])
    for lim in sorted({1, limit}):
        step = _integer_step(w, lim)
        if step is not None:
            scale[:] = step
            break
        steps = [_integer_step(w[r], lim) for r in range(w.shape[0])]
        if all(st is not None for st in steps):
            scale = np.array(steps, dtype=np.float64)
            break
    else:
        r = next(r for r in range(w.shape[0]) if _integer_step(w[r], limit) is None)
        distinct = np.unique(np.abs(w[r][w[r] != 0]))
        wider = ""
        if max_bits > 2 and _integer_step(w[r], (1 << max_bits) - 1) is not None:
            # e.g. int4 weights that use -8: b-bit weights here are symmetric, |w| <= 2**(b-1) - 1.
            wider = (
                f"; they fit {max_bits + 1} signed bits (weights here are symmetric, |w| <= {limit} at "
                f"{max_bits} bits): raise --max-weight-bits (--max-final-weight-bits for the last layer)"
            )
        raise TwnError(
            f"{where}: output channel {r} has {len(distinct)} distinct weight magnitudes "
            f"({_describe(distinct)}) that are not multiples of one step within {max_bits} bits; "
            f"twngen accepts {accepted}, with one scale per tensor or per output channel{wider}"
        )
    safe = np.where(scale == 0, 1.0, scale)
    integers = np.round(w / safe[:, None]).astype(np.int64)
    assert _exact(w, integers, scale[:, None]), where
    used = scale[scale != 0]
    per_channel = len(np.unique(used)) > 1
    if not per_channel and len(used):
        scale[:] = used[0]  # all-zero rows share the tensor's scale
    peak = int(np.abs(integers).max()) if integers.size else 0
    if peak <= 1:
        kind = "binary" if integers.size and np.count_nonzero(integers) == integers.size else "ternary"
        bits = 2
    else:
        bits = signed_bits(peak)
        kind = f"int{bits}"
    return FactoredWeights(integers, scale, kind, per_channel, bits)
