"""The golden model tracks onnxruntime on the source model."""

import numpy as np
import pytest
from conftest import built_network, write_mlp

from hwgen import golden


@pytest.mark.parametrize(
    "sizes, seed, kwargs",
    [
        ([64, 40, 24, 10], 11, {}),
        ([32, 32, 10], 12, {"binary": True}),
        ([100, 50, 20], 13, {"zeros": 0.8, "style": "matmul"}),
        ([16, 8, 8, 8, 4], 14, {"per_channel": False, "style": "gemm-t0"}),
    ],
)
def test_golden_tracks_onnxruntime(tmp_path, sizes, seed, kwargs):
    path = write_mlp(tmp_path / "m.onnx", sizes, seed=seed, **kwargs)
    net = built_network(path)
    x = np.random.default_rng(seed).standard_normal((256, sizes[0]))
    acc = golden.compare_with_onnxruntime(path, net, x, "normal")
    assert acc.top1_agreement >= 0.99
    # 16-bit activations: errors are a small fraction of the output scale.
    assert acc.max_abs_error <= 2e-3 * max(acc.output_peak, 1.0)


def test_float_in_float_out_shape_is_the_onnx_output_shape(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [6, 5, 3]))
    y = golden.run(net, np.zeros((4, 6)))
    assert y.shape == (4, 3)


def test_integer_model_is_deterministic_and_exact_python_ints(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [30, 20, 5], seed=2))
    fmt = net.input_format
    q = np.array([[fmt.lo] * 30, [fmt.hi] * 30])
    a = golden.run_integer(net, q)
    b = golden.run_integer(net, q.copy())
    assert a.dtype == np.int64 and np.array_equal(a, b)


def test_outputs_that_are_not_classes_are_judged_by_relative_rms_error(tmp_path):
    path = write_mlp(tmp_path / "m.onnx", [12, 8, 1], seed=3)
    net = built_network(path, act_bits=4)
    x = np.random.default_rng(3).standard_normal((64, 12))
    acc = golden.compare_with_onnxruntime(path, net, x, "normal", budget=0.001)
    assert not golden.outputs_are_classes(net) and acc.criterion == "1 - relative RMS error"
    ref, _ = golden.reference_outputs(path, net, x, "normal")
    got = golden.dequantize_output(net, golden.run_integer(net, golden.quantize_input(net, x)))
    rel = np.linalg.norm(ref - got) / np.linalg.norm(ref)
    assert acc.relative_rms_error == pytest.approx(rel) and acc.agreement == pytest.approx(1 - rel)
    assert acc.required == pytest.approx(0.999) and acc.met == (rel <= 0.001)
    report = acc.to_json()
    assert report["budget"] == 0.001 and report["budget_met"] == acc.met


@pytest.mark.parametrize("max_bytes", [1 << 30, 1500])
def test_layer_cache_gives_the_golden_outputs_of_every_variant(tmp_path, max_bytes):
    path = write_mlp(tmp_path / "m.onnx", [20, 16, 12, 5], seed=4)
    x = np.random.default_rng(4).standard_normal((32, 20))
    cache = golden.LayerCache(x, max_bytes)
    nets = [built_network(path, act_bits=b) for b in (16, 6, 16)]
    names = [layer.name for layer in nets[0].linear_layers]
    nets.append(built_network(path, layer_act_bits=((names[1], 3),)))
    for net in nets:
        expected = golden.dequantize_output(net, golden.run_integer(net, golden.quantize_input(net, x)))
        assert np.array_equal(cache.outputs(net), expected)
        assert np.array_equal(cache.outputs(net), expected)  # again, from what it kept


def test_convolutions_give_the_same_numbers_a_slice_of_the_batch_at_a_time(monkeypatch, tmp_path):
    """Large batches of large images go through a convolution's patches in slices
    (``hwgen.ir.network.PATCH_BYTES``): the float and integer results do not depend on it."""
    import onnx
    from make_conv_net import stack

    import hwgen.ir.network as ir_network

    path = tmp_path / "conv.onnx"
    onnx.save(stack("c6k3p1,m2,c5k3p1,d8,o3", (2, 8, 8), seed=4), str(path))
    net = built_network(path)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, 2, 8, 8))
    conv = net.layers[2]
    q = rng.integers(-2000, 2000, size=(37, *conv.in_shape))

    def results():
        return conv.float_forward(x[:, :1].repeat(6, 1)[:, :, :4, :4]), conv.accumulate(q), golden.run(net, x)

    whole = results()
    monkeypatch.setattr(ir_network, "PATCH_BYTES", 1)  # one sample at a time
    for a, b in zip(whole, results(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
