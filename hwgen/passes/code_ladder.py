"""A graph quantiser seen from the accumulator: integer thresholds, or one multiply when they are affine.

A layer whose output is quantised by the graph (QONNX ``Quant``, QDQ, FINN
``MultiThreshold``) maps its integer accumulator through the monotone float
chain ``acc -> scale * acc + bias -> ReLU -> quantiser`` to codes. Per
channel that is a ladder: the code steps up (or down, for a negative scale)
by the quantiser's stride at integer accumulator values, the thresholds.

:func:`ladder_thresholds` finds every threshold exactly by bisection with the
chain evaluated in float64 (all levels of a channel at once, vectorised).
Comparing against them costs one comparator per level, which for an 8-bit
quantiser is 255 comparators per channel. When the ladder is *affine* —
``count(acc) = floor((acc * M + C) / 2**s)`` on the whole reachable range for
some integers M (18 signed bits), C and s, as it is for a uniform quantiser
behind a float affine unless round-half-to-even ties land on integer
accumulators — :func:`affine_requant` returns the equivalent
:class:`~hwgen.ir.Requant` (one multiply, an offset, a shift), so the layer
is built like any other requantiser. The fit is exact, not approximate:
candidate M, C, s come from exact pairwise bounds on a few thresholds, and
every level's threshold under the candidate is then checked against the
float chain on both sides (``code(t) >= level > code(t - 1)``); levels that
disagree join the constraints and the fit is repeated. The codes on every
reachable accumulator are therefore the thresholds' codes, bit for bit, and
the golden model's output does not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hwgen.ir import FixedFormat, LinearLayer, Requant

__all__ = ["AFFINE_FIT_ROUNDS", "ChannelLadder", "affine_requant", "channel_ladders", "ladder_thresholds"]

#: Refinement rounds of the affine fit before a ladder counts as not affine.
AFFINE_FIT_ROUNDS = 12
#: Thresholds the first round of the fit is built from (spread over the levels).
_SEED_LEVELS = 17

_Codes = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ChannelLadder:
    """One output channel's code ladder over its reachable accumulators ``[lo, hi]``.

    ``codes(acc)`` is the float chain (vectorised over int64 accumulators);
    ``first`` the code at the low end of the ladder's direction (``lo`` when
    ``rising``, else ``hi``) and ``levels`` the number of ``stride`` steps to
    the code at the other end.
    """

    lo: int
    hi: int
    rising: bool
    first: int
    levels: int
    stride: int
    codes: _Codes

    def oriented(self, t: np.ndarray) -> np.ndarray:
        """The codes at ``t`` in the rising orientation (``-t`` for a falling ladder)."""
        return self.codes(t if self.rising else -t)


def channel_ladders(
    layer: LinearLayer, fmt: FixedFormat, acc_lo: np.ndarray, acc_hi: np.ndarray, stride: int
) -> list[ChannelLadder]:
    """Every output channel's ladder for inputs coded in ``fmt`` (accumulator bounds given)."""
    q = layer.quantizer
    assert q is not None
    scale = layer.scale * fmt.resolution
    ladders = []
    for c in range(layer.out_features):
        quant = q.channel(c)

        def codes(acc: np.ndarray, c: int = c, quant: object = quant) -> np.ndarray:
            y = scale[c] * np.asarray(acc, dtype=np.int64).astype(np.float64) + layer.bias[c]
            if layer.relu:
                y = np.maximum(y, 0.0)
            return quant.codes(y.reshape(-1, 1)).reshape(-1)  # type: ignore[attr-defined, no-any-return]

        lo, hi = int(acc_lo[c]), int(acc_hi[c])
        rising = bool(scale[c] >= 0)
        ends = codes(np.array([lo, hi]))
        first, final = (int(ends[0]), int(ends[1])) if rising else (int(ends[1]), int(ends[0]))
        ladders.append(ChannelLadder(lo, hi, rising, first, max(0, (final - first) // stride), stride, codes))
    return ladders


def _bisect(ladder: ChannelLadder, steps: np.ndarray) -> np.ndarray:
    """Rising-orientation thresholds of the given level numbers (1 .. levels): the least
    ``t`` in ``[lo', hi']`` whose code reaches ``first + stride * step``."""
    lo, hi = (ladder.lo, ladder.hi) if ladder.rising else (-ladder.hi, -ladder.lo)
    target = ladder.first + ladder.stride * steps
    a = np.full(len(steps), lo, dtype=np.int64)
    b = np.full(len(steps), hi, dtype=np.int64)
    while True:
        open_ = a < b
        if not open_.any():
            return a
        mid = (a + b) // 2
        reached = ladder.oriented(mid) >= target
        b = np.where(open_ & reached, mid, b)
        a = np.where(open_ & ~reached, mid + 1, a)


def ladder_thresholds(ladder: ChannelLadder) -> tuple[int, ...]:
    """The ladder's thresholds on the accumulator, ascending: ``acc >= t`` counts for a rising
    ladder, ``acc <= t`` for a falling one."""
    if ladder.levels == 0:
        return ()
    t = _bisect(ladder, np.arange(1, ladder.levels + 1, dtype=np.int64))
    return tuple(sorted(int(v) for v in (t if ladder.rising else -t)))


def _fraction_extreme(num: np.ndarray, den: np.ndarray, largest: bool) -> Fraction | None:
    """The exact largest (or smallest) of ``num / den`` (den > 0), None for no fractions."""
    if len(num) == 0:
        return None
    approx = num / den
    k = int(np.argmax(approx) if largest else np.argmin(approx))
    # Exact check of the float choice: int64 cross products cannot overflow at these sizes.
    cross = num * den[k] - num[k] * den
    beyond = np.flatnonzero(cross > 0) if largest else np.flatnonzero(cross < 0)
    best = Fraction(int(num[k]), int(den[k]))
    for j in beyond:
        f = Fraction(int(num[j]), int(den[j]))
        best = max(best, f) if largest else min(best, f)
    return best


def _fit(
    steps: np.ndarray,
    t: np.ndarray,
    below: tuple[int, int] | None,
    above: tuple[int, int] | None,
    limit: int,
    max_shift: int,
) -> tuple[int, int, int] | None:
    """Integers (M, C, s), M in 1..limit, with ``floor((a * M + C) / 2**s)`` reaching ``step`` exactly
    at ``t[step]`` for the given steps; ``below`` = (0, lo): at least 0 at ``lo`` (where no clamp
    holds the code up), ``above`` = (levels + 1, hi + 1): at most ``levels`` at ``hi``."""
    # Lower bounds on C come from (step, t) and ``below``, upper bounds from (step, t) and
    # ``above``. C in [max_i (i 2^s - M t_i), min_j (j 2^s - M t_j + M)) is non-empty for all
    # pairs iff (i - j) 2^s < M (t_i - t_j + 1), a bound on the slope r = M / 2^s.
    extra_lo = [below] if below is not None else []
    extra_hi = [above] if above is not None else []
    li = np.array(list(steps) + [p[0] for p in extra_lo], dtype=np.int64)
    lt = np.array(list(t) + [p[1] for p in extra_lo], dtype=np.int64)
    ui = np.array(list(steps) + [p[0] for p in extra_hi], dtype=np.int64)
    ut = np.array(list(t) + [p[1] for p in extra_hi], dtype=np.int64)
    di = li[:, None] - ui[None, :]
    dt = lt[:, None] - ut[None, :]
    rise = di > 0  # r > di / (dt + 1); dt >= 0 here because thresholds ascend with the step
    fall = (di < 0) & (dt <= -2)  # r < -di / (-dt - 1)
    if np.any(rise & (dt + 1 <= 0)):
        return None
    r_lo = _fraction_extreme(di[rise], dt[rise] + 1, largest=True) or Fraction(0)
    r_hi = _fraction_extreme(-di[fall], -dt[fall] - 1, largest=False)
    if r_hi is not None and r_hi <= r_lo:
        return None
    for s in range(max_shift + 1):
        m = math.floor(r_lo * 2**s) + 1
        if m > limit:
            return None
        if r_hi is not None and Fraction(m, 1) >= r_hi * 2**s:
            continue
        c_lo = max(int(i) * 2**s - m * int(ti) for i, ti in zip(li, lt, strict=True))
        c_hi = min(int(j) * 2**s - m * int(tj) + m for j, tj in zip(ui, ut, strict=True))
        if c_lo < c_hi:
            return m, c_lo, s
    return None


def _affine_channel(
    ladder: ChannelLadder, limit: int, max_shift: int, clamp_lo: int, clamp_hi: int
) -> tuple[int, int, int] | None:
    """(multiplier, offset, shift) of one channel's exact affine form in its rising orientation
    (the count of steps passed), or None. ``clamp_lo``/``clamp_hi``: the codes the requantiser's
    clamp holds any value to; where the ladder ends there, the count may run past its end."""
    if ladder.levels == 0:
        return 0, 0, 0
    lo, hi = (ladder.lo, ladder.hi) if ladder.rising else (-ladder.hi, -ladder.lo)
    below = None if ladder.first <= clamp_lo else (0, lo)
    above = None if ladder.first + ladder.levels >= clamp_hi else (ladder.levels + 1, hi + 1)
    n = ladder.levels
    steps = np.unique(np.linspace(1, n, min(n, _SEED_LEVELS)).round().astype(np.int64))
    t = _bisect(ladder, steps)
    every = np.arange(1, n + 1, dtype=np.int64)
    for _ in range(AFFINE_FIT_ROUNDS):
        fit = _fit(steps, t, below, above, limit, max_shift)
        if fit is None:
            return None
        m, c, s = fit
        # Candidate thresholds: the least a with a * m + c >= step * 2^s.
        if (n + 1) * (1 << s) + abs(c) < 1 << 62:
            cand = -((c - every * (1 << s)) // m)
        else:  # Python integers: no overflow; the candidates themselves fit once clipped
            exact = -((c - every.astype(object) * (1 << s)) // m)
            cand = np.clip(exact, lo, hi + 1).astype(np.int64)
        target = ladder.first + ladder.stride * every
        inside = (cand > lo) & (cand <= hi)
        ok = inside.copy()
        ok[inside] = (ladder.oriented(cand[inside]) >= target[inside]) & (
            ladder.oriented(cand[inside] - 1) < target[inside]
        )
        wrong = every[~ok]
        if len(wrong) == 0:
            return m, c, s
        more = wrong[np.linspace(0, len(wrong) - 1, min(len(wrong), 32)).round().astype(np.int64)]
        steps = np.concatenate([steps, more])
        t = np.concatenate([t, _bisect(ladder, more)])
        order = np.argsort(steps)
        steps, t = steps[order], t[order]
    return None


def affine_requant(
    ladders: list[ChannelLadder], out: FixedFormat, relu: bool, multiplier_bits: int, max_shift: int
) -> Requant | None:
    """The layer's ladders as one exact :class:`Requant`, or None when a channel's is not affine
    (or has a stride other than 1) within ``multiplier_bits`` and ``max_shift``."""
    if any(ladder.stride != 1 for ladder in ladders):
        return None
    limit = (1 << (multiplier_bits - 1)) - 1
    clamp_lo, clamp_hi = (0 if relu else out.lo), out.hi
    mults, offsets, shifts = [], [], []
    for ladder in ladders:
        fit = _affine_channel(ladder, limit, max_shift, clamp_lo, clamp_hi)
        if fit is None:
            return None
        m, c, s = fit
        # count = floor((a' M + C) / 2^s) with a' = +-acc; the code adds ``first``.
        mults.append(m if ladder.rising else -m)
        offsets.append(c + (ladder.first << s))
        shifts.append(s)
    return Requant(tuple(mults), tuple(offsets), tuple(shifts), out, relu)
