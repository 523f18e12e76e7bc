"""Common-subexpression merging: a constant integer matrix as a shared adder graph.

:func:`merged_adder_graph` turns ``W`` (rows are outputs, columns inputs) into
an :class:`~hwgen.ir.adder_graph.AdderGraph` of two-input add/subtract nodes
that computes ``y = W @ x`` exactly, sharing every signed pair of terms that
several outputs need, under a limit on the adder depth.

The algorithm
-------------
Each row is a set of signed terms. Weights other than +-1 are written in
canonical signed digits, one term per nonzero digit: a term is then an input
at a fixed power-of-two shift, so low-bit integer layers reuse the ternary
machinery unchanged (the shift is free wiring).

1. **Pair extraction** (Hartley's common-subexpression elimination, as in the
   published ternary generator, with sign symmetry): a *pair* is two columns
   and a relative sign; ``x_i - x_j`` and ``x_j - x_i`` and their negations
   are the same pair, because a row takes a new column with either sign. The
   pair that occurs in the most rows is made a new column (one adder) and
   substituted everywhere it occurs, until no pair occurs twice.
2. **Exact lazy counting.** Pair counts never grow: old columns only lose
   terms, and a new column's pairs are counted once, when it is born. So
   candidates sit in buckets by a count that is an upper bound, and a bucket
   is re-counted in bulk (bitsets over rows, ``numpy.bitwise_count``) when it
   becomes the top one: stale pairs fall to their true level, fresh ones are
   exact. That replaces the O(inputs^2) rescan per step that made the
   published generator take minutes on 576 inputs.
3. **Tie-breaking by what a pair destroys.** Among pairs of the top count,
   take first the one whose columns occur in fewest rows: a pair of common
   columns consumes terms that other frequent pairs need.
4. **Blocks at the bottom.** When the best pair occurs in only three (then
   two) rows, the remaining sharing is between small sets of rows: rows that
   agree, up to one sign each, on a whole set of columns can share its sum.
   Candidate pairs are grouped by the rows (and signs) they occur in; the
   groups overlap, so they are taken largest first, lazily re-measured, each
   built as a depth-balanced tree. Taking these low-count pairs in arbitrary
   order fragments the blocks (``bench/cse.py --ablations`` measures what
   each of these heuristics is worth).
5. **Depth.** A row whose terms arrive at depths ``d_t`` can be summed by a
   binary tree of depth ``D`` iff ``sum 2**d_t <= 2**D`` (Kraft), and summing
   the two shallowest terms first achieves it. Every row keeps that sum, and a
   pair is only substituted into the rows where it keeps the sum within the
   limit, so the final per-row trees (built shallowest-first) always meet the
   depth limit: ``ceil(log2(max terms in a row)) + 2`` by default.
6. **Both orientations.** The same search on ``W.T`` gives a graph for
   ``W.T``; its transpose (reverse every edge: a column used ``k`` times
   becomes a ``k``-input sum, a pair becomes a fan-out) computes ``W``, and
   for ternary weights saves exactly as many adders over the naive trees as
   the search saved on ``W.T``. Which orientation pairs better depends on
   the matrix: the transposed search wins on layers with more outputs than
   inputs, on dense binary layers and on layers whose filters nearly repeat;
   the direct one on wide ternary layers. The depth of the transpose is
   bounded during the search by Kraft's inequality read backwards (see
   :class:`_TransposeDepth`): a column's sum is ``ceil(log2 R)`` deep, with
   ``R`` its row uses plus ``2**depth`` of each pair using it, and a pair that
   would push an output past the limit is not taken.
7. **Portfolio.** Runs with different seeds for the order among equal
   candidates and two block thresholds, first one per orientation, then the
   rest on the better one; the graph with fewest adders (then least depth)
   wins. Small layers get many runs, a 512x512 layer two. The number of runs
   depends only on the matrix, so the result is deterministic. Runs go side
   by side to forked workers on large matrices (the same graph either way).
   ``effort="high"`` adds five times as many runs after them, then ruins and
   recreates the best graph (:func:`_remerged`): a round opens a few related
   shared sums back into the rows that read them and searches those rows
   again with the opened pairs forbidden, keeping the result if it has no
   more adders; the best graph seen wins, so high is never worse than default.
8. **Memory.** One run's peak is predicted before it starts
   (:func:`merge_memory_estimate`: expected candidate pairs, columns, a
   fixed part); a matrix over the budget is merged in blocks of inputs, each
   on its own, and the outputs add the blocks' partial sums (see
   ``docs/cse.md``, "Scale").

Against the anchors: the published generator is step 1 alone (then a tree
per row), with a quadratic rescan per step and arbitrary ties; da4ml weighs
pairs by bit width after a column-similarity decomposition. Measured results
against both (and what is left) are in ``docs/cse.md``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from hwgen.errors import TwnError
from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_MERGE_MEMORY",
    "EFFORTS",
    "available_memory",
    "default_max_depth",
    "default_memory_budget",
    "merge_memory_estimate",
    "merged_adder_graph",
    "merged_adder_graph_cached",
    "min_depth",
]

#: Part of the cache key: bump whenever the graphs produced change.
ALGORITHM_VERSION = 1

#: Largest weight magnitude accepted (the frontend limits weights to 16 bits;
#: the pass itself only needs the digits to fit comfortably in int64).
_MAX_WEIGHT = 1 << 30

_Int8Array = NDArray[np.int8]
_Int64Array = NDArray[np.int64]
_Bits = NDArray[np.uint64]


# --------------------------------------------------------------------------
# Input handling


def _as_int_matrix(weights: np.ndarray) -> _Int64Array:
    w = np.asarray(weights)
    if w.ndim != 2:
        raise TwnError(f"weight matrix must be 2-D, not {w.ndim}-D with shape {w.shape}")
    if w.dtype == np.bool_:
        return w.astype(np.int64)
    if not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise TwnError(f"weight matrix must hold integers, not {w.dtype}")
    if np.issubdtype(w.dtype, np.floating):
        if not np.all(np.isfinite(w)):
            raise TwnError("weight matrix has non-finite values")
        if not np.all(w == np.rint(w)):
            raise TwnError("weight matrix has non-integer values")
    if w.size and np.abs(w).max() > _MAX_WEIGHT:
        raise TwnError(f"weights must be smaller than 2**30 in magnitude, not {np.abs(w).max()}")
    return w.astype(np.int64)


def _csd(w: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``w`` as (sign, shift), fewest nonzero digits."""
    digits: list[tuple[int, int]] = []
    shift = 0
    while w:
        if w & 1:
            d = 2 - (w & 3)  # +1 if w % 4 == 1, -1 if w % 4 == 3
            digits.append((d, shift))
            w -= d
        w >>= 1
        shift += 1
    return digits


@dataclass(frozen=True)
class _Terms:
    """``W`` as a ternary matrix over *slots*: slot ``s`` is input ``slot_input[s] << slot_shift[s]``."""

    matrix: _Int8Array
    slot_input: tuple[int, ...]
    slot_shift: tuple[int, ...]


def _expand(w: _Int64Array) -> _Terms:
    m, n = w.shape
    if w.size == 0 or np.abs(w).max() <= 1:
        return _Terms(w.astype(np.int8), tuple(range(n)), (0,) * n)
    digits: dict[tuple[int, int], dict[int, int]] = {}
    for r, j in zip(*np.nonzero(w), strict=True):
        for sign, shift in _csd(int(w[r, j])):
            digits.setdefault((int(j), shift), {})[int(r)] = sign
    slots = sorted(digits)
    t = np.zeros((m, len(slots)), np.int8)
    for s, key in enumerate(slots):
        for r, sign in digits[key].items():
            t[r, s] = sign
    return _Terms(t, tuple(j for j, _ in slots), tuple(k for _, k in slots))


def _row_terms(w: _Int64Array) -> _Int64Array:
    """Signed-digit terms per row (nonzeros for ternary rows)."""
    if w.size == 0:
        return np.zeros(w.shape[0], np.int64)
    if np.abs(w).max() <= 1:
        return np.count_nonzero(w, axis=1).astype(np.int64)
    return np.array([sum(len(_csd(int(v))) for v in row if v) for row in w], np.int64)


def min_depth(weights: np.ndarray) -> int:
    """Least possible adder depth: ``ceil(log2(most terms in a row))``."""
    terms = _row_terms(_as_int_matrix(weights))
    most = int(terms.max(initial=0))
    return math.ceil(math.log2(most)) if most > 1 else 0


def default_max_depth(weights: np.ndarray) -> int:
    """The default depth limit: two levels above the least possible depth.

    The two spare levels let shared subexpressions sit in trees of unequal
    depth; they cost pipeline registers, not adders.
    """
    return min_depth(weights) + 2


# --------------------------------------------------------------------------
# Bitsets over rows


def _pack(rows_by_col: NDArray[np.bool_], words: int) -> _Bits:
    """[k, m] booleans -> [k, words] uint64 (bit r of a row set is row r)."""
    k = rows_by_col.shape[0]
    packed = np.packbits(rows_by_col, axis=1, bitorder="little")
    out = np.zeros((k, words * 8), np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64)


def _popcount(bits: _Bits) -> _Int64Array:
    return np.bitwise_count(bits).sum(axis=-1, dtype=np.int64)


# --------------------------------------------------------------------------
# The extraction engine


_Chunk = tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int8]]


class _TransposeDepth:
    """Keeps the transpose of a search on ``W.T`` within a depth limit.

    In the transposed graph a column ``v`` becomes the sum of its uses: a use
    by a row is an input (depth 0), a use by pair ``c`` is ``c``'s sum. Summed
    shallowest-first, ``v`` is ``ceil(log2 R(v))`` deep, where ``R(v)`` is the
    number of row uses plus ``2**depth`` of every pair using ``v`` (Kraft
    again, read backwards). Output ``i`` sums the uses of all its slots, so it
    is ``ceil(log2 out[i])`` deep with ``out[i]`` the sum of their ``R``.
    Taking a pair only ever raises ``R``, so refusing every pair that would
    push an output past the limit keeps the whole search within it.
    """

    def __init__(self, uses: list[int], slot_output: tuple[int, ...], n_outputs: int, limit: int) -> None:
        self.n = len(uses)
        self.r = list(uses)
        self.children: list[tuple[int, int]] = []
        self.slot_output = slot_output
        self.out = [0] * n_outputs
        for slot, count in enumerate(uses):
            self.out[slot_output[slot]] += count
        self.cap = 1 << limit

    @staticmethod
    def _weight(r: int) -> int:
        return 1 << (r - 1).bit_length() if r > 0 else 0

    def plan(self, a: int, b: int, k: int) -> tuple[dict[int, int], dict[int, int]] | None:
        """New ``R`` of the columns and output sums if (a, b) is taken on k rows; None if too deep."""
        grow = self._weight(k) - k
        delta: dict[int, int] = {a: grow}
        delta[b] = delta.get(b, 0) + grow
        new: dict[int, int] = {}
        out: dict[int, int] = {}
        # Children have lower indices than their parents: visiting columns
        # from the highest index down sees every change to a column first.
        heap = [-a, -b]
        while heap:
            v = -heapq.heappop(heap)
            if v in new:
                continue
            old = self.r[v]
            new[v] = old + delta[v]
            if v < self.n:
                i = self.slot_output[v]
                out[i] = out.get(i, self.out[i]) + new[v] - old
                continue
            change = self._weight(new[v]) - self._weight(old)
            if change:
                for child in self.children[v - self.n]:
                    delta[child] = delta.get(child, 0) + change
                    heapq.heappush(heap, -child)
        if any(total > self.cap for total in out.values()):
            return None
        return new, out

    def commit(self, plan: tuple[dict[int, int], dict[int, int]], a: int, b: int, k: int) -> None:
        new, out = plan
        for v, r in new.items():
            self.r[v] = r
        for i, total in out.items():
            self.out[i] = total
        self.r.append(k)
        self.children.append((a, b))


class _Extraction:
    """Greedy signed-pair extraction on a ternary matrix, depth-limited.

    Columns ``0..n-1`` are the slots; every extracted pair appends a column.
    ``pairs[k] = (a, b, rel)`` defines column ``n + k = col a + rel * col b``.
    ``matrix[r, c]`` is the sign with which row ``r`` uses column ``c``.

    The rows holding a column with a positive (negative) sign are kept twice:
    as numpy bitsets for counting many pairs at once, and as Python integers
    (``pos_int``/``neg_int``) for the one-pair-at-a-time path, where
    ``int.bit_count`` is far cheaper than a numpy call.
    """

    _CHUNK = 1 << 17
    #: Cells (rows x columns) counted at once when a new column's pairs are counted.
    _ROW_CELLS = 1 << 22

    def __init__(
        self,
        t: _Int8Array,
        depth_limit: int,
        seed: int,
        block_level: int,
        *,
        transpose_depth: _TransposeDepth | None = None,
        ablate: frozenset[str] = frozenset(),
        depths: _Int64Array | None = None,
        kraft_offset: _Int64Array | None = None,
        forbidden: frozenset[tuple[int, int, int]] = frozenset(),
    ) -> None:
        m, n = t.shape
        # Pairs (low column, high column, rel) never to extract (the high effort's tabu).
        self.forbidden = forbidden
        self.m, self.n, self.ncol = m, n, n
        self.words = max(1, (m + 63) // 64)
        cap = max(2 * n, 16)
        self.matrix = np.zeros((m, cap), np.int8)
        self.matrix[:, :n] = t
        self.pos = np.zeros((cap, self.words), np.uint64)
        self.neg = np.zeros((cap, self.words), np.uint64)
        self.pos[:n] = _pack(t.T > 0, self.words)
        self.neg[:n] = _pack(t.T < 0, self.words)
        self.pos_int = [self._to_int(v) for v in self.pos[:n]]
        self.neg_int = [self._to_int(v) for v in self.neg[:n]]
        self.depth = np.zeros(cap, np.int64)
        self.freq = np.zeros(cap, np.int64)
        self.freq[:n] = np.count_nonzero(t, axis=0)
        self.kraft = np.count_nonzero(t, axis=1).astype(np.int64)
        self.depth_max = 0
        if depths is not None:
            # Columns that are already sums (the high effort's re-merging): their
            # depths, and the Kraft sums of the rows' terms outside the matrix.
            self.depth[:n] = depths
            self.depth_max = int(depths.max(initial=0))
            self.kraft = (np.abs(t).astype(np.int64) << depths.astype(np.int64)[None, :]).sum(axis=1)
        if kraft_offset is not None:
            self.kraft += kraft_offset
        self.kraft_max = int(self.kraft.max(initial=0))
        self.budget = 1 << depth_limit
        self.block_level = block_level
        # Switches to measure what each heuristic is worth (bench/cse.py --ablations):
        # "random-ties" orders pairs of equal count at random, "random-blocks"
        # takes blocks in random order instead of largest first.
        self.ablate = ablate
        self.transpose_depth = transpose_depth
        self.rng = np.random.default_rng(seed)
        self.pairs: list[tuple[int, int, int]] = []
        self.buckets: list[list[_Chunk]] = [[] for _ in range(m + 1)]
        self._fit_cache: dict[int, int] = {}
        self._seed_pairs(t)

    # -- bitset conversions ------------------------------------------------

    def _to_int(self, bits: _Bits) -> int:
        return int.from_bytes(np.ascontiguousarray(bits, dtype="<u8").tobytes(), "little")

    def _to_bits(self, value: int) -> _Bits:
        return np.frombuffer(value.to_bytes(self.words * 8, "little"), dtype="<u8").astype(np.uint64)

    def _rows(self, value: int) -> _Int64Array:
        b = np.frombuffer(value.to_bytes(self.words * 8, "little"), dtype=np.uint8)
        return np.flatnonzero(np.unpackbits(b, bitorder="little")[: self.m])

    # -- candidate bookkeeping -------------------------------------------

    def _seed_pairs(self, t: _Int8Array) -> None:
        m, n = t.shape
        if n < 2 or m < 2:
            return
        # Co-occurrence counts by matrix products (exact in float32 below
        # 2**24 rows), a block of columns at a time to bound memory.
        f = t.astype(np.float32)
        g = np.abs(f)
        step = max(1, (1 << 22) // n)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            both = g[:, lo:hi].T @ g[:, lo:]
            agree = f[:, lo:hi].T @ f[:, lo:]
            for rel, counts in ((1, both + agree), (-1, both - agree)):
                half = np.rint(counts / 2).astype(np.int32)
                i, j = np.nonzero(np.triu(half, 1) >= 2)
                self._push(i + lo, j + lo, np.full(len(i), rel, np.int8), half[i, j])

    def _push(self, a: np.ndarray, b: np.ndarray, rel: np.ndarray, counts: np.ndarray) -> None:
        if len(a) == 0:
            return
        order = np.argsort(counts, kind="stable")
        a = a[order].astype(np.int32)
        b = b[order].astype(np.int32)
        rel = rel[order].astype(np.int8)
        counts = counts[order]
        starts = np.flatnonzero(counts[1:] != counts[:-1]) + 1
        for lo, hi in zip([0, *starts.tolist()], [*starts.tolist(), len(counts)], strict=True):
            self.buckets[int(counts[lo])].append((a[lo:hi], b[lo:hi], rel[lo:hi]))

    def _push_one(self, a: int, b: int, rel: int, count: int) -> None:
        self.buckets[count].append((np.array([a], np.int32), np.array([b], np.int32), np.array([rel], np.int8)))

    def _take(self, level: int) -> _Chunk:
        chunks = self.buckets[level]
        self.buckets[level] = []
        return (
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            np.concatenate([c[2] for c in chunks]),
        )

    # -- counting ----------------------------------------------------------

    def _delta(self, da: np.ndarray, db: np.ndarray) -> _Int64Array:
        """Growth of a row's Kraft sum when terms of depths da, db become one."""
        one = np.int64(1)
        top = np.maximum(da, db).astype(np.int64)
        return (one << (top + 1)) - (one << da.astype(np.int64)) - (one << db.astype(np.int64))

    def _fit_int(self, delta: int) -> int:
        """Rows whose Kraft sum can still grow by ``delta`` (cached until it changes)."""
        fit = self._fit_cache.get(delta)
        if fit is None:
            bits = _pack((self.kraft + delta <= self.budget)[None, :], self.words)[0]
            fit = self._fit_cache[delta] = self._to_int(bits)
        return fit

    def _occurrences(self, a: np.ndarray, b: np.ndarray, rel: np.ndarray) -> _Bits:
        """Row sets where each pair occurs and fits the depth limit ([k, words])."""
        out = np.empty((len(a), self.words), np.uint64)
        slack = self.budget - self.kraft_max
        for lo in range(0, len(a), self._CHUNK):
            sl = slice(lo, lo + self._CHUNK)
            pa, na, pb, nb = self.pos[a[sl]], self.neg[a[sl]], self.pos[b[sl]], self.neg[b[sl]]
            bits = np.where((rel[sl] > 0)[:, None], (pa & pb) | (na & nb), (pa & nb) | (na & pb))
            if (2 << self.depth_max) > slack:
                delta = self._delta(self.depth[a[sl]], self.depth[b[sl]])
                tight = delta > slack
                for d in np.unique(delta[tight]).tolist():
                    bits[delta == d] &= self._to_bits(self._fit_int(d))
            out[sl] = bits
        return out

    def _occurrence(self, a: int, b: int, rel: int) -> int:
        """Row set (Python int) where one pair occurs and fits the depth limit."""
        pa, na, pb, nb = self.pos_int[a], self.neg_int[a], self.pos_int[b], self.neg_int[b]
        x = (pa & pb) | (na & nb) if rel > 0 else (pa & nb) | (na & pb)
        da, db = int(self.depth[a]), int(self.depth[b])
        delta = (2 << max(da, db)) - (1 << da) - (1 << db)
        if delta > self.budget - self.kraft_max:
            x &= self._fit_int(delta)
        return x

    # -- extraction ----------------------------------------------------------

    def _grow(self) -> None:
        cap = self.matrix.shape[1] * 2
        matrix = np.zeros((self.m, cap), np.int8)
        matrix[:, : self.ncol] = self.matrix[:, : self.ncol]
        self.matrix = matrix
        for name in ("pos", "neg"):
            old = getattr(self, name)
            new = np.zeros((cap, self.words), np.uint64)
            new[: self.ncol] = old[: self.ncol]
            setattr(self, name, new)
        for name in ("depth", "freq"):
            old = getattr(self, name)
            new = np.zeros(cap, np.int64)
            new[: self.ncol] = old[: self.ncol]
            setattr(self, name, new)

    def _try(self, a: int, b: int, rel: int, level: int) -> bool:
        """Extract pair (a, b, rel) if it still occurs ``level`` times; else re-file it.

        A pair the transposed depth limit refuses is dropped.
        """
        x = self._occurrence(a, b, rel)
        count = x.bit_count()
        if count == level:
            return self._extract(a, b, rel, x) >= 0
        if count >= 2:
            self._push_one(a, b, rel, count)
        return False

    def _extract(self, a: int, b: int, rel: int, x: int) -> int:
        """Make pair (a, b, rel) a new column on the rows ``x``; its index, or -1 if refused."""
        if self.forbidden and (min(a, b), max(a, b), rel) in self.forbidden:
            return -1
        tracker = self.transpose_depth
        if tracker is not None:
            plan = tracker.plan(a, b, x.bit_count())
            if plan is None:
                return -1
            tracker.commit(plan, a, b, x.bit_count())
        if self.ncol >= self.matrix.shape[1]:
            self._grow()
        c = self.ncol
        self.ncol += 1
        rows = self._rows(x)
        sign = self.matrix[rows, a].copy()
        self.matrix[rows, c] = sign
        self.matrix[rows, a] = 0
        self.matrix[rows, b] = 0
        keep = ~x
        self.pos_int.append(self.pos_int[a] & x)
        self.neg_int.append(self.neg_int[a] & x)
        for col in (a, b):
            self.pos_int[col] &= keep
            self.neg_int[col] &= keep
        for col in (a, b, c):
            self.pos[col] = self._to_bits(self.pos_int[col])
            self.neg[col] = self._to_bits(self.neg_int[col])
        da, db = int(self.depth[a]), int(self.depth[b])
        d = max(da, db) + 1
        self.depth[c] = d
        self.depth_max = max(self.depth_max, d)
        grow = (1 << d) - (1 << da) - (1 << db)
        if grow:
            self.kraft[rows] += grow
            self.kraft_max = max(self.kraft_max, int(self.kraft[rows].max()))
            self._fit_cache.clear()
        k = len(rows)
        self.freq[c] = k
        self.freq[a] -= k
        self.freq[b] -= k
        self.pairs.append((a, b, rel))
        # The new column's pairs, counted once on its own rows: row by row
        # when it has few rows, else with bitsets over its rows, so memory
        # stays linear in the columns (rows x columns at once was gigabytes
        # on a transposed 4608-input layer). Both count the same.
        if len(rows) * c <= self._ROW_CELLS and len(rows) <= 4 * self.words:
            same_counts, opp_counts = self._new_counts_by_rows(rows, sign, c, d)
        else:
            same_counts, opp_counts = self._new_counts_by_bits(c, d)
        for r, counts in ((1, same_counts), (-1, opp_counts)):
            others = np.flatnonzero(counts >= 2)
            self._push(others, np.full(len(others), c), np.full(len(others), r, np.int8), counts[others])
        return c

    def _new_counts_by_rows(
        self, rows: _Int64Array, sign: _Int8Array, c: int, d: int
    ) -> tuple[_Int64Array, _Int64Array]:
        """Rows sharing each old column with new column ``c`` (same sign, opposite sign)."""
        uses = self.matrix[rows, :c] * sign[:, None]
        same, opp = uses == 1, uses == -1
        if (2 << self.depth_max) > self.budget - self.kraft_max:
            delta = self._delta(self.depth[:c], np.full(c, d))
            fits = self.kraft[rows][:, None] <= self.budget - delta[None, :]
            same &= fits
            opp &= fits
        return same.sum(axis=0), opp.sum(axis=0)

    def _new_counts_by_bits(self, c: int, d: int) -> tuple[_Int64Array, _Int64Array]:
        """As :meth:`_new_counts_by_rows`, from the bitsets (for columns used in many rows)."""
        pc, nc = self.pos[c], self.neg[c]
        same_counts = np.empty(c, np.int64)
        opp_counts = np.empty(c, np.int64)
        tight = (2 << self.depth_max) > self.budget - self.kraft_max
        delta = self._delta(self.depth[:c], np.full(c, d)) if tight else None
        slack = self.budget - self.kraft_max
        step = max(1, self._ROW_CELLS // (8 * self.words))
        for lo in range(0, c, step):
            hi = min(c, lo + step)
            pj, nj = self.pos[lo:hi], self.neg[lo:hi]
            same = (pj & pc) | (nj & nc)
            opp = (pj & nc) | (nj & pc)
            if delta is not None:
                part = delta[lo:hi]
                for value in np.unique(part[part > slack]).tolist():
                    mask = self._to_bits(self._fit_int(value))
                    pick = part == value
                    same[pick] &= mask
                    opp[pick] &= mask
            same_counts[lo:hi] = _popcount(same)
            opp_counts[lo:hi] = _popcount(opp)
        return same_counts, opp_counts

    # -- the search ------------------------------------------------------------

    def run(self) -> _Extraction:
        level = self.m
        while level >= 2:
            if not self.buckets[level]:
                level -= 1
                continue
            a, b, rel = self._take(level)
            bits = self._occurrences(a, b, rel)
            counts = _popcount(bits)
            low = (counts >= 2) & (counts < level)
            self._push(a[low], b[low], rel[low], counts[low])
            top = counts == level
            if level <= self.block_level:
                self._block_level(level, a[top], b[top], rel[top], bits[top])
            else:
                self._pair_level(level, a[top], b[top], rel[top])
        return self

    def _pair_level(self, level: int, a: np.ndarray, b: np.ndarray, rel: np.ndarray) -> None:
        key = self.freq[a] * self.freq[b] if "random-ties" not in self.ablate else np.zeros(len(a))
        order = np.lexsort((self.rng.random(len(a)), key))
        for i, j, r in zip(a[order].tolist(), b[order].tolist(), rel[order].tolist(), strict=True):
            self._try(i, j, r, level)

    def _block_level(self, level: int, a: np.ndarray, b: np.ndarray, rel: np.ndarray, bits: _Bits) -> None:
        """Take the pairs of this level grouped by the rows (and signs) they occur in."""
        if len(a) == 0:
            return
        positive = self.pos[a] & bits
        # One sign pattern per row set up to global negation: the first row positive.
        first_word = np.argmax(bits != 0, axis=1)
        idx = np.arange(len(a))
        word = bits[idx, first_word]
        lowest = word & (~word + np.uint64(1))
        flip = (positive[idx, first_word] & lowest) == 0
        positive = np.where(flip[:, None], bits & ~positive, positive)
        keys = np.concatenate([bits, positive], axis=1)
        _, group, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        n_groups = len(group)
        # The columns of each group, sorted and unique, all groups at once.
        gid = np.concatenate([inverse, inverse])
        col = np.concatenate([a, b]).astype(np.int64)
        by_col = np.lexsort((col, gid))
        gid, col = gid[by_col], col[by_col]
        first = np.ones(len(col), np.bool_)
        first[1:] = (gid[1:] != gid[:-1]) | (col[1:] != col[:-1])
        gid, col = gid[first], col[first]
        starts = np.searchsorted(gid, np.arange(n_groups + 1))
        size = np.diff(starts)
        # Mean frequency of a group's columns (integer sums: exact in any order).
        fkey = np.add.reduceat(self.freq[col], starts[:-1]) / size
        order = np.lexsort((self.rng.random(n_groups), fkey, -size))
        shuffled = "random-blocks" in self.ablate
        if shuffled:
            order = self.rng.permutation(n_groups)
        heap = [(0 if shuffled else -int(size[g]), rank, int(g)) for rank, g in enumerate(order.tolist())]
        heapq.heapify(heap)
        pos_int, neg_int = self.pos_int, self.neg_int
        while heap:
            neg_size, rank, g = heapq.heappop(heap)
            rows_bits = self._to_int(keys[group[g], : self.words])
            plus = self._to_int(keys[group[g], self.words :])
            minus = rows_bits & ~plus
            block = []
            for c in col[starts[g] : starts[g + 1]].tolist():
                pc, nc = pos_int[c] & rows_bits, neg_int[c] & rows_bits
                if (pc == plus and nc == minus) or (pc == minus and nc == plus):
                    block.append(c)
            if len(block) < 2:
                continue
            if len(block) < -neg_size and not shuffled:
                heapq.heappush(heap, (-len(block), rank, g))
                continue
            self._extract_block(block, level)
        # Whatever still occurs `level` times (a block cut short by the depth
        # limit) goes through the pairwise path, which always makes progress.
        bits = self._occurrences(a, b, rel)
        counts = _popcount(bits)
        low = (counts >= 2) & (counts < level)
        self._push(a[low], b[low], rel[low], counts[low])
        top = counts == level
        if top.any():
            self._pair_level(level, a[top], b[top], rel[top])

    def _extract_block(self, block: list[int], level: int) -> None:
        """Sum a block of columns shared by the same rows, shallowest terms first."""
        items = [(int(self.depth[c]), int(c)) for c in block]
        heapq.heapify(items)
        while len(items) >= 2:
            (da, ca), (db, cb) = heapq.heappop(items), heapq.heappop(items)
            made = self._block_pair(ca, cb, level)
            if made is None:
                # The depth limit refuses the shallowest pair in some row: try
                # the others, least depth growth first, before giving up.
                rest = [(da, ca), (db, cb), *items]
                made_any = False
                cands = sorted(
                    (abs(x - y), i, j) for i, (x, _) in enumerate(rest) for j, (y, _) in enumerate(rest) if i < j
                )
                for _, i, j in cands:
                    made = self._block_pair(rest[i][1], rest[j][1], level)
                    if made is not None:
                        items = [it for k, it in enumerate(rest) if k not in (i, j)]
                        items.append((int(self.depth[made]), made))
                        heapq.heapify(items)
                        made_any = True
                        break
                if not made_any:
                    return
                continue
            heapq.heappush(items, (int(self.depth[made]), made))

    def _block_pair(self, ca: int, cb: int, level: int) -> int | None:
        for rel in (1, -1):
            x = self._occurrence(ca, cb, rel)
            if x.bit_count() == level:
                c = self._extract(ca, cb, rel, x)
                return c if c >= 0 else None
        return None

    def adders(self) -> int:
        terms = np.count_nonzero(self.matrix[:, : self.ncol], axis=1)
        return len(self.pairs) + int(np.maximum(terms - 1, 0).sum())


# --------------------------------------------------------------------------
# From an extraction to an AdderGraph


def _negated(op: Operand) -> Operand:
    return Operand(op.value, not op.negate, op.shift)


class _GraphBuilder:
    """Appends add nodes, keeping at most one operand negated and shifts relative."""

    def __init__(self, n_inputs: int) -> None:
        self.n_inputs = n_inputs
        self.nodes: list[AddNode] = []
        self.depths: list[int] = [0] * n_inputs

    def add(self, x: Operand, y: Operand) -> Operand:
        s = min(x.shift, y.shift)
        x = Operand(x.value, x.negate, x.shift - s)
        y = Operand(y.value, y.negate, y.shift - s)
        negate = False
        if x.negate and y.negate:
            # -a - b is built as a + b; the sign moves to the consumer.
            x, y, negate = _negated(x), _negated(y), True
        elif x.negate:
            x, y = y, x
        self.nodes.append(AddNode(x, y))
        self.depths.append(1 + max(self.depths[x.value], self.depths[y.value]))
        return Operand(self.n_inputs + len(self.nodes) - 1, negate, s)

    def sum(self, terms: list[Operand]) -> Operand | None:
        """Sum terms with a tree of least depth: always add the two shallowest."""
        if not terms:
            return None
        heap = [(self.depths[t.value], i, t) for i, t in enumerate(terms)]
        heapq.heapify(heap)
        tick = len(heap)
        while len(heap) > 1:
            _, _, x = heapq.heappop(heap)
            _, _, y = heapq.heappop(heap)
            z = self.add(x, y)
            heapq.heappush(heap, (self.depths[z.value], tick, z))
            tick += 1
        return heap[0][2]

    def graph(self, outputs: list[Operand | None]) -> AdderGraph:
        return AdderGraph(self.n_inputs, tuple(self.nodes), tuple(outputs))


def _column_uses(ext: _Extraction) -> tuple[_Int64Array, _Int64Array, _Int8Array]:
    rows, cols = np.nonzero(ext.matrix[:, : ext.ncol])
    return rows, cols, ext.matrix[rows, cols]


def _direct_graph(ext: _Extraction, terms: _Terms, n_inputs: int) -> AdderGraph:
    """Pairs become nodes in the order made; each row is summed shallowest-first."""
    builder = _GraphBuilder(n_inputs)
    handle = [Operand(j, False, k) for j, k in zip(terms.slot_input, terms.slot_shift, strict=True)]
    for a, b, rel in ext.pairs:
        handle.append(builder.add(handle[a], handle[b] if rel > 0 else _negated(handle[b])))
    row_terms: list[list[Operand]] = [[] for _ in range(ext.m)]
    rows, cols, signs = _column_uses(ext)
    for r, c, s in zip(rows.tolist(), cols.tolist(), signs.tolist(), strict=True):
        row_terms[r].append(handle[c] if s > 0 else _negated(handle[c]))
    return builder.graph([builder.sum(t) for t in row_terms])


def _transposed_graph(ext: _Extraction, terms: _Terms, n_inputs: int, n_outputs: int) -> AdderGraph:
    """Transpose the graph found for ``W.T`` into one for ``W``.

    In the search on ``W.T`` the rows are the inputs of ``W`` and the slots
    its outputs. Reversing every edge turns a row's use of a column into an
    edge from input ``j`` to that column, a pair ``c = a + rel*b`` into edges
    from ``c`` to ``a`` and ``b``, and each column into the sum of its uses:
    a column used ``k`` times costs ``k - 1`` adders, summed shallowest-first.
    Columns are visited from the last made, so every use is ready.
    """
    builder = _GraphBuilder(n_inputs)
    uses: list[list[Operand]] = [[] for _ in range(ext.ncol)]
    rows, cols, signs = _column_uses(ext)
    for r, c, s in zip(rows.tolist(), cols.tolist(), signs.tolist(), strict=True):
        uses[c].append(Operand(r, s < 0, 0))
    out_terms: list[list[Operand]] = [[] for _ in range(n_outputs)]
    for c in range(ext.ncol - 1, -1, -1):
        if c >= ext.n:
            value = builder.sum(uses[c])
            assert value is not None, "an extracted column without uses"
            a, b, rel = ext.pairs[c - ext.n]
            uses[a].append(value)
            uses[b].append(value if rel > 0 else _negated(value))
        else:
            k = terms.slot_shift[c]
            out_terms[terms.slot_input[c]].extend(Operand(t.value, t.negate, t.shift + k) for t in uses[c])
    return builder.graph([builder.sum(t) for t in out_terms])


# --------------------------------------------------------------------------
# High effort: ruin and recreate over a finished graph


@dataclass
class _Sums:
    """A cancellation-free graph as the search sees it: shared sums (pairs) and what each row adds.

    Column ``j < n`` is input ``j``; column ``n + k`` is ``col a + rel * col b``
    for ``pairs[k] = (a, b, rel)`` (or None once dropped); ``rows[r]`` maps the
    columns row ``r`` adds to their signs. A node read once, on the way to one
    output, is not a column: it is part of that row's own sum, which the graph
    builds shallowest-first.
    """

    n: int
    pairs: list[tuple[int, int, int] | None]
    rows: list[dict[int, int]]

    @property
    def adders(self) -> int:
        return sum(p is not None for p in self.pairs) + sum(max(0, len(r) - 1) for r in self.rows)

    def depths(self) -> list[int]:
        d = [0] * (self.n + len(self.pairs))
        for k, p in enumerate(self.pairs):
            if p is not None:
                d[self.n + k] = 1 + max(d[p[0]], d[p[1]])
        return d

    def compact(self) -> _Sums:
        """Drop the pairs nothing reads any more and number the rest densely (same order)."""
        reads = [0] * (self.n + len(self.pairs))
        for row in self.rows:
            for c in row:
                reads[c] += 1
        for k in range(len(self.pairs) - 1, -1, -1):
            p = self.pairs[k]
            if p is None:
                continue
            if reads[self.n + k] == 0:
                self.pairs[k] = None
                continue
            reads[p[0]] += 1
            reads[p[1]] += 1
        pairs: list[tuple[int, int, int] | None] = []
        index = {j: j for j in range(self.n)}
        for k, p in enumerate(self.pairs):
            if p is not None:
                index[self.n + k] = self.n + len(pairs)
                pairs.append((index[p[0]], index[p[1]], p[2]))
        rows = [{index[c]: s for c, s in row.items()} for row in self.rows]
        return _Sums(self.n, pairs, rows)

    def graph(self) -> AdderGraph:
        builder = _GraphBuilder(self.n)
        handle = [Operand(j) for j in range(self.n)]
        for p in self.pairs:
            assert p is not None
            a, b, rel = p
            handle.append(builder.add(handle[a], handle[b] if rel > 0 else _negated(handle[b])))
        outputs = [[handle[c] if s > 0 else _negated(handle[c]) for c, s in sorted(row.items())] for row in self.rows]
        return builder.graph([builder.sum(terms) for terms in outputs])


def _sums_of(graph: AdderGraph) -> _Sums | None:
    """The graph's shared sums and row sums; None if it is not a two-input graph without shifts."""
    n = graph.n_inputs
    if any(node.c is not None or node.a.shift or node.b.shift for node in graph.nodes):
        return None
    if any(o is not None and o.shift for o in graph.outputs):
        return None
    reads = [0] * graph.n_values
    for node in graph.nodes:
        reads[node.a.value] += 1
        reads[node.b.value] += 1
    for o in graph.outputs:
        if o is not None:
            reads[o.value] += 1
    private = [v >= n and reads[v] == 1 for v in range(graph.n_values)]
    # Nodes reached from an output only through nodes read once are that row's own sum.
    rows: list[dict[int, int]] = []
    own = [False] * graph.n_values
    leaves: list[list[tuple[int, int]]] = []
    for o in graph.outputs:
        found: list[tuple[int, int]] = []
        stack = [] if o is None else [(o.value, -1 if o.negate else 1)]
        while stack:
            v, s = stack.pop()
            if private[v]:
                own[v] = True
                node = graph.nodes[v - n]
                stack.append((node.a.value, -s if node.a.negate else s))
                stack.append((node.b.value, -s if node.b.negate else s))
            else:
                found.append((v, s))
        leaves.append(found)
    # Every other node is a column, canonical up to sign: value = sign * (col a + rel * col b).
    handle: dict[int, tuple[int, int]] = {j: (j, 1) for j in range(n)}
    pairs: list[tuple[int, int, int] | None] = []
    for k, node in enumerate(graph.nodes):
        v = n + k
        if own[v]:
            continue
        (ca, sa), (cb, sb) = handle[node.a.value], handle[node.b.value]
        sa = -sa if node.a.negate else sa
        sb = -sb if node.b.negate else sb
        handle[v] = (n + len(pairs), sa)
        pairs.append((ca, cb, sa * sb))
    for found in leaves:
        row: dict[int, int] = {}
        for v, s in found:
            c, sc = handle[v]
            if c in row:
                return None  # a column read twice by one row: not cancellation-free
            row[c] = s * sc
        rows.append(row)
    return _Sums(n, pairs, rows)


def _ruin_and_recreate(sums: _Sums, limit: int, rng: np.random.Generator, size: int) -> _Sums:
    """Open up to ``size`` related shared sums back into their rows and merge those rows again.

    The sums opened are read by rows only, the first at random, the others
    from the rows that read it (with none to open, ``4 * size`` rows at
    random); the rows they leave are searched again (the
    pair extraction on the columns those rows hold, with the columns' depths
    and the Kraft sums of their other terms), so the depth limit still holds.
    """
    n = sums.n
    read_by_pair: set[int] = set()
    for p in sums.pairs:
        if p is not None:
            read_by_pair.update((p[0], p[1]))
    users: dict[int, list[int]] = {}
    for r, row in enumerate(sums.rows):
        for c in row:
            if c >= n:
                users.setdefault(c, []).append(r)
    top = sorted(c for c in users if c not in read_by_pair)
    chosen: list[int] = []
    frontier = [top[int(rng.integers(len(top)))]] if top else []
    seen = set(frontier)
    while frontier and len(chosen) < size:
        c = frontier.pop(0)
        chosen.append(c)
        near = sorted({d for r in users[c] for d in sums.rows[r] if d >= n and d not in read_by_pair} - seen)
        rng.shuffle(near)
        for d in near:
            seen.add(d)
            frontier.append(d)
    rows = [dict(row) for row in sums.rows]
    pairs = list(sums.pairs)
    touched: set[int] = set()
    opened: list[tuple[int, int, int]] = []
    for c in chosen:
        p = pairs[c - n]
        assert p is not None
        a, b, rel = p
        for r in users[c]:
            s = rows[r].pop(c)
            rows[r][a] = s
            rows[r][b] = s * rel
            touched.add(r)
        pairs[c - n] = None
        opened.append((a, b, rel))
    if not touched:
        # Nothing shared to open (a graph of plain trees): search some rows again.
        touched.update(rng.choice(len(rows), min(len(rows), 4 * size), replace=False).tolist())
    depth = _Sums(n, pairs, rows).depths()
    cols = sorted({c for r in touched for c in rows[r]})
    at = {c: k for k, c in enumerate(cols)}
    active = sorted(r for r in range(len(rows)) if any(c in at for c in rows[r]))
    t = np.zeros((len(active), len(cols)), np.int8)
    offset = np.zeros(len(active), np.int64)
    for i, r in enumerate(active):
        for c, s in rows[r].items():
            if c in at:
                t[i, at[c]] = s
            else:
                offset[i] += 1 << depth[c]
    ext = _Extraction(
        t,
        limit,
        int(rng.integers(1 << 31)),
        3 + int(rng.integers(2)),
        depths=np.array([depth[c] for c in cols], np.int64),
        kraft_offset=offset,
        forbidden=frozenset((min(at[a], at[b]), max(at[a], at[b]), rel) for a, b, rel in opened),
    ).run()
    index = list(cols)
    for a, b, rel in ext.pairs:
        index.append(n + len(pairs))
        pairs.append((index[a], index[b], rel))
    for i, r in enumerate(active):
        row = {c: s for c, s in rows[r].items() if c not in at}
        for k in np.flatnonzero(ext.matrix[i, : ext.ncol]).tolist():
            row[index[k]] = int(ext.matrix[i, k])
        rows[r] = row
    return _Sums(n, pairs, rows).compact()


#: Shared sums one round opens: 2, 3, ... _RUIN_SIZES + 1, in turn.
_RUIN_SIZES = 7


def _remerged(graph: AdderGraph, limit: int, seed: int, rounds: int) -> AdderGraph:
    """Ruin and recreate from ``graph`` for ``rounds`` rounds; the best graph (never worse)."""
    sums = _sums_of(graph)
    if sums is None:
        return graph
    rng = np.random.default_rng(seed)
    best = current = sums.compact()
    for k in range(rounds):
        size = 2 + k % _RUIN_SIZES
        trial = _ruin_and_recreate(current, limit, rng, size)
        # Equal counts are accepted: the search drifts over graphs of the same cost.
        if trial.adders <= current.adders:
            current = trial
            if trial.adders < best.adders:
                best = trial
    result = best.graph()
    return result if _better(result, graph) else graph


# --------------------------------------------------------------------------
# The portfolio and the public API

#: Search runs per matrix: ``ceil(_RUNS_SCALE / sqrt(terms))`` within
#: [2, _MAX_RUNS]. A run costs 20-40 us per signed-digit term, so small layers
#: get many restarts (where they pay most) and a 512x512 layer two runs (one
#: per orientation). It depends on the matrix only: results are deterministic.
_RUNS_SCALE = 640
_MAX_RUNS = 32
#: Depth limit of a search whose depth is bounded some other way.
_UNBOUNDED = 40


def _trivial_graph(w: _Int64Array) -> AdderGraph:
    from hwgen.passes.naive_tree import naive_adder_graph

    return naive_adder_graph(w)


def _better(g: AdderGraph, best: AdderGraph | None) -> bool:
    return best is None or (g.adders, g.depth) < (best.adders, best.depth)


#: ``effort="high"``: extra runs per default run (other seeds, block thresholds
#: 2..5, both orientations), after the default portfolio, whose graph they can
#: only improve on. About ten times the default's time.
_HIGH_EFFORT_FACTOR = 5
_HIGH_EFFORT_MIN_RUNS = 8
#: ``effort="high"``, after the restarts: rounds of ruin and recreate
#: (:func:`_remerged`) per default run, at least the minimum.
_REMERGE_ROUNDS_PER_RUN = 25
_REMERGE_MIN_ROUNDS = 60
#: Part of the high effort's cache key: bump whenever its graphs change.
_HIGH_EFFORT_VERSION = 2

#: Memory model of one search run, bytes (calibrated with tracemalloc on
#: trained-like layers of 576..4608 inputs, with margin): per candidate pair
#: (``_PAIR_BYTES + _PAIR_WORD_BYTES`` per 64 rows), per column of the
#: growing matrix (``_COLUMN_ROW_BYTES`` per row, plus its bitsets), and a
#: fixed part.
_PAIR_BYTES = 120
_PAIR_WORD_BYTES = 24
_COLUMN_ROW_BYTES = 3
_FIXED_BYTES = 48 << 20
#: Smallest block of inputs the bounded strategy merges on its own.
_MIN_BLOCK_COLUMNS = 16

EFFORTS = ("default", "high")


def _candidate_pairs(t: _Int8Array) -> float:
    """Expected number of signed column pairs occurring in two rows or more.

    Pairs with frequencies ``f_i, f_j`` in ``m`` rows meet in about
    ``f_i f_j / m`` rows, half of them with each relative sign; Poisson tails
    of that give the count the seeding will hold (within 1% of the exact
    count on the layers measured), from a histogram of the frequencies in
    time independent of the number of pairs.
    """
    m, n = t.shape
    if m < 2 or n < 2:
        return 0.0
    freq = np.count_nonzero(t, axis=0)
    values, counts = np.unique(freq, return_counts=True)
    lam = np.outer(values, values).astype(np.float64) / (2.0 * m)
    at_least_two = 1.0 - np.exp(-lam) * (1.0 + lam)
    ordered = np.outer(counts, counts).astype(np.float64) - np.diag(counts)
    return float((ordered * at_least_two).sum())


def _search_bytes(t: _Int8Array) -> int:
    """Estimated peak memory of one search run on the ternary matrix ``t``."""
    m, n = t.shape
    words = max(1, (m + 63) // 64)
    nonzeros = int(np.count_nonzero(t))
    columns = 1 << max(4, (n + nonzeros // 4).bit_length())
    per_column = _COLUMN_ROW_BYTES * m + 48 * words + 64
    pairs = _candidate_pairs(t) * (_PAIR_BYTES + _PAIR_WORD_BYTES * words)
    return int(_FIXED_BYTES + pairs + columns * per_column)


def merge_memory_estimate(weights: np.ndarray) -> int:
    """Estimated peak memory (bytes) of merging ``weights`` whole: its larger orientation."""
    w = _as_int_matrix(weights)
    if w.size == 0:
        return _FIXED_BYTES
    return max(_search_bytes(_expand(w).matrix), _search_bytes(_expand(np.ascontiguousarray(w.T)).matrix))


#: The merge memory budget when none is given (bytes). A constant, not the memory free now: whether
#: a layer is merged whole or in blocks, and so its graph and the Verilog, depends on the options
#: only, never on the machine's load or how many layers merge side by side.
DEFAULT_MERGE_MEMORY = 8 << 30


def default_memory_budget() -> int:
    """Bytes the merge plans with by default (:data:`DEFAULT_MERGE_MEMORY`)."""
    return DEFAULT_MERGE_MEMORY


def available_memory() -> int | None:
    """Memory available now (``MemAvailable``, Linux), or None where it cannot be read. It limits
    how much runs side by side and refuses a merge that cannot fit; it never changes a graph."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _parallel_memory(budget: int) -> int:
    """Memory that search runs side by side may share: the budget, at most half of what is free."""
    free = available_memory()
    return budget if free is None else min(budget, free // 2)


def _gb(n: float) -> str:
    return f"{n / (1 << 30):.2f} GB"


def _stderr_notice(message: str) -> None:
    print(f"twngen: {message}", file=sys.stderr, flush=True)


def _column_blocks(w: _Int64Array, budget: int) -> tuple[list[tuple[int, int]], int]:
    """Fewest equal blocks of columns each of which fits ``budget`` ([(lo, hi)]) and the largest
    block's estimate; ([], 0) if none does."""
    n = w.shape[1]
    blocks = 1
    while True:
        edges = [round(k * n / blocks) for k in range(blocks + 1)]
        spans = list(itertools.pairwise(edges))
        peak = 0
        for lo, hi in spans:
            peak = max(peak, merge_memory_estimate(w[:, lo:hi]))
            if peak > budget:
                break
        else:
            return spans, peak
        if n // (blocks * 2) < _MIN_BLOCK_COLUMNS:
            return [], 0
        blocks *= 2


def _merged_in_blocks(
    w: _Int64Array, limit: int, spans: list[tuple[int, int]], effort: str, seed: int, budget: int
) -> AdderGraph:
    """Merge each block of columns on its own, then add the blocks' partial sums per output.

    Each block's graph gets ``limit - ceil(log2(blocks))`` levels (or its own
    least depth if that is more), so the final shallowest-first sums meet
    ``limit`` whenever the blocks do.
    """
    extra = math.ceil(math.log2(len(spans)))
    builder = _GraphBuilder(w.shape[1])
    partial: list[list[Operand]] = [[] for _ in range(w.shape[0])]
    for lo, hi in spans:
        sub = w[:, lo:hi]
        sub_limit = max(min_depth(sub), limit - extra)
        graph = _merged_whole(sub, sub_limit, seed, effort, budget)
        value = list(range(lo, hi))
        for node in graph.nodes:
            a = Operand(value[node.a.value], node.a.negate, node.a.shift)
            b = Operand(value[node.b.value], node.b.negate, node.b.shift)
            builder.nodes.append(AddNode(a, b))
            builder.depths.append(1 + max(builder.depths[a.value], builder.depths[b.value]))
            value.append(builder.n_inputs + len(builder.nodes) - 1)
        for r, out in enumerate(graph.outputs):
            if out is not None:
                partial[r].append(Operand(value[out.value], out.negate, out.shift))
    return builder.graph([builder.sum(terms) for terms in partial])


@dataclass(frozen=True)
class _Search:
    """Everything one search run needs; shared with forked workers through :data:`_FORKED`."""

    direct: _Terms
    transposed: _Terms
    limit: int
    seed: int
    shape: tuple[int, int]

    def run(self, orientation: str, run: int, block_level: int) -> AdderGraph | None:
        m, n = self.shape
        run_seed = (self.seed % (1 << 32)) * 1024 + run
        if orientation == "direct":
            ext = _Extraction(self.direct.matrix, self.limit, run_seed, block_level).run()
            return _direct_graph(ext, self.direct, n)
        uses = np.count_nonzero(self.transposed.matrix, axis=0).tolist()
        tracker = _TransposeDepth(uses, self.transposed.slot_input, m, self.limit)
        # The search's own depth does not matter here: the tracker bounds
        # the depth of the transposed graph, which is the one kept.
        ext = _Extraction(self.transposed.matrix, _UNBOUNDED, run_seed, block_level, transpose_depth=tracker).run()
        graph = _transposed_graph(ext, self.transposed, n, m)
        return None if graph.depth > self.limit else graph  # cannot be deeper; a safety net


_Attempt = tuple[str, int, int]
_FORKED: _Search | None = None


def _forked_attempt(attempt: _Attempt) -> AdderGraph | None:
    assert _FORKED is not None
    return _FORKED.run(*attempt)


#: Signed-digit terms from which the runs of a portfolio go to worker processes.
_PARALLEL_TERMS = 20_000


def _workers(terms: int, run_bytes: int, budget: int) -> int:
    """Processes for the runs of one matrix: the cores this process may use, within the memory budget.

    Only on Linux (fork: workers share the matrices without copying), only
    from a single-threaded process (forking one with threads, a live
    progress display for instance, can deadlock the child), never inside a
    daemonic worker (which may not have children), and only for matrices
    whose runs take a second or more.
    """
    import multiprocessing
    import threading

    if terms < _PARALLEL_TERMS or not hasattr(os, "sched_getaffinity") or sys.platform != "linux":
        return 1
    if multiprocessing.current_process().daemon or threading.active_count() > 1:
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, budget // max(1, run_bytes)))


def _run_all(search: _Search, attempts: list[_Attempt], workers: int) -> Iterator[AdderGraph | None]:
    """Graphs of the attempts, in order (the same with any number of workers), one at a time."""
    if workers <= 1 or len(attempts) <= 1:
        yield from (search.run(*a) for a in attempts)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED
    _FORKED = search
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(attempts)), mp_context=context) as pool:
            yield from pool.map(_forked_attempt, attempts)
    finally:
        _FORKED = None


def _merged_whole(w: _Int64Array, limit: int, seed: int, effort: str, budget: int | None = None) -> AdderGraph:
    """The portfolio of search runs on the whole matrix (see the module docstring).

    Runs are independent: with several cores they run side by side (as many
    as the memory budget allows), and the graph kept is the one a single
    process would keep, since results are compared in the same order.
    """
    m, n = w.shape
    if m == 0 or n == 0 or not w.any() or int(_row_terms(w).max()) <= 1:
        return _trivial_graph(w)
    search = _Search(_expand(w), _expand(np.ascontiguousarray(w.T)), limit, seed, (m, n))
    terms = int(np.count_nonzero(search.direct.matrix))
    runs = max(2, min(_MAX_RUNS, math.ceil(_RUNS_SCALE / math.sqrt(terms))))
    run_bytes = max(_search_bytes(search.direct.matrix), _search_bytes(search.transposed.matrix))
    workers = _workers(terms, run_bytes, _parallel_memory(default_memory_budget() if budget is None else budget))
    best: AdderGraph | None = None
    scores: dict[str, int] = {}

    def keep(attempts: list[_Attempt]) -> None:
        nonlocal best
        for (orientation, _, _), graph in zip(attempts, _run_all(search, attempts, workers), strict=True):
            if graph is None:
                continue
            scores[orientation] = min(scores.get(orientation, graph.adders), graph.adders)
            if _better(graph, best):
                best = graph

    keep([("direct", 0, 3), ("transposed", 0, 3)])
    favourite = "transposed" if scores.get("transposed", 1 << 62) < scores["direct"] else "direct"
    # The two first runs were one per orientation.
    keep([(favourite, run, 3 + run % 2) for run in range(1, runs - 1)])
    if effort == "high":
        # Restarts from other seeds and block thresholds, two in three on the
        # better orientation; they only replace the default graph if better.
        other = "direct" if favourite == "transposed" else "transposed"
        extra = max(_HIGH_EFFORT_MIN_RUNS, _HIGH_EFFORT_FACTOR * runs)
        keep([(other if k % 3 == 2 else favourite, runs + k, 2 + k % 4) for k in range(extra)])
        # Then ruin and recreate from the best graph (never worse than it).
        assert best is not None
        rounds = max(_REMERGE_MIN_ROUNDS, _REMERGE_ROUNDS_PER_RUN * runs)
        best = _remerged(best, limit, (seed % (1 << 32)) * 1024 + 1023, rounds)
    assert best is not None
    return best


def merged_adder_graph(
    weights: np.ndarray,
    max_depth: int | None = None,
    seed: int = 0,
    *,
    effort: str = "default",
    memory_budget: int | None = None,
    name: str | None = None,
    notice: Callable[[str], None] | None = None,
) -> AdderGraph:
    """An adder graph computing ``weights @ x`` with shared signed pairs.

    Parameters
    ----------
    weights:
        Integer matrix, rows are outputs and columns inputs (ternary, binary
        or small integers; integral floats are accepted).
    max_depth:
        Largest adder depth of any output; default :func:`default_max_depth`.
        Must be at least :func:`min_depth`.
    seed:
        Base seed of the order among equal candidates. The same weights,
        ``max_depth``, ``seed``, ``effort`` (and, for layers too large for
        the budget, ``memory_budget``) always give the same graph.
    effort:
        ``"default"`` or ``"high"``: more search runs, then ruin and recreate
        (5 to 10 times the default's time on layers of a second or more),
        never more adders than ``"default"``.
    memory_budget:
        Bytes the search may use (:func:`merge_memory_estimate`); default
        :func:`default_memory_budget`. A matrix whose search would need more
        is merged in blocks of columns that fit, each on its own (fewer
        adders shared), and ``notice`` is told; if even the smallest blocks
        do not fit, :class:`~hwgen.errors.TwnError`.
    name:
        What to call the matrix in messages (``"layer conv4"``, a file name).
    notice:
        Called with a one-line message when the bounded strategy is taken;
        default: printed on stderr.
    """
    w = _as_int_matrix(weights)
    least = min_depth(w)
    limit = least + 2 if max_depth is None else int(max_depth)
    if limit < least:
        raise TwnError(f"max_depth must be at least {least} (a row has {int(_row_terms(w).max())} terms), not {limit}")
    if effort not in EFFORTS:
        raise TwnError(f"merge effort must be one of {', '.join(EFFORTS)}, not {effort!r}")
    plan = _merge_plan(w, memory_budget, name)
    _check_available(w, plan, name)
    spans = plan.spans
    if len(spans) == 1:
        best = _merged_whole(w, limit, seed, effort, memory_budget)
    else:
        if notice is None:
            notice = _stderr_notice
        budget = default_memory_budget() if memory_budget is None else memory_budget
        notice(
            f"{_what(w, name)} would need about {_gb(plan.whole)} to merge whole, more than the "
            f"merge memory budget of {_gb(budget)}: merging it in {len(spans)} blocks of about "
            f"{w.shape[1] // len(spans)} inputs instead (fewer shared adders; --merge-memory GB raises the budget)"
        )
        best = _merged_in_blocks(w, limit, spans, effort, seed, budget)
        if best.depth > limit:
            raise TwnError(
                f"{_what(w, name)}: merged in {len(spans)} blocks of inputs to fit the merge memory budget, its "
                f"adder depth is {best.depth}, over the limit of {limit}; raise --max-depth to {best.depth} "
                f"or --merge-memory to {_gb(plan.whole)}"
            )
    if not np.array_equal(best.coefficients(), w):
        raise AssertionError("merged adder graph does not compute the weight matrix")
    return best


def _what(w: _Int64Array, name: str | None) -> str:
    size = f"a {w.shape[0]} x {w.shape[1]} weight matrix ({w.shape[1]} inputs, {w.shape[0]} outputs)"
    return f"{name}, {size}," if name else size


class _Plan(NamedTuple):
    """How a matrix is merged: its blocks of columns (one when whole), the estimated peak of
    merging it whole and of the plan (the largest block)."""

    spans: list[tuple[int, int]]
    whole: int
    peak: int


def _merge_plan(w: _Int64Array, memory_budget: int | None, name: str | None) -> _Plan:
    """Blocks of columns to merge separately: one block when the whole matrix fits the budget."""
    n = w.shape[1]
    if w.size == 0:
        return _Plan([(0, n)], _FIXED_BYTES, _FIXED_BYTES)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    whole = merge_memory_estimate(w)
    if whole <= budget:
        return _Plan([(0, n)], whole, whole)
    spans, peak = _column_blocks(w, budget)
    if not spans:
        need = merge_memory_estimate(w[:, : min(n, _MIN_BLOCK_COLUMNS)])
        raise TwnError(
            f"{_what(w, name)} cannot be merged within the merge memory budget of {_gb(budget)}: even blocks "
            f"of {_MIN_BLOCK_COLUMNS} inputs need about {_gb(need)} (the whole matrix about "
            f"{_gb(whole)}); give --merge-memory {max(need, budget) / (1 << 30) * 1.25:.2f} "
            "or more, or --adder-graph naive"
        )
    return _Plan(spans, whole, peak)


def _check_available(w: _Int64Array, plan: _Plan, name: str | None) -> None:
    """Refuse (exit 2) a merge whose planned peak exceeds the memory available now, rather than
    be killed by the kernel or quietly plan another graph: the plan depends on the budget only."""
    free = available_memory()
    if free is None or w.size == 0 or plan.peak <= free:
        return
    how = "whole" if len(plan.spans) == 1 else f"in {len(plan.spans)} blocks of inputs"
    raise TwnError(
        f"{_what(w, name)} needs about {_gb(plan.peak)} to merge {how} under the merge memory budget, and only "
        f"{_gb(free)} is available now: give --merge-memory {free / (1 << 30) * 0.8:.2f} (smaller blocks, fewer "
        "shared adders) or free memory"
    )


def _cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("TWNGEN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "twngen" / "merge"


def _cache_key(w: _Int64Array, max_depth: int | None, effort: str = "default", blocks: int = 1) -> str:
    h = hashlib.sha256()
    # The default effort on the whole matrix keeps the key it always had, so existing entries stay valid.
    variant = "" if effort == "default" else f"effort={effort}|v{_HIGH_EFFORT_VERSION}|"
    variant += "" if blocks == 1 else f"blocks={blocks}|"
    h.update(f"twngen-merge-v{ALGORITHM_VERSION}|{w.shape}|{max_depth}|{variant}".encode())
    h.update(np.ascontiguousarray(w, dtype="<i8").tobytes())
    return h.hexdigest()


def _load(path: Path, w: _Int64Array, limit: int) -> AdderGraph | None:
    try:
        graph = AdderGraph.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    if graph.n_inputs != w.shape[1] or len(graph.outputs) != w.shape[0] or graph.depth > limit:
        return None
    if not np.array_equal(graph.coefficients(), w):
        return None
    return graph


def merged_adder_graph_cached(
    weights: np.ndarray,
    max_depth: int | None = None,
    cache_dir: Path | None = None,
    *,
    effort: str = "default",
    memory_budget: int | None = None,
    name: str | None = None,
    notice: Callable[[str], None] | None = None,
) -> AdderGraph:
    """:func:`merged_adder_graph` through an on-disk cache.

    Entries are keyed by a hash of the weights (values and shape), the depth
    limit, the effort, the number of blocks of columns the memory budget
    asks for (when more than one) and :data:`ALGORITHM_VERSION`, written atomically (temporary file,
    then rename), and re-verified against the weights when read: a corrupt
    or stale entry is recomputed and replaced. The directory is
    ``cache_dir``, else ``$TWNGEN_CACHE``, else ``~/.cache/twngen/merge``; a
    cache that cannot be written is skipped.
    """
    w = _as_int_matrix(weights)
    limit = min_depth(w) + 2 if max_depth is None else int(max_depth)
    if effort not in EFFORTS:
        raise TwnError(f"merge effort must be one of {', '.join(EFFORTS)}, not {effort!r}")
    blocks = len(_merge_plan(w, memory_budget, name).spans)
    directory = _cache_dir(cache_dir)
    path = directory / f"{_cache_key(w, max_depth, effort, blocks)}.json"
    if path.is_file():
        graph = _load(path, w, limit)
        if graph is not None:
            return graph
    graph = merged_adder_graph(
        w, max_depth=max_depth, effort=effort, memory_budget=memory_budget, name=name, notice=notice
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".merge-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(graph.to_json(), f, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
    return graph
