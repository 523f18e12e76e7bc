"""The exact model of cancellation-free adder graphs (hwgen.passes.merge_bound) against brute force and the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hwgen.errors import TwnError
from hwgen.passes.merge_bound import cancellation_free_bound
from hwgen.passes.merge_pairs import merged_adder_graph
from hwgen.passes.naive_tree import naive_adder_count

_Vec = tuple[int, ...]


def _canon(v: _Vec) -> _Vec:
    first = next(x for x in v if x)
    return v if first > 0 else tuple(-x for x in v)


def brute_force_optimum(w: np.ndarray) -> int:
    """Fewest two-input adders of a cancellation-free graph, by trying every set of nodes.

    A set of values (ternary vectors up to sign) is a graph when each is the
    sum or difference of two inputs or members with disjoint supports; its size
    is the adder count. Only signed parts of rows are tried (a node outside
    every row cannot reach an output without cancelling); sets grow one by one
    from the rows alone, so the first graph found is the smallest.
    """
    n = w.shape[1]
    rows = sorted({_canon(tuple(int(x) for x in r)) for r in w if np.count_nonzero(r) >= 2})
    parts: set[_Vec] = set()
    for r in rows:
        support = [j for j in range(n) if r[j]]
        for k in range(2, len(support)):
            for sub in itertools.combinations(support, k):
                parts.add(_canon(tuple(r[j] if j in sub else 0 for j in range(n))))
    extra = sorted(parts - set(rows))
    units = [tuple(int(i == j) for i in range(n)) for j in range(n)]

    def built(v: _Vec, have: list[_Vec]) -> bool:
        for a, b in itertools.combinations(have, 2):
            if any(x and y for x, y in zip(a, b, strict=True)):
                continue
            for s in (1, -1):
                if _canon(tuple(x + s * y for x, y in zip(a, b, strict=True))) == v:
                    return True
        return False

    for k in range(len(extra) + 1):
        for chosen in itertools.combinations(extra, k):
            nodes = [*rows, *chosen]
            have = units + nodes
            if all(built(v, have) for v in nodes):
                return len(nodes)
    raise AssertionError("no graph found")


@pytest.mark.parametrize("seed", [0, 2, 5, 8])  # seed 2: the optimum (6) is below the engine (7)
def test_the_ilp_optimum_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 0, 1], size=(4, 4), p=[0.4, 0.2, 0.4]).astype(np.int64)
    bound = cancellation_free_bound(w, time_limit=20)
    assert bound.optimal
    assert bound.optimum == bound.lower == brute_force_optimum(w)
    assert bound.lp <= bound.lower


def test_a_known_optimum() -> None:
    # Rows a+b+c, a+b+d, a+b+c+d: build a+b, then (a+b)+c, (a+b)+d and ((a+b)+c)+d: four adders.
    w = np.array([[1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 1, 1]])
    bound = cancellation_free_bound(w)
    assert bound.optimum == 4 == brute_force_optimum(w)
    assert merged_adder_graph(w).adders >= 4


@pytest.mark.parametrize(("shape", "zeros", "seed"), [((8, 8), 0.5, 3), ((12, 12), 0.75, 4), ((10, 6), 0.0, 5)])
def test_the_bound_is_below_every_graph_found(shape: tuple[int, int], zeros: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = (1 - zeros) / 2
    w = rng.choice([-1, 0, 1], size=shape, p=[p, zeros, p]).astype(np.int64)
    bound = cancellation_free_bound(w, time_limit=5)
    for effort in ("default", "high"):
        assert bound.lower <= merged_adder_graph(w, effort=effort).adders
    assert bound.lp <= bound.lower <= naive_adder_count(w)


def test_the_model_refuses_what_it_does_not_cover() -> None:
    with pytest.raises(TwnError, match="ternary or binary"):
        cancellation_free_bound(np.array([[2, 1], [1, 1]]))
    with pytest.raises(TwnError, match="share 30 inputs"):
        cancellation_free_bound(np.array([[1] * 30 + [0], [1] * 31]))
