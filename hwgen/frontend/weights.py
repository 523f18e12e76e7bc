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
from hwgen.ir import WeightRounding

__all__ = ["FactoredWeights", "factor_weights", "round_weights", "signed_bits"]


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
    """The largest step s with every value an integer multiple of s, |multiple| <= limit.

    The smallest magnitude is ``k`` steps for some ``k`` in 1..limit: the
    candidates ``k`` are filtered against every magnitude at once (vectorised,
    so 16-bit limits cost no more than a few array passes), and the survivors
    are tried in increasing order (largest step first) for an exact float32
    reconstruction.
    """
    mags = np.unique(np.abs(values[values != 0]))
    if len(mags) == 0:
        return 0.0
    smallest = float(mags[0])
    ratios = mags / smallest
    if ratios[-1] > limit * (1 + 1e-6):
        return None  # the largest magnitude alone needs more than ``limit`` steps
    ks = np.arange(1, limit + 1, dtype=np.float64)
    # Largest ratios first: they reject the most candidates.
    for r in ratios[::-1]:
        if len(ks) <= 64:
            break
        x = ks * r
        ks = ks[(np.abs(x - np.round(x)) <= 1e-6 * x) & (np.round(x) <= limit)]
    if len(ks):
        x = ks[:, None] * ratios[None, :]
        ks = ks[np.all((np.abs(x - np.round(x)) <= 1e-6 * x) & (np.round(x) <= limit), axis=1)]
    for k in ks:
        step = smallest / float(k)
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


def factor_weights(
    w: np.ndarray, where: str, max_bits: int = 2, option: str | None = None, hint: str = ""
) -> FactoredWeights:
    """Split ``w`` [out, in] into integers and a per-row scale.

    ``max_bits`` is the widest signed integer accepted (2: ternary or binary
    only). Of an exact per-tensor and an exact per-channel factoring, the one
    with the narrower integers is taken (per tensor on a tie), so a
    per-channel ternary layer never becomes a per-tensor multi-bit one.
    ``where`` names the node and tensor for error messages; ``option`` is the
    flag that raises the limit (named when the weights would fit one bit
    more) and ``hint`` is appended to a refusal.
    """
    w = _finite_matrix(w, where)
    w = w + 0.0  # -0.0 becomes +0.0
    limit = (1 << (max_bits - 1)) - 1 if max_bits > 2 else 1
    accepted = (
        "ternary {-a, 0, +a} or binary {-a, +a} weights"
        if max_bits <= 2
        else f"weights that are integers of at most {max_bits} signed bits times a scale"
    )

    tensor_step = _integer_step(w, limit)
    tensor_peak = _peak(w, tensor_step)
    scale = np.zeros(w.shape[0])
    if tensor_step is not None and tensor_peak <= 1:
        scale[:] = tensor_step  # ternary or binary per tensor: nothing is narrower
    else:
        steps: list[float] = []
        failed = None
        for r in range(w.shape[0]):
            step = _integer_step(w[r], limit)
            if step is None:
                failed = r
                break
            steps.append(step)
        if failed is None:
            channel_peak = max((_peak(w[r], st) for r, st in enumerate(steps)), default=0)
            if tensor_step is not None and signed_bits(tensor_peak) <= signed_bits(channel_peak):
                scale[:] = tensor_step
            else:
                scale = np.array(steps, dtype=np.float64)
        elif tensor_step is not None:
            scale[:] = tensor_step
        else:
            r = failed
            distinct = np.unique(np.abs(w[r][w[r] != 0]))
            wider = ""
            if max_bits > 2 and _integer_step(w[r], (1 << max_bits) - 1) is not None:
                # e.g. int4 weights that use -8: b-bit weights here are symmetric, |w| <= 2**(b-1) - 1.
                raise_it = option or "--max-weight-bits (--max-final-weight-bits for the last layer)"
                wider = (
                    f"; they fit {max_bits + 1} signed bits (weights here are symmetric, |w| <= {limit} at "
                    f"{max_bits} bits): raise {raise_it}"
                )
            raise TwnError(
                f"{where}: output channel {r} has {len(distinct)} distinct weight magnitudes "
                f"({_describe(distinct)}) that are not multiples of one step within {max_bits} bits; "
                f"twngen accepts {accepted}, with one scale per tensor or per output channel{wider}{hint}"
            )
    safe = np.where(scale == 0, 1.0, scale)
    integers = np.round(w / safe[:, None]).astype(np.int64)
    assert _exact(w, integers, scale[:, None]), where
    return _factored(integers, scale)


def _peak(values: np.ndarray, step: float | None) -> int:
    """Largest integer magnitude of ``values`` at ``step`` (0 for no step or an all-zero tensor)."""
    if not step:
        return 0
    return int(np.abs(np.round(values / step)).max(initial=0))


def _factored(integers: np.ndarray, scale: np.ndarray) -> FactoredWeights:
    """Kind and width of an integer matrix; all-zero rows share a per-tensor scale."""
    scale = scale.copy()
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


def round_weights(w: np.ndarray, where: str, bits: int) -> tuple[FactoredWeights, WeightRounding]:
    """Round float weights [out, in] to ``bits``-bit signed integers times a per-output-channel scale.

    Symmetric: channel ``r``'s scale is ``max|w[r]| / (2**(bits-1) - 1)``, so
    its largest weight is exactly representable and codes stay within
    ``+-(2**(bits-1) - 1)``; values are rounded half away from zero (2 bits:
    ternary at half the channel's peak).
    """
    w = _finite_matrix(w, where)
    if not 2 <= bits <= 16:
        raise TwnError(f"{where}: --quantize-weights bits must be between 2 and 16, not {bits}")
    w = w + 0.0
    qmax = (1 << (bits - 1)) - 1
    peak = np.abs(w).max(axis=1, initial=0.0)
    scale = peak / qmax
    safe = np.where(scale == 0, 1.0, scale)
    x = w / safe[:, None]
    integers = np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -qmax, qmax).astype(np.int64)
    error = integers * scale[:, None] - w
    max_rel = float(np.max(np.abs(error).max(axis=1, initial=0.0) / np.where(peak == 0, 1.0, peak), initial=0.0))
    norm = float(np.sqrt(np.sum(w * w)))
    rms_rel = float(np.sqrt(np.sum(error * error)) / norm) if norm else 0.0
    return _factored(integers, scale), WeightRounding(bits, max_rel, rms_rel)


def _finite_matrix(w: np.ndarray, where: str) -> np.ndarray:
    """``w`` as a float64 2-D matrix of finite values, or a refusal naming ``where``."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise TwnError(f"{where}: weights must be a 2-D matrix, not shape {list(w.shape)}")
    if not np.all(np.isfinite(w)):
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise TwnError(f"{where}: {bad} weights are NaN or infinite; weights must be finite")
    return w
