"""Integer widths shared by every IR module (no IR imports: the bottom of the IR's import graph)."""

from __future__ import annotations

__all__ = ["signed_bits_for_range"]


def signed_bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits
