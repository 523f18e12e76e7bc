"""The fewest adders any cancellation-free graph needs for a small ternary matrix (an ILP).

Not a pass of the build: a yardstick for :mod:`hwgen.passes.merge_pairs`
(``bench/cse.py --bound``, ``docs/cse.md``). It needs scipy (HiGHS through
:func:`scipy.optimize.milp`), which is in the ``test`` and ``bench`` extras,
not a dependency of twngen.

The model
---------
A *cancellation-free* graph is a two-input adder graph in which every node
adds two values whose supports (the inputs they depend on) are disjoint, so
every value is a signed sum of distinct inputs: a ternary vector. Every
graph :func:`~hwgen.passes.merge_pairs.merged_adder_graph` returns for a
ternary matrix is one (pair extraction never cancels; the transposed search
reverses edges, which keeps at most one path from an input to a node), and so
is the greedy anchor's. Over that class, with no depth limit:

* a node read by two consumers is a signed sub-pattern (its inputs, with the
  row's signs, up to a global sign) of at least two distinct rows, since two
  paths to one row would double or cancel an input;
* cut the graph at the nodes read twice and at the outputs ("kept" nodes):
  a kept node built from ``k`` disjoint kept nodes or inputs costs ``k - 1``
  adders, whatever the tree inside.

So with ``y_u`` (kept node ``u``, fixed to 1 for the distinct rows) and
``x_vu`` (kept node ``u`` is a part of kept node ``v``)::

    minimise  sum_v (|v| - 1) y_v  -  sum_vu (|u| - 1) x_vu
    subject to  sum_{u contains t} x_vu <= y_v   for every kept v and input t of v
                x_vu <= y_u

over the candidates ``u``: every signed pattern of two inputs or more shared
by two distinct rows, and the rows. Its optimum is the least adder count of
a cancellation-free graph (and a graph achieving it exists: build each kept
node from its parts); its LP relaxation, and HiGHS' dual bound when a time
limit stops it, are lower bounds on that count. A graph with a depth limit is
in the class too, so the optimum bounds the depth-limited graphs from below;
graphs with cancellation (``(a + b) - (b - c)``) are outside the model and
may, in principle, go below it.

The candidates grow as ``2**k`` in the inputs two rows share with one
relative sign: the model is for small layers (up to about 16 inputs, or
sparse rows).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from hwgen.errors import TwnError

__all__ = ["MergeBound", "cancellation_free_bound"]

#: Inputs two rows may share with one relative sign before the model refuses (2**k candidates each).
_MAX_SHARED = 18
#: Variables the model may have before it refuses.
_MAX_VARIABLES = 2_000_000

#: A signed pattern: (mask of inputs with +1, mask of inputs with -1), canonical: lowest input positive.
_Pattern = tuple[int, int]


@dataclass(frozen=True)
class MergeBound:
    """What the ILP found.

    Members
    -------
    lower:
        A lower bound on the adders of every cancellation-free graph for the
        matrix (the optimum when ``optimal``).
    optimum:
        The least adder count of a cancellation-free graph, or None when the
        time limit stopped the solver first.
    lp:
        The LP relaxation's value (a weaker lower bound, rounded up).
    candidates, variables:
        Size of the model.
    seconds:
        Time to build and solve it (the time limit covers the LP and the ILP together,
        not the model's construction).
    """

    lower: int
    optimum: int | None
    lp: int
    candidates: int
    variables: int
    seconds: float

    @property
    def optimal(self) -> bool:
        return self.optimum is not None


def _canonical(pos: int, neg: int) -> _Pattern:
    low = (pos | neg) & -(pos | neg)
    return (pos, neg) if pos & low else (neg, pos)


def _rows(w: np.ndarray) -> list[_Pattern]:
    """Distinct rows (up to sign) with two terms or more, as signed patterns."""
    out: dict[_Pattern, None] = {}
    for row in w:
        pos = sum(1 << int(j) for j in np.flatnonzero(row > 0))
        neg = sum(1 << int(j) for j in np.flatnonzero(row < 0))
        if (pos | neg).bit_count() >= 2:
            out.setdefault(_canonical(pos, neg))
    return list(out)


def _submasks(mask: int) -> list[int]:
    bits = [1 << i for i in range(mask.bit_length()) if mask >> i & 1]
    return [sum(c) for k in range(2, len(bits) + 1) for c in itertools.combinations(bits, k)]


def _candidates(rows: list[_Pattern]) -> list[_Pattern]:
    """Every signed pattern of two terms or more that two distinct rows share, and the rows."""
    found: dict[_Pattern, None] = dict.fromkeys(rows)
    for (p1, n1), (p2, n2) in itertools.combinations(rows, 2):
        for shared in ((p1 & p2) | (n1 & n2), (p1 & n2) | (n1 & p2)):
            if shared.bit_count() < 2:
                continue
            if shared.bit_count() > _MAX_SHARED:
                raise TwnError(
                    f"two rows share {shared.bit_count()} inputs with one relative sign: too many candidate "
                    f"subexpressions for the exact model (at most {_MAX_SHARED})"
                )
            for s in _submasks(shared):
                found.setdefault(_canonical(p1 & s, n1 & s))
    return list(found)


def _part_of(u: _Pattern, v: _Pattern) -> bool:
    """Whether u is v restricted to u's inputs, up to sign (a proper part)."""
    su, sv = u[0] | u[1], v[0] | v[1]
    if su & ~sv or su == sv:
        return False
    restricted = (v[0] & su, v[1] & su)
    return restricted == u or restricted == (u[1], u[0])


def cancellation_free_bound(weights: np.ndarray, time_limit: float = 60.0) -> MergeBound:
    """Solve the model above for a ternary matrix (rows are outputs); see the module docstring.

    Raises :class:`~hwgen.errors.TwnError` for weights that are not ternary or a
    model too large to build.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    start = time.perf_counter()
    w = np.asarray(weights)
    if w.ndim != 2 or (w.size and np.abs(w).max() > 1):
        raise TwnError("the exact model takes a 2-D ternary or binary matrix")
    rows = _rows(w)
    cands = _candidates(rows)
    index = {c: k for k, c in enumerate(cands)}
    size = [(p | n).bit_count() for p, n in cands]
    # Parts: (container, part) pairs, containers being every candidate.
    by_size = sorted(range(len(cands)), key=lambda k: size[k])
    parts: list[tuple[int, int]] = []
    for v in range(len(cands)):
        for u in by_size:
            if size[u] >= size[v]:
                break
            if _part_of(cands[u], cands[v]):
                parts.append((v, u))
    n_y, n_x = len(cands), len(parts)
    if n_y + n_x > _MAX_VARIABLES:
        raise TwnError(f"the exact model would have {n_y + n_x} variables, more than {_MAX_VARIABLES}")
    cost = np.zeros(n_y + n_x)
    cost[:n_y] = [s - 1 for s in size]
    cost[n_y:] = [-(size[u] - 1) for _, u in parts]
    lower = np.zeros(n_y + n_x)
    for r in rows:
        lower[index[r]] = 1.0
    # Constraint rows: one per (container, input) that some part covers; one per part (x_vu <= y_u).
    ci: list[int] = []
    cj: list[int] = []
    cv: list[float] = []
    slot: dict[tuple[int, int], int] = {}
    for k, (v, u) in enumerate(parts):
        mask = cands[u][0] | cands[u][1]
        for t in range(mask.bit_length()):
            if mask >> t & 1:
                key = (v, t)
                if key not in slot:
                    slot[key] = len(slot)
                    ci.append(slot[key])
                    cj.append(v)
                    cv.append(-1.0)
                ci.append(slot[key])
                cj.append(n_y + k)
                cv.append(1.0)
    n_cover = len(slot)
    for k, (_, u) in enumerate(parts):
        ci += [n_cover + k, n_cover + k]
        cj += [n_y + k, u]
        cv += [1.0, -1.0]
    # A kept node other than a row is read at least twice (one read: inline it, same cost).
    # Valid for an optimum, and it cuts the LP's fractional single uses and the symmetric copies.
    uses: dict[int, list[int]] = {}
    for k, (_, u) in enumerate(parts):
        uses.setdefault(u, []).append(k)
    n_row = n_cover + n_x
    for u in range(n_y):
        if lower[u] == 0.0:
            ci.append(n_row)
            cj.append(u)
            cv.append(2.0)
            for k in uses.get(u, []):
                ci.append(n_row)
                cj.append(n_y + k)
                cv.append(-1.0)
            n_row += 1
    n_cons = n_row
    constraints = []
    if n_cons:
        a = coo_array((cv, (ci, cj)), shape=(n_cons, n_y + n_x)).tocsr()
        constraints = [LinearConstraint(a, -np.inf, 0.0)]
    bounds = Bounds(lower, np.ones(n_y + n_x))
    limit = {"time_limit": time_limit}
    relaxed = milp(cost, integrality=np.zeros(n_y + n_x), bounds=bounds, constraints=constraints, options=limit)
    lp = _ceil(relaxed.fun) if relaxed.status == 0 else 0
    remaining = max(1.0, time_limit - (time.perf_counter() - start))
    res = milp(
        cost,
        integrality=np.ones(n_y + n_x),
        bounds=bounds,
        constraints=constraints,
        options={"time_limit": remaining},
    )
    optimum: int | None = None
    if res.status == 0:
        optimum = round(res.fun)
        best = optimum
    else:
        dual = getattr(res, "mip_dual_bound", None)
        best = max(lp, _ceil(dual)) if dual is not None and np.isfinite(dual) else lp
    return MergeBound(best, optimum, lp, n_y, n_y + n_x, time.perf_counter() - start)


def _ceil(value: float) -> int:
    """Round a solver's bound up to an integer, forgiving its tolerance."""
    return int(np.ceil(value - 1e-6))
