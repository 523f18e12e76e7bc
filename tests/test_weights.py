import numpy as np
import pytest

from hwgen.errors import TwnError
from hwgen.frontend.weights import factor_weights, round_weights


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


def test_final_layer_at_one_sixty_fourth_up_to_3_375_is_nine_bit_exactly():
    """The published classifiers' last layer: multiples of 1/64 with magnitudes up to 3.375."""
    rng = np.random.default_rng(5)
    codes = rng.integers(-216, 217, size=(24, 64))
    codes[0, 0], codes[1, 1] = 216, -215
    w = (codes / 64.0).astype(np.float32)
    f = factor_weights(w, "fc", max_bits=16)
    assert f.kind == "int9" and f.bits == 9 and not f.per_channel
    assert np.array_equal(f.integers * f.scale[:, None], w.astype(np.float64))
    assert np.array_equal(f.integers, codes) and f.scale[0] == 1 / 64
    with pytest.raises(TwnError, match="within 8 bits"):
        factor_weights(w, "fc", max_bits=8)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_wide_integers_times_float32_channel_scales_are_factored_exactly(bits):
    """As a quantising exporter writes them: float32(integer * float32 scale), per output channel,
    including rows whose codes share a factor (smallest / k is then not the exporter's scale)."""
    rng = np.random.default_rng(bits)
    qmax = (1 << (bits - 1)) - 1
    codes = rng.integers(-qmax, qmax + 1, size=(16, 6))
    codes[:, 0] = qmax  # every row needs all the bits
    codes[3, 1:] = 2 * rng.integers(-qmax // 2, qmax // 2, size=5)
    codes[3, 0] = qmax - 1  # row 3: every code even
    scale = rng.uniform(0.001, 0.1, size=16).astype(np.float32).astype(np.float64)
    w = (codes * scale[:, None]).astype(np.float32)
    f = factor_weights(w, "conv", max_bits=16)
    assert f.per_channel and f.bits <= bits
    assert np.array_equal((f.integers * f.scale[:, None]).astype(np.float32), w)
    assert f.bits == bits  # the rows with an odd code need every bit


def test_narrower_of_per_tensor_and_per_channel_wins():
    # Per-channel ternary with scales 1 and 3 is per-tensor {-3..3}: the ternary reading is kept.
    w = np.array([[1.0, -1.0, 0.0], [3.0, 0.0, -3.0]], dtype=np.float32)
    f = factor_weights(w, "t", max_bits=16)
    assert f.kind == "ternary" and f.per_channel
    # Per-tensor when both need the same width.
    w = np.array([[1.0, -3.0, 2.0], [3.0, 0.0, -1.0]], dtype=np.float32) * np.float32(0.125)
    f = factor_weights(w, "t", max_bits=16)
    assert not f.per_channel and f.integers.tolist() == [[1, -3, 2], [3, 0, -1]]


def test_float_weights_that_are_not_fixed_point_are_refused_at_sixteen_bits_with_the_hint():
    w = np.random.default_rng(7).standard_normal((8, 32)).astype(np.float32)
    with pytest.raises(TwnError, match=r"within 16 bits.*--quantize-weights fc=BITS"):
        factor_weights(w, "node 'fc' (Gemm)", max_bits=16, hint="; or round them with --quantize-weights fc=BITS")


def test_round_weights_is_symmetric_per_channel_half_away_from_zero():
    # Row 0: peak 1.0 at 3 bits -> step 1/3: [3, 0.75, -1.5] rounds to [3, 1, -2] (-1.5 away from zero).
    # Row 1: peak 0.5 -> step 1/6: [-3, 1.5, 0] rounds to [-3, 2, 0] (+1.5 away from zero).
    w = np.array([[1.0, 0.25, -0.5], [-0.5, 0.25, 0.0]])
    f, err = round_weights(w, "fc", 3)
    assert f.integers.tolist() == [[3, 1, -2], [-3, 2, 0]]
    np.testing.assert_allclose(f.scale, [1 / 3, 1 / 6])
    assert f.kind == "int3" and f.per_channel and err.bits == 3
    # Errors: row 0 [0, 1/12, -1/6] (peak 1), row 1 [0, 1/12, 0] (peak 1/2).
    assert err.max_rel_error == pytest.approx(max(1 / 6 / 1.0, 1 / 12 / 0.5))
    norm = np.sqrt(1 + 1 / 16 + 1 / 4 + 1 / 4 + 1 / 16)
    assert err.rms_rel_error == pytest.approx(np.sqrt(1 / 144 + 1 / 36 + 1 / 144) / norm)


def test_round_weights_to_two_bits_is_ternary_and_keeps_zero_rows():
    w = np.array([[0.9, -0.2, 0.5], [0.0, 0.0, 0.0]])
    f, err = round_weights(w, "fc", 2)
    assert f.kind == "ternary" and f.integers.tolist() == [[1, 0, 1], [0, 0, 0]]
    assert err.max_rel_error == pytest.approx(0.4 / 0.9)
    with pytest.raises(TwnError, match="between 2 and 16"):
        round_weights(w, "fc", 17)
