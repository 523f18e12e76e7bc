"""Graph quantisers as thresholds or as one exact multiply (hwgen.passes.code_ladder)."""

import numpy as np
import pytest

from hwgen.ir import FixedFormat, LinearLayer, Quantizer, Requant, ThresholdRequant
from hwgen.passes.quantize import accumulator_ranges, graph_quantizer_requant


def _layer(seed, bits, signed, rounding, relu, negative, step):
    """A small dense layer with a float affine and a uniform ``bits``-bit quantiser behind it."""
    rng = np.random.default_rng(seed)
    out, inputs = 6, 10
    weights = rng.integers(-1, 2, size=(out, inputs))
    scale = rng.uniform(0.02, 0.2, out) * np.where(rng.random(out) < negative, -1, 1)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    quant = Quantizer("uniform", step=step, code_lo=lo, code_hi=hi, scale=step, rounding=rounding)
    return LinearLayer("fc", "Gemm", weights, scale, rng.normal(0, 0.5, out), relu, "ternary", ("fc",), quantizer=quant)


def _every_accumulator(layer, fmt):
    lo, hi = accumulator_ranges(layer, fmt)
    width = int((hi - lo).max()) + 1
    acc = lo[None, :] + np.arange(width)[:, None]
    return np.minimum(acc, hi[None, :])  # each channel's whole range, padded with its top


def _chain(layer, fmt, acc):
    """What the model computes, in float64: affine, ReLU, quantiser."""
    y = layer.scale * fmt.resolution * acc + layer.bias
    if layer.relu:
        y = np.maximum(y, 0.0)
    return layer.quantizer.codes(y)


CASES = [
    # seed, bits, signed, rounding, relu, share of negative scales, step
    (0, 8, False, "ROUND", True, 0.0, 0.0123),
    (1, 8, True, "ROUND", False, 0.3, 0.0517),
    (2, 6, True, "FLOOR", False, 0.5, 0.03),
    (3, 7, False, "CEIL", True, 0.2, 0.011),
    (4, 5, True, "ROUND_TO_ZERO", True, 0.0, 0.02),  # truncation is a floor on ReLU outputs
    (5, 8, True, "ROUND", True, 1.0, 0.007),
]


@pytest.mark.parametrize("case", CASES)
def test_affine_form_gives_the_thresholds_codes_on_every_accumulator(case):
    layer = _layer(*case)
    fmt = FixedFormat.full(8, 3)
    acc = _every_accumulator(layer, fmt)
    affine = graph_quantizer_requant(layer, fmt, "affine")
    thresholds = graph_quantizer_requant(layer, fmt, "thresholds")
    assert isinstance(affine, Requant) and isinstance(thresholds, ThresholdRequant)
    assert affine.out == thresholds.out
    expected = _chain(layer, fmt, acc)
    np.testing.assert_array_equal(thresholds.apply(acc), expected)
    np.testing.assert_array_equal(affine.apply(acc), expected)
    assert max(abs(m) for m in affine.multiplier) < 1 << 17


def test_auto_takes_the_multiply_for_many_levels_and_comparators_for_few():
    fmt = FixedFormat.full(8, 3)
    assert isinstance(graph_quantizer_requant(_layer(0, 8, False, "ROUND", True, 0.0, 0.0123), fmt), Requant)
    # Two bits: three comparators per channel cost less than a multiplier.
    assert isinstance(graph_quantizer_requant(_layer(0, 2, False, "ROUND", True, 0.0, 0.3), fmt), ThresholdRequant)


def test_ties_to_even_on_integer_accumulators_keep_the_thresholds():
    """Power-of-two scales put round-half-to-even ties on integer accumulators; the code steps
    then alternate (not affine), so even "affine" falls back to the exact thresholds."""
    rng = np.random.default_rng(7)
    weights = rng.integers(-1, 2, size=(3, 12))
    quant = Quantizer("uniform", step=1.0, code_lo=-128, code_hi=127, scale=1.0, rounding="ROUND")
    layer = LinearLayer("fc", "Gemm", weights, np.full(3, 4.0), np.zeros(3), False, "ternary", ("fc",), quantizer=quant)
    fmt = FixedFormat.full(8, 3)  # one accumulator step is 4 / 8 = half a code: ties at every odd one
    rq = graph_quantizer_requant(layer, fmt, "affine")
    assert isinstance(rq, ThresholdRequant)
    acc = _every_accumulator(layer, fmt)
    np.testing.assert_array_equal(rq.apply(acc), _chain(layer, fmt, acc))


def test_truncation_across_zero_keeps_the_thresholds():
    """ROUND_TO_ZERO on signed values has a zero bin twice as wide as the others: not affine."""
    layer = _layer(4, 5, True, "ROUND_TO_ZERO", False, 0.0, 0.02)
    fmt = FixedFormat.full(8, 3)
    rq = graph_quantizer_requant(layer, fmt, "affine")
    assert isinstance(rq, ThresholdRequant)
    acc = _every_accumulator(layer, fmt)
    np.testing.assert_array_equal(rq.apply(acc), _chain(layer, fmt, acc))
