"""Constant lookup tables as shifted constants: one bit of a constant chosen by an index."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Value

__all__ = ["constant_bit", "constant_table"]


def constant_bit(table: int, index: Value) -> Value:
    """Bit ``index`` of the constant ``table`` (unsigned ``index``; bits at or above
    ``2**len(index)`` are ignored): a ROM of LUTs, combinational.

    Written as ``(table >> index)[0]`` rather than an ``Array`` of constants, which
    becomes a ``case`` in an ``always @*`` block that Icarus does not evaluate before
    the index first changes. The constant carries one guard bit, set, just above the
    last bit the index can reach: without it Yosys trims the constant's leading zero
    bits, and the Verilog shifts a narrower constant than its result
    (``31'h69966996 >> i`` into 32 bits), which ``verilator -Wall`` reports as
    WIDTHEXPAND. The guard bit is never selected, so the value is unchanged.
    """
    size = 1 << len(index)
    table &= (1 << size) - 1
    return (Const(table | (1 << size), size + 1) >> index)[0]


def constant_table(values: tuple[int, ...] | list[int], bits: int, index: Value) -> Value:
    """``values[index]`` as a signed ``bits``-bit value: one :func:`constant_bit` mask per
    output bit (a ROM of LUTs; indices past the end read 0)."""
    size = 1 << len(index)
    mask = (1 << bits) - 1
    words = [(v & mask) for v in values] + [0] * (size - len(values))
    out = []
    for b in range(bits):
        column = sum(1 << k for k, w in enumerate(words) if (w >> b) & 1)
        out.append(constant_bit(column, index))
    return Cat(*out).as_signed()
