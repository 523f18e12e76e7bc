"""Integer widths shared by every IR module (no IR imports: the bottom of the IR's import graph)."""

from __future__ import annotations

from typing import Any

__all__ = ["signed_bits_for_range", "wrap_range", "wrap_signed"]


def signed_bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    # b bits hold hi >= 0 when hi < 2**(b-1), and lo < 0 when -lo - 1 < 2**(b-1): closed form,
    # since the schedule asks this of every node of every candidate (millions of calls).
    lo, hi = int(lo), int(hi)
    return 1 + max(hi.bit_length() if hi > 0 else 0, (-lo - 1).bit_length() if lo < 0 else 0)


def wrap_signed(values: Any, bits: int) -> Any:
    """``values`` modulo ``2**bits`` as signed ``bits``-bit two's-complement numbers (what a
    ``bits``-bit register keeps of an integer). Works on ints and on int64/object arrays."""
    half = 1 << (bits - 1)
    return ((values + half) % (1 << bits)) - half


def wrap_range(lo: int, hi: int, bits: int) -> tuple[int, int]:
    """The interval of ``wrap_signed(v, bits)`` for v in ``[lo, hi]``: itself when it fits,
    the whole ``bits``-bit range when it does not."""
    if -(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1:
        return lo, hi
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
