"""Gateware for streamed windows: the window buffer, the pool tree and the frame collector."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.backend.argmax import registered_tree
from hwgen.backend.rom import constant_bit
from hwgen.ir import LaneWindowPoolLayer, PoolLayer
from hwgen.plan.frames import CollectStage, LanePoolStage, WindowStage

__all__ = ["FrameCollector", "LanePoolTree", "PoolTree", "WindowBuffer"]


def _member(values: set[int], index: Value) -> Value:
    """A small ROM: 1 when ``index`` (unsigned) is in ``values``; defined for every index value.

    A constant bit vector indexed by a shift (:func:`~hwgen.backend.rom.constant_bit`),
    not an ``Array`` of constants: the latter becomes a ``case`` in an ``always @*``
    block that Icarus never evaluates when the index is a register that never
    changes (a 1-D frame's row counter stays 0).
    """
    size = 1 << len(index)
    return constant_bit(sum(1 << i for i in values if 0 <= i < size), index)


class WindowBuffer(wiring.Component):
    """Shift register of positions and the window control of :mod:`hwgen.plan.window_schedule`.

    Latency :data:`hwgen.plan.window_schedule.WINDOW_LATENCY` (1) cycle from ``i_valid``
    to ``o_valid`` when slots are not held back by the spacing rule: a
    position first waits in a one-entry register and enters the shift
    register in its slot; the window is read from the register (and the
    waiting position) in that slot's cycle, unregistered: the adder graph,
    serial converters or pool tree behind it sample it with ``o_valid``.

    The control is the cycle model :func:`hwgen.plan.window_schedule.simulate_window`
    (same registers, same rules); emissions are decided by row and column
    tables of the slot's position, and padded taps are masked to the fill
    value by comparing the output row and column counters with constants.

    Members
    -------
    i_valid : In(1)
        A position arrives (strobes at least ``stage.spacing`` cycles apart).
    i_data : In(ArrayLayout(signed(bits), channels))
    o_valid : Out(1)
        A window is ready.
    o_data : Out(ArrayLayout(signed(bits), channels * taps))
        Element ``c * taps + kr * k_w + kc``: the order of a convolution's weight columns.
    """

    def __init__(self, stage: WindowStage) -> None:
        self._stage = stage
        g = stage.geometry
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(data.ArrayLayout(signed(stage.in_bits), stage.channels)),
                "o_valid": Out(1),
                "o_data": Out(data.ArrayLayout(signed(stage.in_bits), stage.channels * g.taps)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        g = st.geometry
        sched = st.schedule
        W = g.width
        flush = sched.flush_slots
        spacing = st.spacing

        # Emission tables: slot (r, c) emits when row r ends a window row and
        # column c ends a window column, or column c of row r is a window's
        # end wrapped past the right edge of row r - 1.
        r_last = {u * g.s_h - g.p_top + g.k_h - 1 for u in range(g.out_h)}
        c_last = [v * g.s_w - g.p_left + g.k_w - 1 for v in range(g.out_w)]
        assert max(c_last) < 2 * W, "right padding wider than a row"
        rows = g.height + (flush // W) + 2
        cols = {c for c in c_last if c < W}
        wraps = {c - W for c in c_last if c >= W}

        def emits(r: Value, c: Value, first_row_wraps: bool) -> Value:
            direct = _member(r_last, r) & _member(cols, c)
            if not wraps:
                return direct
            above = _member(r_last, (r - 1)[: len(r)])
            prev = Mux(r.any(), above, 0) if first_row_wraps else above
            return direct | (prev & _member(wraps, c))

        # Wait register and slot timing.
        pend_valid = Signal(name="pend_valid")
        pend_data = Signal.like(self.i_data, reset_less=True, name="pend_data")
        since = Signal(range(spacing + 1), init=spacing, name="since_slot")
        slot_real = Signal(name="slot_real")
        slot_virtual = Signal(name="slot_virtual")
        slot = Signal(name="slot")
        # Real slots: raster position (r, c) of the arriving frame.
        r = Signal(range(max(g.height, 2)), name="row")
        c = Signal(range(max(W, 2)), name="col")
        last_real = (r == g.height - 1) & (c == W - 1)
        # Flush slots of the previous frame: virtual positions (fr, fc), fr >= height.
        flushing = Signal(name="flushing")
        fidx = Signal(range(max(flush, 1) + 1), name="flush_index")
        fr = Signal(range(rows + 1), name="flush_row")
        fc = Signal(range(max(W, 2)), name="flush_col")
        b_started = Signal(name="next_frame_started")

        m.d.comb += [
            slot_real.eq(pend_valid & (since >= spacing)),
            slot_virtual.eq(flushing & ~b_started & ~pend_valid & (since >= spacing)),
            slot.eq(slot_real | slot_virtual),
        ]
        emit = Signal(name="emit")
        m.d.comb += emit.eq(
            (slot_real & emits(r, c, True)) | (flushing & slot & (emits(fr, fc, False) if flush else 0))
        )

        with m.If(self.i_valid):
            m.d.sync += [pend_valid.eq(1), pend_data.eq(self.i_data)]
        with m.Elif(slot_real):
            m.d.sync += pend_valid.eq(0)
        m.d.sync += since.eq(Mux(slot, 1, Mux(since >= spacing, spacing, since + 1)))

        with m.If(slot_real):
            with m.If(c == W - 1):
                m.d.sync += [c.eq(0), r.eq(Mux(r == g.height - 1, 0, r + 1))]
            with m.Else():
                m.d.sync += c.eq(c + 1)
        if flush:
            with m.If(slot_real & last_real):
                m.d.sync += [flushing.eq(1), fidx.eq(0), b_started.eq(0), fr.eq(g.height), fc.eq(0)]
            with m.Elif(slot & flushing):
                m.d.sync += fidx.eq(fidx + 1)
                with m.If(fidx == flush - 1):
                    m.d.sync += flushing.eq(0)
                with m.If(slot_real):
                    m.d.sync += b_started.eq(1)
                with m.If(fc == W - 1):
                    m.d.sync += [fc.eq(0), fr.eq(fr + 1)]
                with m.Else():
                    m.d.sync += fc.eq(fc + 1)

        # The shift register: chain[k] is the position k + 1 slots older than the newest.
        chain: list[Value] = [pend_data.as_value()]
        for k in range(g.chain_length):
            reg = Signal(len(pend_data.as_value()), name=f"pos_d{k + 1}", reset_less=True)
            with m.If(slot):
                m.d.sync += reg.eq(chain[-1])
            chain.append(reg)

        # Output position counters and tap masks.
        u = Signal(range(max(g.out_h, 2)), name="out_row")
        v = Signal(range(max(g.out_w, 2)), name="out_col")
        with m.If(emit):
            with m.If(v == g.out_w - 1):
                m.d.sync += [v.eq(0), u.eq(Mux(u == g.out_h - 1, 0, u + 1))]
            with m.Else():
                m.d.sync += v.eq(v + 1)

        def inside(counter: Value, bounds: tuple[int, int], n: int) -> Value:
            lo, hi = bounds
            conds = []
            if lo > 0:
                conds.append(counter >= lo)
            if hi < n - 1:
                conds.append(counter <= hi)
            result: Value = Const(1)
            for cond in conds:
                result = result & cond
            return result

        bits = st.in_bits
        layout = data.ArrayLayout(signed(bits), st.channels)
        # The window is not registered: every consumer (adder graph, serial
        # converters, pool tree, collector) samples it in the emission cycle.
        for kr in range(g.k_h):
            row_ok = inside(u, g.row_range(kr), g.out_h)
            for kc in range(g.k_w):
                ok = Signal(name=f"tap{kr}_{kc}_inside")
                m.d.comb += ok.eq(row_ok & inside(v, g.col_range(kc), g.out_w))
                tap = data.View(layout, chain[g.tap_offset(kr, kc)])
                t = kr * g.k_w + kc
                for ch in range(st.channels):
                    fill = Const(st.fill[ch], signed(bits))
                    m.d.comb += self.o_data[ch * g.taps + t].eq(Mux(ok, tap[ch], fill))
        m.d.comb += self.o_valid.eq(emit)
        return m


def _compare_tree(m: Module, values: list[Value], bits: int, use_min: bool, name: str) -> Value:
    """Registered pairwise max (min) over ``values`` (:func:`registered_tree`)."""

    def keep_first(a: tuple[Value, ...], b: tuple[Value, ...]) -> Value:
        return a[0] < b[0] if use_min else a[0] > b[0]

    return registered_tree(m, [(v,) for v in values], (signed(bits),), keep_first, name)[0]


class LanePoolTree(wiring.Component):
    """Max (min) across lane groups of one beat: output ``l * C + c`` pools input lanes
    ``l * group ..`` of channel ``c``. Latency ``stage.levels`` cycles, free-running."""

    def __init__(self, stage: LanePoolStage) -> None:
        self._stage = stage
        layer = stage.layer
        super().__init__(
            {
                "i_data": In(data.ArrayLayout(signed(stage.bits), layer.in_shape[0])),
                "o_data": Out(data.ArrayLayout(signed(stage.bits), layer.out_shape[0])),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        layer = st.layer
        c = layer.channels
        for out_lane in range(layer.lanes // layer.group):
            for ch in range(c):
                lanes = range(out_lane * layer.group, (out_lane + 1) * layer.group)
                values = [self.i_data[lane * c + ch] for lane in lanes]
                result = _compare_tree(m, values, st.bits, layer.minimum[ch], f"l{out_lane}c{ch}")
                m.d.comb += self.o_data[out_lane * c + ch].eq(result)
        return m


class PoolTree(wiring.Component):
    """Max (or, per channel, min) over a window's taps: a registered comparator tree.

    Latency ``stage.pool_levels`` cycles from ``i_data`` to ``o_data``;
    free-running (the valid strobe is delayed beside it by the caller). Behind a
    lane-window pool (:class:`hwgen.ir.LaneWindowPoolLayer`) output ``l * C + c``
    compares only the taps of channel ``c`` that output lane ``l``'s own window covers.
    """

    def __init__(self, stage: WindowStage) -> None:
        self._stage = stage
        taps = stage.geometry.taps
        super().__init__(
            {
                "i_data": In(data.ArrayLayout(signed(stage.in_bits), stage.channels * taps)),
                "o_data": Out(data.ArrayLayout(signed(stage.in_bits), stage.out_channels)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        layer = st.layer
        taps = st.geometry.taps
        assert isinstance(layer, PoolLayer)
        if isinstance(layer, LaneWindowPoolLayer):
            c = layer.channels
            for out_lane in range(layer.out_lanes):
                picked = layer.selected_taps(out_lane)
                for ch in range(c):
                    values = [self.i_data[(lane * c + ch) * taps + t] for lane, t in picked]
                    result = _compare_tree(m, values, st.in_bits, layer.minimum[ch], f"l{out_lane}c{ch}")
                    m.d.comb += self.o_data[out_lane * c + ch].eq(result)
            return m
        for ch in range(st.channels):
            values: list[Value] = [self.i_data[ch * taps + t] for t in range(taps)]
            result = _compare_tree(m, values, st.in_bits, layer.minimum[ch], f"c{ch}")
            m.d.comb += self.o_data[ch].eq(result)
        return m


class FrameCollector(wiring.Component):
    """A frame's positions gathered into one channels-first vector (unfolded when the network's
    output arrives in lanes, :attr:`hwgen.plan.frames.CollectStage.unfold`).

    On the frame's last ``i_valid`` the shift register holds every position;
    ``o_valid`` follows one cycle later and ``o_data`` stays valid until the
    next frame's first position arrives (at least ``stage.spacing`` cycles).
    """

    def __init__(self, stage: CollectStage) -> None:
        self._stage = stage
        super().__init__(
            {
                "i_valid": In(1),
                "i_data": In(data.ArrayLayout(signed(stage.bits), stage.channels)),
                "o_valid": Out(1),
                "o_data": Out(data.ArrayLayout(signed(stage.bits), stage.channels * stage.positions)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        st = self._stage
        n = st.positions
        regs = []
        prev: Value = self.i_data.as_value()
        for k in range(n):
            reg = Signal(len(prev), name=f"pos{n - 1 - k}", reset_less=True)
            with m.If(self.i_valid):
                m.d.sync += reg.eq(prev)
            regs.append(reg)
            prev = reg
        count = Signal(range(max(n, 2)), name="position")
        with m.If(self.i_valid):
            m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
        o_valid = Signal(name="frame_valid")
        m.d.sync += o_valid.eq(self.i_valid & (count == n - 1))
        layout = data.ArrayLayout(signed(st.bits), st.channels)
        for p in range(n):
            pos = data.View(layout, regs[n - 1 - p])
            for ch in range(st.channels):
                m.d.comb += self.o_data[st.flat_index(p, ch)].eq(pos[ch])
        m.d.comb += self.o_valid.eq(o_valid)
        return m
