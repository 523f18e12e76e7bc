"""Integer widths shared by every IR module (no IR imports: the bottom of the IR's import graph)."""

from __future__ import annotations

from typing import Any

__all__ = ["signed_bits_for_range", "wrap_range", "wrap_signed"]


def signed_bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


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
