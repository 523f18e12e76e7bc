"""Sliding windows over a streamed frame: geometry, emission schedule and timing.

Convolution and pooling layers see their input as a stream of *positions*
(all channels of one pixel or sample) in raster order, one frame after
another. A window buffer keeps the last ``chain_length`` positions in a
shift register (line buffers in 2-D are simply the long stretches of that
register) and, at the right moments, hands one window to the layer's
arithmetic. This module fixes, in pure Python, everything the gateware
(:mod:`hwgen.backend.window_buffer`), the resource estimate and the latency model
share.

Slots and emissions
    Every position entering the shift register is a *slot*. Slot ``i`` of a
    frame holds raster position ``i`` (row ``i // W``, column ``i % W``).
    Output ``(u, v)`` is emitted at the slot of the last position its window
    covers, ``e(u, v) = r_last(u) * W + c_last(v)`` with ``r_last(u) = u *
    s_h - p_top + k_h - 1`` and ``c_last(v) = v * s_w - p_left + k_w - 1``.
    A column past the right edge is the next row's slot (the linear index is
    the same), so right padding costs no cycles; padded taps are masked to
    the fill value (zero for a convolution, the least code for a max pool).

Frame ends
    Windows past the frame's last position (bottom and right padding) are
    emitted in ``flush_slots`` slots after it. The next frame's positions
    take those slots as they arrive; while none has arrived the buffer fires
    *virtual* slots on its own, one every ``spacing`` cycles, so the last
    frame of a burst completes without waiting for another. Once the next
    frame has begun, the remaining flush slots are its arrivals. The next
    frame emits nothing until after the previous frame's last window (checked
    by :func:`window_schedule`), so the two never compete for the arithmetic.

Spacing
    Slots are at least ``spacing`` cycles apart (a position waits in a
    one-entry register when it comes early), so consecutive windows are at
    least ``min_gap * spacing`` cycles apart: the cycles the layer's adder
    graph may take per output position.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hwgen.errors import TwnError

__all__ = [
    "WINDOW_LATENCY",
    "WindowGeometry",
    "simulate_window",
    "window_schedule",
]

#: Cycles from a position's valid strobe at the buffer's input to its window's
#: valid strobe at the output: the one-entry wait register (when the slot is
#: not delayed by the spacing rule); the window itself is not registered.
WINDOW_LATENCY = 1


@dataclass(frozen=True)
class WindowGeometry:
    """A 1-D or 2-D window over frames of ``height x width`` positions (1-D: height 1)."""

    height: int
    width: int
    k_h: int
    k_w: int
    s_h: int
    s_w: int
    p_top: int
    p_left: int
    p_bottom: int
    p_right: int

    @staticmethod
    def of(in_shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], pads: tuple[int, ...]):
        """From an IR layer's channels-first ``in_shape``, ``kernel``, ``stride`` and ONNX ``pads``."""
        nd = len(kernel)
        if nd == 1:
            return WindowGeometry(1, in_shape[1], 1, kernel[0], 1, stride[0], 0, pads[0], 0, pads[1])
        assert nd == 2, nd
        return WindowGeometry(
            in_shape[1], in_shape[2], kernel[0], kernel[1], stride[0], stride[1], pads[0], pads[1], pads[2], pads[3]
        )

    @property
    def positions(self) -> int:
        return self.height * self.width

    @property
    def out_h(self) -> int:
        return (self.height + self.p_top + self.p_bottom - self.k_h) // self.s_h + 1

    @property
    def out_w(self) -> int:
        return (self.width + self.p_left + self.p_right - self.k_w) // self.s_w + 1

    @property
    def out_positions(self) -> int:
        return self.out_h * self.out_w

    @property
    def taps(self) -> int:
        return self.k_h * self.k_w

    def tap_offset(self, kr: int, kc: int) -> int:
        """How many slots before the emitting slot tap ``(kr, kc)`` entered the buffer."""
        return (self.k_h - 1 - kr) * self.width + (self.k_w - 1 - kc)

    @property
    def chain_length(self) -> int:
        """Positions the shift register holds behind the newest one."""
        return self.tap_offset(0, 0)

    def emit_index(self, u: int, v: int) -> int:
        r_last = u * self.s_h - self.p_top + self.k_h - 1
        c_last = v * self.s_w - self.p_left + self.k_w - 1
        return r_last * self.width + c_last

    def row_range(self, kr: int) -> tuple[int, int]:
        """Output rows ``u`` for which tap row ``kr`` lies inside the frame (inclusive bounds)."""
        return _inside(self.out_h, self.s_h, self.p_top, kr, self.height)

    def col_range(self, kc: int) -> tuple[int, int]:
        return _inside(self.out_w, self.s_w, self.p_left, kc, self.width)


def _inside(n_out: int, stride: int, pad: int, k: int, size: int) -> tuple[int, int]:
    # u * stride - pad + k in [0, size - 1]
    lo = max(0, -(-(pad - k) // stride))
    hi = min(n_out - 1, (size - 1 + pad - k) // stride)
    return lo, hi


@dataclass(frozen=True)
class WindowSchedule:
    """When a window buffer emits, and what that allows the layer behind it."""

    geometry: WindowGeometry
    #: Emission slot of every output position, raster order.
    emit_slots: tuple[int, ...]

    @property
    def flush_slots(self) -> int:
        """Slots after the frame's last position still needed for its windows."""
        return max(0, self.emit_slots[-1] - (self.geometry.positions - 1))

    @cached_property
    def table(self) -> np.ndarray:
        """``table[i]``: slot ``i`` (``positions + j`` for flush slot ``j``) emits a window."""
        t = np.zeros(self.geometry.positions + self.flush_slots, dtype=bool)
        t[list(self.emit_slots)] = True
        return t

    @property
    def min_gap(self) -> int:
        """Fewest slots between two consecutive emissions, across frame boundaries too."""
        e = self.emit_slots
        gaps = [b - a for a, b in itertools.pairwise(e)]
        gaps.append(e[0] + self.geometry.positions - e[-1])
        return min(gaps)


def window_schedule(geometry: WindowGeometry, layer: str) -> WindowSchedule:
    """The emission schedule of ``geometry``; refuse what a stream cannot do (``layer`` names the
    layer and its op in the message, e.g. ``"layer '/conv/Conv' (Conv)"``)."""
    g = geometry
    if min(g.out_h, g.out_w) < 1:
        raise TwnError(f"{layer}: its window leaves no output position")
    for name, pad, k in (
        ("top", g.p_top, g.k_h),
        ("left", g.p_left, g.k_w),
        ("bottom", g.p_bottom, g.k_h),
        ("right", g.p_right, g.k_w),
    ):
        if pad >= k:
            raise TwnError(
                f"{layer}: {name} padding {pad} is not smaller than the kernel ({k}), so some windows hold "
                "padding only; twngen streams windows with padding up to kernel - 1 on each side"
            )
    slots = tuple(g.emit_index(u, v) for u in range(g.out_h) for v in range(g.out_w))
    if any(b <= a for a, b in itertools.pairwise(slots)):
        raise TwnError(
            f"{layer}: with kernel {g.k_h}x{g.k_w}, stride {g.s_h}x{g.s_w} and right padding {g.p_right} on a "
            f"{g.width}-wide frame, two windows would end on the same position; twngen cannot stream this window"
        )
    sched = WindowSchedule(g, slots)
    if slots[0] + g.positions <= slots[-1]:
        raise TwnError(
            f"{layer}: the bottom/right padding ({g.p_bottom}, {g.p_right}) needs {sched.flush_slots} slots "
            f"after a frame, more than the next frame's {slots[0]} leading positions that emit nothing; twngen "
            "streams frames back to back only when padding at the end is no larger than at the start plus the "
            "stride slack (e.g. 'same' padding)"
        )
    return sched


def simulate_window(arrivals: list[int], sched: WindowSchedule, spacing: int) -> list[int]:
    """Cycles at which the buffer's window strobe is high, for input strobes at ``arrivals``.

    A cycle-by-cycle model of :class:`hwgen.backend.window_buffer.WindowBuffer`'s
    control (the same rules, same registers), used to compute the latency
    the gateware will have; the simulation tests check the two agree.
    ``arrivals`` covers whole frames.
    """
    positions = sched.geometry.positions
    flush = sched.flush_slots
    table = sched.table
    out: list[int] = []
    if not arrivals:
        return out
    pending = False
    since = spacing
    ri = 0
    flushing, fidx, b_started = False, 0, False
    k = 0
    t = arrivals[0]
    end = arrivals[-1] + (flush + 2) * spacing + 2
    while t <= end:
        in_valid = k < len(arrivals) and arrivals[k] == t
        slot_real = pending and since >= spacing
        slot_virtual = flushing and not b_started and not pending and since >= spacing
        slot = slot_real or slot_virtual
        emit = (slot_real and bool(table[ri])) or (flushing and slot and bool(table[positions + fidx]))
        if emit:
            out.append(t)
        # next state
        assert not (in_valid and pending and not slot_real), "a position arrived before the previous one left"
        n_flushing, n_fidx, n_b = flushing, fidx, b_started
        if slot and flushing:
            n_fidx = fidx + 1
            if n_fidx == flush:
                n_flushing = False
            if slot_real:
                n_b = True
        if slot_real and ri == positions - 1:
            n_flushing, n_fidx, n_b = flush > 0, 0, False
        if slot_real:
            ri = (ri + 1) % positions
        flushing, fidx, b_started = n_flushing, n_fidx, n_b
        since = 1 if slot else min(since + 1, spacing)
        pending = in_valid or (pending and not slot_real)
        if in_valid:
            k += 1
        t += 1
    return out
