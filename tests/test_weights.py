import numpy as np
import pytest

from hwgen.errors import TwnError
from hwgen.frontend.weights import factor_weights


def test_per_tensor_ternary_is_exact():
    w = np.array([[0.5, -0.5, 0.0], [0.0, 0.5, 0.5]], dtype=np.float32)
    f = factor_weights(w, "t")
    assert f.kind == "ternary" and not f.per_channel
    assert f.integers.tolist() == [[1, -1, 0], [0, 1, 1]]
    assert np.array_equal(f.integers * f.scale[:, None], w.astype(np.float64))


def test_per_channel_scale_and_all_zero_row():
    w = np.array([[0.25, 0, -0.25], [0, 0, 0], [1.5, 1.5, 0]], dtype=np.float32)
    f = factor_weights(w, "t")
    assert f.per_channel
    assert f.scale.tolist() == [0.25, 0.0, 1.5]
    assert np.array_equal(f.integers * f.scale[:, None], w.astype(np.float64))


def test_binary_detected():
    w = np.array([[0.1, -0.1], [-0.1, -0.1]], dtype=np.float32)
    assert factor_weights(w, "t").kind == "binary"


def test_negative_zero_is_a_zero_weight():
    w = np.array([[-0.0, 0.3], [0.3, -0.3]], dtype=np.float32)
    f = factor_weights(w, "t")
    assert f.integers[0, 0] == 0 and f.kind == "ternary"
    assert not np.signbit(f.integers * f.scale[:, None])[0, 0]


@pytest.mark.parametrize(
    "w, match",
    [
        (np.array([[0.1, 0.2], [0.1, 0.1]]), "2 distinct weight magnitudes"),
        (np.array([[np.nan, 0.2]]), "NaN or infinite"),
        (np.array([[np.inf, 0.0]]), "NaN or infinite"),
        (np.array([1.0, 0.0]), "2-D"),
    ],
)
def test_refusals_name_the_problem(w, match):
    with pytest.raises(TwnError, match=match):
        factor_weights(w, "node 'fc' (Gemm)")


def test_int4_weights_using_minus_eight_are_told_the_width_they_need():
    w = np.array([[-8, 3, 7, 1], [2, -8, 5, 0]]) * 0.1
    with pytest.raises(TwnError, match=r"they fit 5 signed bits .*\|w\| <= 7 at 4 bits.*--max-weight-bits"):
        factor_weights(w, "fc", max_bits=4)
    np.testing.assert_array_equal(factor_weights(w, "fc", max_bits=5).integers, np.round(w / 0.1))
    with pytest.raises(TwnError) as info:  # far out of range: no hint
        factor_weights(np.array([[0.1, 0.2, 9.0]]), "fc", max_bits=3)
    assert "they fit" not in str(info.value)
