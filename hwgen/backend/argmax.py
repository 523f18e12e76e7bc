"""Gateware for the optional class-index output: argmax over the last layer's codes."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.hwplan import argmax_bits, argmax_levels

__all__ = ["ArgmaxTree"]


class ArgmaxTree(wiring.Component):
    """Index of the largest of ``n`` signed values, the first one on ties (like numpy.argmax).

    A registered tree of compare-and-select nodes carrying (value, index)
    pairs: latency :func:`hwgen.hwplan.argmax_levels` cycles, free-running.

    Members
    -------
    x : In(ArrayLayout(signed(bits), n))
    y : Out(signed(argmax_bits(n)))
    """

    def __init__(self, n: int, bits: int) -> None:
        self._n, self._bits = n, bits
        super().__init__({"x": In(data.ArrayLayout(signed(bits), n)), "y": Out(signed(argmax_bits(n)))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, bits = self._n, self._bits
        ibits = argmax_bits(n)
        level: list[tuple[Value, Value]] = [(self.x[i], Const(i, signed(ibits))) for i in range(n)]
        for lvl in range(argmax_levels(n)):
            nxt: list[tuple[Value, Value]] = []
            for j in range(0, len(level), 2):
                v = Signal(signed(bits), name=f"v{lvl}_{j // 2}", reset_less=True)
                i = Signal(signed(ibits), name=f"i{lvl}_{j // 2}", reset_less=True)
                if j + 1 < len(level):
                    (va, ia), (vb, ib) = level[j], level[j + 1]
                    keep_a = va >= vb  # a holds the lower indices: first max wins
                    m.d.sync += [v.eq(Mux(keep_a, va, vb)), i.eq(Mux(keep_a, ia, ib))]
                else:
                    m.d.sync += [v.eq(level[j][0]), i.eq(level[j][1])]
                nxt.append((v, i))
            level = nxt
        assert len(level) == 1
        m.d.comb += self.y.eq(level[0][1])
        return m
