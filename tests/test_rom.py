"""hwgen.backend.rom: a constant table read by a shifted index, exact for every index and
written at its full width (no WIDTHEXPAND under ``verilator -Wall``; the form it replaced
is caught by the fuzz campaign's lint check)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from fuzz_networks import lint_findings

from hwgen.backend.rom import LEAF_INDEX_BITS, constant_bit


def _three_input_tables() -> list[int]:
    """The bit-serial three-input adder's tables (hwgen/backend/serial.py): sum bit, carry bits."""
    sums = [sum((k >> b) & 1 for b in range(3)) + (k >> 3 & 1) + 2 * (k >> 4 & 1) for k in range(32)]
    return [sum(((t >> bit) & 1) << k for k, t in enumerate(sums)) for bit in range(3)]


#: (table, index bits): the three-input adder's (the first is 0x69966996, top bit clear), a window
#: membership mask with leading zeros, an empty and a full table.
CASES = [*((t, 5) for t in _three_input_tables()), (0x54, 3), (0x2, 2), (0, 3), (0xFF, 3)]


def _split_table(bits: int) -> int:
    """Pseudo-random bits, the second 64-bit slice all zero and the third (if any) all one."""
    table = int.from_bytes(random.Random(bits).randbytes(1 << (bits - 3)), "little")
    slice_mask = (1 << 64) - 1
    return (table & ~(slice_mask << 64)) | (slice_mask << 128)


#: Tables whose index is split (more than LEAF_INDEX_BITS bits), at one and two levels.
WIDE_CASES = [(_split_table(bits), bits) for bits in (LEAF_INDEX_BITS + 2, LEAF_INDEX_BITS + 3)] + [
    ((0x5A5A << 4000) | 0x3, 2 * LEAF_INDEX_BITS + 1)
]


class _Table(wiring.Component):
    def __init__(self, table: int, bits: int, before_the_fix: bool = False) -> None:
        self._table, self._before = table, before_the_fix
        super().__init__({"index": In(bits), "bit": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        if self._before:
            # What serial.py wrote before constant_bit: the constant at its nominal width.
            m.d.comb += self.bit.eq((Const(self._table, 1 << len(self.index)) >> self.index)[0])
        else:
            m.d.comb += self.bit.eq(constant_bit(self._table, self.index))
        return m


@pytest.mark.parametrize(
    "table, bits", CASES + WIDE_CASES, ids=[f"{t:#x}"[:12] + f"-{b}" for t, b in CASES + WIDE_CASES]
)
def test_every_index_reads_its_bit(table, bits):
    dut = _Table(table, bits)
    seen = []

    async def bench(ctx):  # type: ignore[no-untyped-def]
        for i in range(1 << bits):
            ctx.set(dut.index, i)
            seen.append(ctx.get(dut.bit))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(table >> i) & 1 for i in range(1 << bits)]


def _lint(tmp_path, dut: _Table) -> list[str]:
    path = tmp_path / "table.v"
    path.write_text(verilog.convert(dut, name="table", emit_src=False))
    return lint_findings([path], top="table")


@pytest.mark.parametrize(
    "table, bits", CASES + WIDE_CASES, ids=[f"{t:#x}"[:12] + f"-{b}" for t, b in CASES + WIDE_CASES]
)
def test_the_table_is_lint_clean(tmp_path, table, bits):
    assert _lint(tmp_path, _Table(table, bits)) == []


def test_the_lint_check_catches_the_table_before_the_fix(tmp_path):
    """The check can fail: 0x69966996 at 32 bits, as serial.py wrote it, becomes 31'h69966996 >> i."""
    findings = _lint(tmp_path, _Table(_three_input_tables()[0], 5, before_the_fix=True))
    assert len(findings) == 1 and "WIDTHEXPAND" in findings[0] and "SHIFTR" in findings[0], findings
    assert "31'h69966996" in findings[0]


@pytest.mark.parametrize("bits", [LEAF_INDEX_BITS + 3, 2 * LEAF_INDEX_BITS + 1])
def test_a_wide_table_has_no_shifter_as_wide_as_itself(bits):
    """A split index: no shifted operand wider than a leaf (plus the guard bit) in the Verilog."""
    text = verilog.convert(_Table((1 << (1 << bits)) - 1, bits), name="table", emit_src=False)
    widths = [int(w) for w in re.findall(r"(\d+)'h[0-9a-f]+ >>", text)]
    assert widths and max(widths) <= (1 << LEAF_INDEX_BITS) + 1, widths


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
@pytest.mark.parametrize("table, bits", WIDE_CASES, ids=[f"{bits}-bit-index" for _, bits in WIDE_CASES])
def test_a_split_table_reads_every_bit_in_icarus(tmp_path, table, bits):
    """The Verilog of a split table, simulated by Icarus from time zero: every index reads its bit."""
    (tmp_path / "rom.v").write_text(verilog.convert(_Table(table, bits), name="rom", emit_src=False))
    (tmp_path / "tb.v").write_text(
        "module tb;\n"
        f"  reg [{bits - 1}:0] index = 0;\n"
        "  wire bit_;\n"
        "  rom dut(.index(index), .\\bit (bit_));\n"  # `bit` is a SystemVerilog keyword
        "  integer i;\n"
        "  initial begin\n"
        f'    for (i = 0; i < {1 << bits}; i = i + 1) begin index = i; #1 $write("%b", bit_); end\n'
        '    $display("");\n'
        "  end\n"
        "endmodule\n"
    )
    sim = tmp_path / "sim.vvp"
    subprocess.run(
        ["iverilog", "-g2012", "-o", str(sim), str(tmp_path / "rom.v"), str(tmp_path / "tb.v")],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(["vvp", "-n", str(sim)], check=True, capture_output=True, text=True).stdout
    assert out.split()[0] == "".join(str((table >> i) & 1) for i in range(1 << bits))
