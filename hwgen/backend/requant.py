"""Gateware for per-channel requantisation: multiply, offset, shift, clamp."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.ir import Requant
from hwgen.plan.dense import LayerPlan

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """``clamp((x[i] * M[i] + C[i]) >> shift)`` per channel, two cycles of latency.

    A layer whose output is a graph quantiser's codes uses integer
    thresholds instead (see :meth:`_elaborate_thresholds`), same latency.

    ``M[i]`` is the layer's requant multiplier with the adder-graph output's
    sign and shift folded in, so the result equals the golden model's
    requantisation of the true accumulator. Cycle 1 registers the product
    (a DSP multiply with its output register); cycle 2 adds the offset
    (bias and rounding), shifts arithmetically and saturates.

    Members
    -------
    x : In(ArrayLayout(signed(in_bits), n))
        Adder-graph output values.
    y : Out(ArrayLayout(signed(out_bits), n))
        Output codes of the layer's output format.
    """

    def __init__(self, plan: LayerPlan, in_bits: int) -> None:
        self._plan = plan
        n = len(plan.graph.outputs)
        super().__init__(
            {
                "x": In(data.ArrayLayout(signed(in_bits), n)),
                "y": Out(data.ArrayLayout(signed(plan.out_bits), n)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        if self._plan.thresholds is not None:
            return self._elaborate_thresholds()
        m = Module()
        plan = self._plan
        rq = plan.layer.requant
        assert isinstance(rq, Requant)
        lo = 0 if rq.relu else rq.out.lo
        hi = rq.out.hi
        for i, mult in enumerate(plan.effective_multipliers):
            out = Signal(signed(plan.out_bits), name=f"q{i}", reset_less=True)
            if mult == 0:
                # Constant output (all-zero row or zero scale): no arithmetic.
                value = min(max(rq.offset[i] >> rq.shift[i], lo), hi)
                m.d.sync += out.eq(value)
            else:
                product = Signal(signed(plan.product_bits[i]), name=f"p{i}", reset_less=True)
                m.d.sync += product.eq(self.x[i] * Const(mult))
                total = Signal(signed(plan.sum_bits[i]), name=f"s{i}")
                m.d.comb += total.eq(product + Const(rq.offset[i]))
                shifted = total >> rq.shift[i]
                m.d.sync += out.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
            m.d.comb += self.y[i].eq(out)
        return m

    def _elaborate_thresholds(self) -> Module:
        """Cycle 1 registers the accumulator (sign and shift applied); cycle 2
        compares it with the channel's integer thresholds and registers
        ``base + stride * (number passed)``."""
        m = Module()
        plan = self._plan
        rq = plan.thresholds
        assert rq is not None
        for i, mult in enumerate(plan.effective_multipliers):
            out = Signal(signed(plan.out_bits), name=f"q{i}", reset_less=True)
            if mult == 0:
                m.d.sync += out.eq(int(rq.apply(np.zeros((1, len(rq.base)), dtype=np.int64))[0, i]))
            else:
                acc = Signal(signed(plan.product_bits[i]), name=f"acc{i}", reset_less=True)
                m.d.sync += acc.eq(self.x[i] * Const(mult))
                passed = [(acc >= t) if rq.rising[i] else (acc <= t) for t in rq.thresholds[i]]
                count = sum(passed, Const(0, range(len(passed) + 1)))
                m.d.sync += out.eq(rq.base[i] + rq.stride * count)
            m.d.comb += self.y[i].eq(out)
        return m
