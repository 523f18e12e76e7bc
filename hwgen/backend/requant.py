"""Gateware for requantisation: multiply, offset, shift, clamp; per channel or shared in time."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.backend.rom import constant_table
from hwgen.backend.serial import mux_tree
from hwgen.ir import Requant
from hwgen.plan.dense import SHARED_REQUANT_LATENCY, LayerPlan

__all__ = ["Requantizer", "SharedRequantizer", "constant_table"]


def requant_input(m: Module, plan: LayerPlan, i: int, x: Value) -> Value:
    """Output ``i``'s value as the requantiser multiplies it.

    Usually the adder graph's output value itself (its sign and shift are in the effective
    multiplier). A wrapped output (:attr:`LayerPlan.wrapped`) takes them within the word
    instead: ``(±x << shift)`` kept to ``wrap_bits`` bits is the accumulator modulo the word
    exactly, where ``-x`` times a multiplier would differ when ``x`` is the word's most
    negative value. A shift is wiring; a sign costs one subtraction of the word.
    """
    if not plan.wrapped[i]:
        return x
    out = plan.graph.outputs[i]
    assert out is not None
    word = Signal(signed(plan.layer.wrap_bits), name=f"word{i}")
    value = x << out.shift if out.shift else x
    m.d.comb += word.eq(-value if out.negate else value)
    return word


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
                m.d.sync += product.eq(requant_input(m, plan, i, self.x[i]) * Const(mult))
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
                m.d.sync += acc.eq(requant_input(m, plan, i, self.x[i]) * Const(mult))
                passed = [(acc >= t) if rq.rising[i] else (acc <= t) for t in rq.thresholds[i]]
                count = sum(passed, Const(0, range(len(passed) + 1)))
                m.d.sync += out.eq(rq.base[i] + rq.stride * count)
            m.d.comb += self.y[i].eq(out)
        return m


class SharedRequantizer(wiring.Component):
    """Requantisers shared in time: ``plan.shared_units``, each serving its channels one per cycle.

    With ``strobe`` high, the adder graph's outputs on ``x`` are registered
    into a bank; in the following ``plan.requant_slots`` cycles each unit
    selects its slot's channel from the bank with that channel's effective
    multiplier, offset and shift (constant tables indexed by the slot
    counter), multiplies (a DSP), adds the offset, shifts and clamps, and
    writes the code into the channel's output register. All of ``y`` holds
    the vector's codes ``plan.requant_latency`` (``requant_slots + 3``) cycles
    after ``strobe`` and keeps them until the next vector's first slot is
    written, four cycles after its ``strobe``; strobes must be at least
    ``requant_slots`` cycles apart. Channels with a zero multiplier are
    constants, as in :class:`Requantizer`. Same arithmetic, bit for bit.

    Members
    -------
    x : In(ArrayLayout(signed(in_bits), n))
        Adder-graph output values, sampled with ``strobe``.
    strobe : In(1)
        ``x`` holds a new vector.
    y : Out(ArrayLayout(signed(out_bits), n))
        Output codes of the layer's output format.
    """

    def __init__(self, plan: LayerPlan, in_bits: int) -> None:
        assert plan.shared_units, "SharedRequantizer needs a layer with shared requantisers"
        self._plan = plan
        n = len(plan.graph.outputs)
        super().__init__(
            {
                "x": In(data.ArrayLayout(signed(in_bits), n)),
                "strobe": In(1),
                "y": Out(data.ArrayLayout(signed(plan.out_bits), n)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self._plan
        rq = plan.layer.requant
        assert isinstance(rq, Requant)
        lo = 0 if rq.relu else rq.out.lo
        hi = rq.out.hi
        slots = plan.requant_slots
        assert plan.requant_latency == slots + SHARED_REQUANT_LATENCY
        outs = []
        for i, mult in enumerate(plan.effective_multipliers):
            out = Signal(signed(plan.out_bits), name=f"q{i}", reset_less=True)
            if mult == 0:
                m.d.sync += out.eq(min(max(rq.offset[i] >> rq.shift[i], lo), hi))
            m.d.comb += self.y[i].eq(out)
            outs.append(out)

        # The slot counter runs 0 .. slots - 1 in the cycles after a strobe.
        slot = Signal(range(max(slots, 2)), name="slot")
        busy = Signal(name="busy")
        with m.If(self.strobe):
            m.d.sync += [busy.eq(1), slot.eq(0)]
        with m.Elif(busy):
            m.d.sync += slot.eq(slot + 1)
            with m.If(slot == slots - 1):
                m.d.sync += busy.eq(0)
        # Slot and strobe carried beside the select and multiply stages.
        slot1, slot2 = (Signal.like(slot, name=f"slot{k}", reset_less=True) for k in (1, 2))
        v1, v2 = Signal(name="busy1"), Signal(name="busy2")
        m.d.sync += [slot1.eq(slot), slot2.eq(slot1), v1.eq(busy), v2.eq(v1)]

        for u, unit in enumerate(plan.shared_units):
            bank = []
            for ch in unit.channels:
                reg = Signal(signed(plan.requant_input_bits(ch)), name=f"bank{ch}", reset_less=True)
                with m.If(self.strobe):
                    m.d.sync += reg.eq(requant_input(m, plan, ch, self.x[ch]))
                bank.append(reg)
            mults = [plan.effective_multipliers[ch] for ch in unit.channels]
            offsets = [rq.offset[ch] for ch in unit.channels]
            shifts = [rq.shift[ch] - unit.shift_lo for ch in unit.channels]
            # Stage 1: the slot's value and constants.
            value = Signal(signed(unit.value_bits), name=f"u{u}_value", reset_less=True)
            mult = Signal(signed(unit.mult_bits), name=f"u{u}_mult", reset_less=True)
            offset = Signal(signed(unit.offset_bits), name=f"u{u}_offset", reset_less=True)
            shift = Signal(range(max(2, 1 << unit.shift_bits)), name=f"u{u}_shift", reset_less=True)
            m.d.sync += [
                value.eq(mux_tree(bank, slot) if len(bank) > 1 else bank[0]),
                mult.eq(constant_table(mults, unit.mult_bits, slot)),
                offset.eq(constant_table(offsets, unit.offset_bits, slot)),
                shift.eq(constant_table(shifts, len(shift) + 1, slot)),
            ]
            # Stage 2: the product (a DSP multiply), offset and shift carried along.
            product = Signal(signed(unit.product_bits), name=f"u{u}_product", reset_less=True)
            offset2 = Signal.like(offset, name=f"u{u}_offset2", reset_less=True)
            shift2 = Signal.like(shift, name=f"u{u}_shift2", reset_less=True)
            m.d.sync += [product.eq(value * mult), offset2.eq(offset), shift2.eq(shift)]
            # Stage 3: offset, arithmetic shift, clamp, into the slot's channel.
            total = Signal(signed(unit.sum_bits), name=f"u{u}_sum")
            m.d.comb += total.eq(product + offset2)
            shifted = total >> unit.shift_lo
            if unit.shift_bits:
                shifted = shifted >> shift2
            code = Signal(signed(plan.out_bits), name=f"u{u}_code")
            m.d.comb += code.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
            for j, ch in enumerate(unit.channels):
                with m.If(v2 & ((slot2 == j) if j else ~slot2.any())):  # not `== 0`: lint-clean
                    m.d.sync += outs[ch].eq(code)
        return m
