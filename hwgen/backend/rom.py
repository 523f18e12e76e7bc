"""Constant lookup tables as shifted constants: one bit of a constant chosen by an index."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Value

__all__ = ["LEAF_INDEX_BITS", "constant_bit", "constant_table"]


#: Index bits one shifted constant takes; wider indices are split (see :func:`constant_bit`).
LEAF_INDEX_BITS = 6


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

    An index of more than :data:`LEAF_INDEX_BITS` bits is split: its low bits pick a
    bit of each ``2**LEAF_INDEX_BITS``-bit slice of the table, its high bits one of
    those. Same value, but no shifter as wide as the whole table: a shift's result is
    as wide as its operand, so a 512-entry table would be a 513-bit shifter of which
    one bit is used, quadratic in the table's size in Amaranth's netlist (its
    combinational-loop check walks every input bit of every output bit) and a wide
    word in Verilator's C++.
    """
    bits = len(index)
    size = 1 << bits
    table &= (1 << size) - 1
    if bits <= LEAF_INDEX_BITS:
        return (Const(table | (1 << size), size + 1) >> index)[0]
    leaf = 1 << LEAF_INDEX_BITS
    low, high = index[:LEAF_INDEX_BITS], index[LEAF_INDEX_BITS:]
    slices = [constant_bit((table >> (k * leaf)) & ((1 << leaf) - 1), low) for k in range(size // leaf)]
    return _select_bit(slices, high)


def _select_bit(bits: list[Value], index: Value) -> Value:
    """``bits[index]`` for ``len(bits) == 2**len(index)`` one-bit values, as shifts of at
    most ``2**LEAF_INDEX_BITS`` bits (``(Cat(...) >> index)[0]``, lint-clean: the shift is as
    wide as its operand)."""
    if len(index) <= LEAF_INDEX_BITS:
        return (Cat(*bits) >> index)[0]
    leaf = 1 << LEAF_INDEX_BITS
    low, high = index[:LEAF_INDEX_BITS], index[LEAF_INDEX_BITS:]
    return _select_bit([_select_bit(bits[k : k + leaf], low) for k in range(0, len(bits), leaf)], high)


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
