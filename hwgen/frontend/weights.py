"""Factor float weight matrices into small integers times per-channel scales.

A trained ternary layer arrives as floats {-a, 0, +a}; a binary one as
{-a, +a}; ``a`` is per tensor or per output channel. The factorisation must be
exact: ``integer * scale`` reproduces every float weight bit for bit, or the
layer is refused, never approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.errors import TwnError

__all__ = ["FactoredWeights", "factor_weights"]


@dataclass(frozen=True, eq=False)
class FactoredWeights:
    integers: np.ndarray  # int64 [out, in]
    scale: np.ndarray  # float64 [out]
    kind: str  # "ternary" or "binary"
    per_channel: bool


def _describe(values: np.ndarray, limit: int = 4) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def factor_weights(w: np.ndarray, where: str) -> FactoredWeights:
    """Split ``w`` [out, in] into sign integers and a per-row magnitude.

    ``where`` names the node and tensor for error messages.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise TwnError(f"{where}: weights must be a 2-D matrix, not shape {list(w.shape)}")
    if not np.all(np.isfinite(w)):
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise TwnError(f"{where}: {bad} weights are NaN or infinite; weights must be finite")
    w = w + 0.0  # -0.0 becomes +0.0
    mag = np.abs(w)
    scale = np.zeros(w.shape[0], dtype=np.float64)
    for r in range(w.shape[0]):
        distinct = np.unique(mag[r][mag[r] != 0])
        if len(distinct) > 1:
            raise TwnError(
                f"{where}: output channel {r} has {len(distinct)} distinct weight magnitudes "
                f"({_describe(distinct)}); twngen accepts ternary {{-a, 0, +a}} or binary "
                "{-a, +a} weights with one magnitude a per tensor or per output channel"
            )
        if len(distinct) == 1:
            scale[r] = distinct[0]
    integers = np.sign(w).astype(np.int64)
    # Exactness check: the factorisation must give back the float weights.
    assert np.array_equal(integers * scale[:, None], w), where
    used = scale[scale != 0]
    per_channel = len(np.unique(used)) > 1
    if not per_channel and len(used):
        # One magnitude for the whole tensor: give all-zero rows the same
        # scale too, so the layer reads as per-tensor.
        scale[:] = used[0]
    kind = "binary" if w.size and np.count_nonzero(integers) == w.size else "ternary"
    return FactoredWeights(integers, scale, kind, per_channel)
