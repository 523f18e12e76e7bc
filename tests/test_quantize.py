"""Quantisation pass: formats, multipliers and the exactness of the integer requantisation."""

import numpy as np
import pytest
from conftest import built_network, write_mlp

from hwgen import golden
from hwgen.errors import TwnError
from hwgen.passes.quantize import MULTIPLIER_BITS, QuantizeActivations, frac_bits_for


@pytest.mark.parametrize(
    "peak, bits, frac", [(8.0, 16, 12), (7.9, 16, 12), (8.1, 16, 11), (1.0, 8, 7), (0.3, 16, 16), (0.0, 16, 15)]
)
def test_frac_bits_cover_the_peak(peak, bits, frac):
    assert frac_bits_for(peak, bits) == frac


def test_default_input_format_covers_plus_minus_eight(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [8, 4]))
    fmt = net.input_format
    assert fmt.bits == 16
    assert fmt.dequantize(np.array([fmt.lo]))[0] <= -8.0
    assert fmt.dequantize(np.array([fmt.hi]))[0] >= 8.0 - 2.0**-fmt.frac


@pytest.mark.parametrize("ranges", ["sampled", "safe"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_requantisation_rounds_the_real_value(tmp_path, ranges, seed):
    """Every layer's integer output is the real affine value rounded (within the
    multiplier's 18-bit precision) and saturated, given that layer's integer input."""
    net = built_network(write_mlp(tmp_path / "m.onnx", [20, 16, 7], seed=seed), ranges=ranges)
    rng = np.random.default_rng(seed)
    q = net.input_format.quantize(rng.standard_normal((64, 20)) * 3)
    in_frac = net.input_format.frac
    for layer, out in zip(net.layers, golden.run_layers(net, q), strict=True):
        rq = layer.requant
        assert max(abs(m) for m in rq.multiplier) < 2 ** (MULTIPLIER_BITS - 1)
        acc = q @ layer.weights.T
        real = acc * layer.scale * 2.0**-in_frac + layer.bias
        if layer.relu:
            real = np.maximum(real, 0)
        ideal = np.clip(real * 2.0**rq.out.frac, rq.out.lo, rq.out.hi)
        # Rounding (half a code) plus what the integer multiplier and offset
        # miss of the real scale and bias.
        shift = np.array(rq.shift, dtype=np.float64)
        wanted = layer.scale * 2.0 ** (rq.out.frac - in_frac)
        mult_error = np.abs(acc) * np.abs(np.array(rq.multiplier) / 2.0**shift - wanted)
        tolerance = 0.5 + mult_error + 0.5 * 2.0**-shift + 1e-9
        assert np.all(np.abs(out - ideal) <= tolerance)
        q, in_frac = out, rq.out.frac


def test_safe_ranges_never_saturate(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [10, 8, 3], seed=5), ranges="safe")
    fmt = net.input_format
    extremes = np.array([[fmt.lo] * 10, [fmt.hi] * 10, [fmt.lo, fmt.hi] * 5, [fmt.hi, fmt.lo] * 5])
    rng = np.random.default_rng(0)
    q = np.concatenate([extremes, rng.integers(fmt.lo, fmt.hi + 1, size=(200, 10))])
    for layer in net.layers:
        rq = layer.requant
        acc = q.astype(object) @ layer.weights.T.astype(object)
        product = acc * np.array(rq.multiplier, dtype=object) + np.array(rq.offset, dtype=object)
        unclamped = product >> np.array(rq.shift, dtype=object)
        low = 0 if rq.relu else rq.out.lo
        # Only ReLU may clamp (negative values to zero); nothing hits the top.
        assert unclamped.max() <= rq.out.hi
        if not rq.relu:
            assert unclamped.min() >= low
        q = rq.apply(acc)


def test_calibration_batch_sets_the_input_format(tmp_path):
    path = write_mlp(tmp_path / "m.onnx", [8, 4])
    calib = np.random.default_rng(0).uniform(-0.7, 0.7, size=(32, 8))
    net = built_network(path)
    from hwgen.frontend import load_onnx

    calibrated = QuantizeActivations(calibration=calib).apply(load_onnx(path))
    assert calibrated.input_format.frac == 15  # |x| < 1
    assert net.input_format.frac == 12


@pytest.mark.parametrize(
    "options, match",
    [
        ({"act_bits": 1}, "--act-bits"),
        ({"input_bits": 40}, "--input-bits"),
        ({"input_range": -1.0}, "--input-range"),
        ({"ranges": "wild"}, "--ranges"),
        ({"headroom": 0.5}, "--headroom"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, match):
    from hwgen.frontend import load_onnx

    net = load_onnx(write_mlp(tmp_path / "m.onnx", [8, 4]))
    with pytest.raises(TwnError, match=match):
        QuantizeActivations(**options).apply(net)
