"""Gateware for dense layers with weights in memory: element streams, shared adders, one requantiser."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.backend.rom import constant_table
from hwgen.backend.serial import padded_select
from hwgen.plan.frames import MAC_LATENCY, MacStage, SerializeStage

__all__ = ["MacDenseLayer", "Serializer"]


class Serializer(wiring.Component):
    """A beat of ``per_beat`` values out one value per cycle.

    Value ``k`` of a beat that arrives (``i_valid``) in cycle ``t`` leaves
    with ``o_valid`` in cycle ``t + 1 + k``. Beats must be at least
    ``per_beat`` cycles apart.
    """

    def __init__(self, stage: SerializeStage) -> None:
        self._stage = stage
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(data.ArrayLayout(signed(stage.bits), stage.per_beat)),
                "o_valid": Out(1),
                "o_data": Out(signed(stage.bits)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n = self._stage.per_beat
        bank = Signal.like(self.i_data, reset_less=True, name="bank")
        index = Signal(range(max(n, 2)), name="index")
        busy = Signal(name="busy")
        with m.If(self.i_valid):
            m.d.sync += [bank.eq(self.i_data), index.eq(0), busy.eq(1)]
        with m.Elif(busy):
            m.d.sync += index.eq(index + 1)
            with m.If(index == n - 1):
                m.d.sync += busy.eq(0)
        m.d.comb += [self.o_valid.eq(busy), self.o_data.eq(padded_select([bank[k] for k in range(n)], index))]
        return m


class MacDenseLayer(wiring.Component):
    """A dense layer applied one input element per cycle, weights read from memory.

    Element ``a`` of a frame (its ``a``-th ``i_valid``) is input column
    ``stage.order[a]``; memory row ``a`` holds that column, so each output's
    accumulator adds ``w * x`` (a ternary weight is an add, a subtract or
    nothing; wider weights multiply). When a frame's last element is in,
    the accumulators are copied to a shadow bank and leave one per cycle
    through a single requantiser (multiply, offset, shift, clamp with the
    channel's constants), so the next frame accumulates meanwhile: output
    ``i`` of a frame whose last element arrived in cycle ``t`` leaves in cycle
    ``t + MAC_LATENCY + i``.

    Members
    -------
    i_valid, i_data : In(1), In(signed(in_bits))
    o_valid, o_data : Out(1), Out(signed(out_bits))
    """

    def __init__(self, stage: MacStage) -> None:
        self._stage = stage
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(signed(stage.in_bits)),
                "o_valid": Out(1),
                "o_data": Out(signed(stage.out_bits)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        layer = st.layer
        n_in, n_out = layer.in_features, layer.out_features
        wb = st.weight_bits
        mask = (1 << wb) - 1
        rows = []
        for col in st.order:
            word = 0
            for i in range(n_out):
                word |= (int(layer.weights[i, col]) & mask) << (i * wb)
            rows.append(word)
        m.submodules.weights = mem = Memory(shape=wb * n_out, depth=n_in, init=rows)
        rd = mem.read_port()

        # Cycle t: element arrives, its row is read. t+1: accumulate. t+2: shadow.
        addr = Signal(range(max(n_in, 2)), name="element_index")
        with m.If(self.i_valid):
            m.d.sync += addr.eq(Mux(addr == n_in - 1, 0, addr + 1))
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(1)]
        x1 = Signal(signed(st.in_bits), name="x1", reset_less=True)
        v1, first1, last1 = Signal(name="v1"), Signal(name="first1"), Signal(name="last1")
        m.d.sync += [x1.eq(self.i_data), v1.eq(self.i_valid), first1.eq(~addr.any()), last1.eq(addr == n_in - 1)]
        row = data.View(data.ArrayLayout(signed(wb), n_out), rd.data)

        done = Signal(name="frame_done")
        m.d.sync += done.eq(v1 & last1)
        shadow = []
        for i in range(n_out):
            acc = Signal(signed(st.acc_bits[i]), name=f"acc{i}", reset_less=True)
            w = row[i]
            if st.ternary:
                term: Value = Mux(w.any(), Mux(w[-1], -x1, x1), 0)
            else:
                term = w * x1
            with m.If(v1):
                m.d.sync += acc.eq(Mux(first1, 0, acc) + term)
            sh = Signal(signed(st.acc_bits[i]), name=f"shadow{i}", reset_less=True)
            with m.If(done):
                m.d.sync += sh.eq(acc)
            shadow.append(sh)

        # Output: one accumulator per cycle through the shared requantiser.
        rq = layer.requant
        index = Signal(range(max(n_out, 2)), name="out_index")
        busy = Signal(name="out_busy")
        with m.If(done):
            m.d.sync += [busy.eq(1), index.eq(0)]
        with m.Elif(busy):
            m.d.sync += index.eq(index + 1)
            with m.If(index == n_out - 1):
                m.d.sync += busy.eq(0)
        # Stage 1: select the value and the channel's constants.
        value = Signal(signed(max(st.acc_bits)), name="value", reset_less=True)
        mult = Signal(signed(st.mult_bits), name="mult", reset_less=True)
        offset = Signal(signed(st.offset_bits), name="offset", reset_less=True)
        shift = Signal(range(max(2, max(rq.shift) + 1)), name="shift", reset_less=True)
        v_s1 = Signal(name="v_s1")
        m.d.sync += [
            value.eq(padded_select(shadow, index)),
            mult.eq(constant_table(rq.multiplier, st.mult_bits, index)),
            offset.eq(constant_table(rq.offset, st.offset_bits, index)),
            shift.eq(constant_table(rq.shift, len(shift) + 1, index)),
            v_s1.eq(busy),
        ]
        # Stage 2: product (a DSP multiply); offset and shift carried along.
        product = Signal(signed(st.product_bits), name="product", reset_less=True)
        offset2 = Signal.like(offset, name="offset2", reset_less=True)
        shift2 = Signal.like(shift, name="shift2", reset_less=True)
        v_s2 = Signal(name="v_s2")
        m.d.sync += [product.eq(value * mult), offset2.eq(offset), shift2.eq(shift), v_s2.eq(v_s1)]
        # Stage 3: offset, arithmetic shift, clamp.
        total = Signal(signed(st.product_bits + 1), name="total")
        m.d.comb += total.eq(product + offset2)
        shifted = total >> shift2
        lo = 0 if rq.relu else rq.out.lo
        hi = rq.out.hi
        out = Signal(signed(st.out_bits), name="code", reset_less=True)
        v_out = Signal(name="v_out")
        m.d.sync += [out.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted))), v_out.eq(v_s2)]
        m.d.comb += [self.o_valid.eq(v_out), self.o_data.eq(out)]
        assert MAC_LATENCY == 6  # done +1, busy +1, stage 1, 2, 3 (see MacStage)
        return m
