"""Gateware for dense layers with weights in memory: element streams, shared adders, one requantiser."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetSignal, Shape, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.backend.rom import constant_table
from hwgen.backend.serial import mux_tree
from hwgen.plan.frames import MAC_LATENCY, MacStage, SerializeStage

__all__ = ["LanedMacDenseLayer", "MacDenseLayer", "Serializer", "mac_layer"]


def _output_counter(m: Module, done: Value, n: int) -> tuple[Signal, Signal]:
    """``out_index`` counting 0 .. n - 1 in the cycles after ``done``, and ``out_busy`` while it does."""
    index = Signal(range(max(n, 2)), name="out_index")
    busy = Signal(name="out_busy")
    with m.If(done):
        m.d.sync += [busy.eq(1), index.eq(0)]
    with m.Elif(busy):
        m.d.sync += index.eq(index + 1)
        with m.If(index == n - 1):
            m.d.sync += busy.eq(0)
    return index, busy


def _accumulate(
    m: Module, acc: Signal, term: Value, valid: Value, done: Value, restart: Value, name: str, *, negated: bool = False
) -> Signal:
    """``acc`` adds ``term`` each ``valid`` cycle; in the ``done`` one (the frame's last element)
    the sum goes to the returned shadow register instead, and ``acc`` starts again from 0 when
    ``restart`` (``done`` or reset).

    The restart is a synchronous reset of the accumulator's flip-flops (free on FPGA flip-flops),
    not a multiplexer in front of the adder: ``(first ? 0 : acc) + term`` leaves the carry chain
    no plain register bit for its generate input and costs two LUTs per bit, where ``acc + term``
    with the term's select folded into the sum's LUT costs one. That needs the accumulator, not
    the term, on the carry chain's generate input, which Yosys chooses freely between the operands
    of an addition; ``negated`` terms are subtracted (``acc - term``), whose minuend it keeps
    there. The reset is part of ``restart`` so that a 4-state simulator starts the accumulator
    from 0, not X.
    """
    total = Signal(acc.shape(), name=f"{name}_sum")
    m.d.comb += total.eq(acc - term if negated else acc + term)
    shadow = Signal(acc.shape(), name=f"{name}_shadow", reset_less=True)
    with m.If(restart):
        m.d.sync += acc.eq(0)
    with m.Elif(valid):
        m.d.sync += acc.eq(total)
    with m.If(done):
        m.d.sync += shadow.eq(total)
    return shadow


class Serializer(wiring.Component):
    """A beat of ``per_beat`` values out ``lanes`` values per cycle.

    Value ``j * lanes + l`` of a beat that arrives (``i_valid``) in cycle ``t``
    leaves in lane ``l`` with ``o_valid`` in cycle ``t + 1 + j``. Beats must be
    at least ``per_beat / lanes`` cycles apart. ``o_data`` is one value
    (``signed(bits)``) for one lane, an array of ``lanes`` values otherwise.
    """

    def __init__(self, stage: SerializeStage) -> None:
        self._stage = stage
        out = signed(stage.bits) if stage.lanes == 1 else data.ArrayLayout(signed(stage.bits), stage.lanes)
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(data.ArrayLayout(signed(stage.bits), stage.per_beat)),
                "o_valid": Out(1),
                "o_data": Out(out),
            }
        )

    def elaborate(self, platform: object) -> Module:
        if self._stage.lanes > 1:
            return self._elaborate_lanes()
        m = Module()
        n = self._stage.per_beat
        bank, index, busy = self._beats(m, n)
        m.d.comb += [self.o_valid.eq(busy), self.o_data.eq(mux_tree([bank[k] for k in range(n)], index))]
        return m

    def _beats(self, m: Module, n: int) -> tuple[Signal, Signal, Signal]:
        """The vector registered on ``i_valid`` and a beat counter over its ``n`` beats after it."""
        bank = Signal.like(self.i_data, reset_less=True, name="bank")
        index = Signal(range(max(n, 2)), name="index")
        busy = Signal(name="busy")
        with m.If(self.i_valid):
            m.d.sync += [bank.eq(self.i_data), index.eq(0), busy.eq(1)]
        with m.Elif(busy):
            m.d.sync += index.eq(index + 1)
            with m.If(index == n - 1):
                m.d.sync += busy.eq(0)
        return bank, index, busy

    def _elaborate_lanes(self) -> Module:
        m = Module()
        lanes, n = self._stage.lanes, self._stage.out_beats
        bank, index, busy = self._beats(m, n)
        m.d.comb += self.o_valid.eq(busy)
        for lane in range(lanes):
            m.d.comb += self.o_data[lane].eq(mux_tree([bank[j * lanes + lane] for j in range(n)], index))
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

        # Cycle t: element arrives, its row is read. t+1: accumulate (the last one into the shadow).
        addr = Signal(range(max(n_in, 2)), name="element_index")
        with m.If(self.i_valid):
            m.d.sync += addr.eq(Mux(addr == n_in - 1, 0, addr + 1))
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(1)]
        x1 = Signal(signed(st.in_bits), name="x1", reset_less=True)
        v1, last1 = Signal(name="v1"), Signal(name="last1")
        m.d.sync += [x1.eq(self.i_data), v1.eq(self.i_valid), last1.eq(addr == n_in - 1)]
        row = data.View(data.ArrayLayout(signed(wb), n_out), rd.data)

        done, restart = Signal(name="frame_done"), Signal(name="restart")
        m.d.comb += [done.eq(v1 & last1), restart.eq(done | ResetSignal())]
        shadow = []
        # -x1 once for every output (an expression would be a negator per output in the Verilog).
        # Both as wide as the accumulators: a narrower select, sign-extended into the sum, leaves
        # Yosys a separate LUT per bit for the select instead of folding it into the sum's LUT.
        if st.ternary:
            word = max(max(st.acc_bits), st.in_bits + 1)
            x1_wide, neg_x1 = Signal(signed(word), name="x1_wide"), Signal(signed(word), name="neg_x1")
            m.d.comb += [x1_wide.eq(x1), neg_x1.eq(-x1)]
        for i in range(n_out):
            acc = Signal(signed(st.acc_bits[i]), name=f"acc{i}", reset_less=True)
            w = row[i]
            if st.ternary:
                # Subtracted (see _accumulate): -w * x1.
                term: Value = Mux(w.any(), Mux(w[-1], x1_wide, neg_x1), 0)
            else:
                term = w * x1
            shadow.append(_accumulate(m, acc, term, v1, done, restart, f"acc{i}", negated=st.ternary))

        # Output: one accumulator per cycle through the shared requantiser.
        rq = layer.requant
        index, busy = _output_counter(m, done, n_out)
        # Stage 1: select the value and the channel's constants.
        value = Signal(signed(max(st.acc_bits)), name="value", reset_less=True)
        mult = Signal(signed(st.mult_bits), name="mult", reset_less=True)
        offset = Signal(signed(st.offset_bits), name="offset", reset_less=True)
        shift = Signal(range(max(2, max(rq.shift) + 1)), name="shift", reset_less=True)
        v_s1 = Signal(name="v_s1")
        m.d.sync += [
            value.eq(mux_tree(shadow, index)),
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
        total = Signal(signed(max(st.product_bits, st.offset_bits) + 1), name="total")
        m.d.comb += total.eq(product + offset2)
        shifted = total >> shift2
        lo = 0 if rq.relu else rq.out.lo
        hi = rq.out.hi
        out = Signal(signed(st.out_bits), name="code", reset_less=True)
        v_out = Signal(name="v_out")
        m.d.sync += [out.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted))), v_out.eq(v_s2)]
        m.d.comb += [self.o_valid.eq(v_out), self.o_data.eq(out)]
        assert MAC_LATENCY == 5  # input +1, out_busy +1, stage 1, 2, 3 (see MacStage)
        return m


class LanedMacDenseLayer(wiring.Component):
    """A dense layer with weights in memory taking ``stage.lanes`` input elements per cycle and
    giving ``stage.out_lanes`` outputs per cycle.

    Input beat ``b`` of a frame (its ``b``-th ``i_valid``) carries elements
    ``b * lanes + l`` (lane ``l``), element ``a`` being input column
    ``stage.order[a]``; memory row ``b`` holds the ``lanes`` columns side by
    side, and each output's accumulator adds the ``lanes`` products (signed
    selects of a ternary weight) through an adder tree in the same cycle.
    When a frame's last beat is in, the accumulators are copied to a shadow
    bank and leave ``out_lanes`` per cycle, one requantiser per lane (output
    ``j * out_lanes + l`` in lane ``l`` of output beat ``j``), so the next frame
    accumulates meanwhile: output beat ``j`` of a frame whose last beat arrived
    in cycle ``t`` leaves in cycle ``t + MAC_LATENCY + j``, as in
    :class:`MacDenseLayer`.

    Members
    -------
    i_valid, i_data : In(1), In(ArrayLayout(signed(in_bits), lanes))
    o_valid, o_data : Out(1), Out(ArrayLayout(signed(out_bits), out_lanes))
    """

    def __init__(self, stage: MacStage) -> None:
        self._stage = stage
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(data.ArrayLayout(signed(stage.in_bits), stage.lanes)),
                "o_valid": Out(1),
                "o_data": Out(data.ArrayLayout(signed(stage.out_bits), stage.out_lanes)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        layer = st.layer
        lanes, beats = st.lanes, st.in_beats
        n_out = layer.out_features
        wb = st.weight_bits
        mask = (1 << wb) - 1
        rows = []
        for b in range(beats):
            word = 0
            for lane in range(lanes):
                col = st.order[b * lanes + lane]
                for i in range(n_out):
                    word |= (int(layer.weights[i, col]) & mask) << ((lane * n_out + i) * wb)
            rows.append(word)
        m.submodules.weights = mem = Memory(shape=wb * n_out * lanes, depth=beats, init=rows)
        rd = mem.read_port()

        # Cycle t: beat arrives, its row is read. t+1: accumulate (the last one into the shadow).
        addr = Signal(range(max(beats, 2)), name="beat_index")
        with m.If(self.i_valid):
            m.d.sync += addr.eq(Mux(addr == beats - 1, 0, addr + 1))
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(1)]
        x1 = Signal.like(self.i_data, name="x1", reset_less=True)
        v1, last1 = Signal(name="v1"), Signal(name="last1")
        m.d.sync += [x1.eq(self.i_data), v1.eq(self.i_valid), last1.eq(addr == beats - 1)]
        row = data.View(data.ArrayLayout(data.ArrayLayout(signed(wb), n_out), lanes), rd.data)

        done, restart = Signal(name="frame_done"), Signal(name="restart")
        m.d.comb += [done.eq(v1 & last1), restart.eq(done | ResetSignal())]
        shadow = []
        # Each lane's -x once for every output (see MacDenseLayer).
        neg_x1 = [Signal(signed(st.in_bits + 1), name=f"neg_x1_{lane}") for lane in range(lanes)]
        m.d.comb += [neg.eq(-x1[lane]) for lane, neg in enumerate(neg_x1)]
        for i in range(n_out):
            acc = Signal(signed(st.acc_bits[i]), name=f"acc{i}", reset_less=True)
            terms: list[Value] = []
            for lane in range(lanes):
                w, x = row[lane][i], x1[lane]
                terms.append(Mux(w.any(), Mux(w[-1], neg_x1[lane], x), 0) if st.ternary else w * x)
            while len(terms) > 1:  # a balanced adder tree
                terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
            shadow.append(_accumulate(m, acc, terms[0], v1, done, restart, f"acc{i}"))

        # Output: out_lanes accumulators per cycle, each lane through its own requantiser.
        rq = layer.requant
        out_lanes, n = st.out_lanes, st.out_beats
        index, busy = _output_counter(m, done, n)
        v_s1, v_s2, v_out = Signal(name="v_s1"), Signal(name="v_s2"), Signal(name="v_out")
        m.d.sync += [v_s1.eq(busy), v_s2.eq(v_s1), v_out.eq(v_s2)]
        shift_bits = Shape.cast(range(max(2, max(rq.shift) + 1))).width
        lo = 0 if rq.relu else rq.out.lo
        hi = rq.out.hi
        for lane in range(out_lanes):
            channels = list(range(lane, n_out, out_lanes))
            # Stage 1: select the value and the channel's constants.
            value = Signal(signed(max(st.acc_bits)), name=f"value{lane}", reset_less=True)
            mult = Signal(signed(st.mult_bits), name=f"mult{lane}", reset_less=True)
            offset = Signal(signed(st.offset_bits), name=f"offset{lane}", reset_less=True)
            shift = Signal(shift_bits, name=f"shift{lane}", reset_less=True)
            m.d.sync += [
                value.eq(mux_tree([shadow[c] for c in channels], index)),
                mult.eq(constant_table([rq.multiplier[c] for c in channels], st.mult_bits, index)),
                offset.eq(constant_table([rq.offset[c] for c in channels], st.offset_bits, index)),
                shift.eq(constant_table([rq.shift[c] for c in channels], shift_bits + 1, index)),
            ]
            # Stage 2: product (a DSP multiply); offset and shift carried along.
            product = Signal(signed(st.product_bits), name=f"product{lane}", reset_less=True)
            offset2 = Signal.like(offset, name=f"offset2_{lane}", reset_less=True)
            shift2 = Signal.like(shift, name=f"shift2_{lane}", reset_less=True)
            m.d.sync += [product.eq(value * mult), offset2.eq(offset), shift2.eq(shift)]
            # Stage 3: offset, arithmetic shift, clamp.
            total = Signal(signed(max(st.product_bits, st.offset_bits) + 1), name=f"total{lane}")
            m.d.comb += total.eq(product + offset2)
            shifted = total >> shift2
            out = Signal(signed(st.out_bits), name=f"code{lane}", reset_less=True)
            m.d.sync += out.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
            m.d.comb += self.o_data[lane].eq(out)
        m.d.comb += self.o_valid.eq(v_out)
        assert MAC_LATENCY == 5  # input +1, out_busy +1, stage 1, 2, 3 (see MacStage)
        return m


def mac_layer(stage: MacStage) -> MacDenseLayer | LanedMacDenseLayer:
    """The gateware of a MAC stage: one element per cycle in and out, or lanes."""
    if stage.lanes == 1 and stage.out_lanes == 1:
        return MacDenseLayer(stage)
    return LanedMacDenseLayer(stage)
