import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hwgen.passes.naive_tree import naive_adder_count, naive_adder_graph


def _check(w: np.ndarray) -> None:
    g = naive_adder_graph(w)
    assert np.array_equal(g.coefficients(), w)
    x = np.random.default_rng(0).integers(-(2**15), 2**15, size=(7, w.shape[1]))
    assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w.T)
    assert g.adders == naive_adder_count(w)
    for row, out in zip(w, g.outputs, strict=True):
        k = int(sum(bin(abs(int(v))).count("1") for v in row))
        if k == 0:
            assert out is None
        else:
            assert g.depths[out.value] == math.ceil(math.log2(k))


@settings(max_examples=150, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(1, 20)), elements=st.integers(-1, 1)))
def test_ternary_trees_are_exact_and_balanced(w):
    _check(w)


@settings(max_examples=60, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=st.integers(-127, 127)))
def test_low_bit_integer_weights_use_shifted_terms(w):
    _check(w)


def test_pruning_counts():
    w = np.array([[1, 0, -1, 0], [0, 0, 0, 0], [-1, -1, -1, -1], [0, 1, 0, 0]])
    g = naive_adder_graph(w)
    # k - 1 adders per nonzero row: 1 + 0 + 3 + 0.
    assert g.adders == 4
    # All-negative row: built positive and negated at the output for free.
    assert g.outputs[2].negate
    # No node negates both operands.
    assert not any(n.a.negate and n.b.negate for n in g.nodes)
