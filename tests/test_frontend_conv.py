"""Convolution, pooling, batch norm, reshapes and output ops: parsed and golden against onnxruntime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import REPO
from make_conv_net import _Builder, cifar10_vgg, cifar10_vgg_spec, vgg1d

from hwgen import golden
from hwgen.build import ArithmeticOptions, prepare_network
from hwgen.errors import TwnError
from hwgen.frontend import load_onnx


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def _check(path, x, top1=0.99):
    net = load_onnx(path)
    ref = _ort(path, x)
    if net.output_op == "none":
        np.testing.assert_allclose(net.float_forward(x).reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)
    built, _ = prepare_network(path, ArithmeticOptions())
    acc = golden.compare_with_onnxruntime(path, built, x, "test")
    assert acc.top1_agreement >= top1
    assert acc.max_abs_error <= 5e-3 * max(acc.output_peak, 1.0)
    return built


def _conv_net(tmp_path, spatial, kernel, conv_attrs, pool_attrs, negative_bn, bias, seed=0, channels=6, classes=5):
    b = _Builder(seed)
    in_ch = 3
    x = "input"
    w = b.ternary((channels, in_ch, *kernel), 0.5)
    inputs = [x, b.const(w, "w")]
    if bias:
        inputs.append(b.const(b.rng.normal(0, 0.1, channels).astype(np.float32), "b"))
    x = b.node("Conv", inputs, **conv_attrs)
    if pool_attrs is not None:
        x = b.node("MaxPool", [x], **pool_attrs)
    gamma = b.rng.uniform(0.5, 1.5, channels)
    if negative_bn:
        gamma[::2] *= -1  # max pooling becomes min on these channels
    params = [gamma, b.rng.normal(0, 0.2, channels), b.rng.normal(0, 0.3, channels), b.rng.uniform(0.5, 2, channels)]
    x = b.node("BatchNormalization", [x] + [b.const(p.astype(np.float32), "bn") for p in params])
    x = b.node("Relu", [x])
    x = b.flatten_view(x)
    # Infer the flattened size with onnxruntime-free arithmetic: build, then read the IR.
    model = b.model(["batch", in_ch, *spatial], "logits", 1)
    tmp = tmp_path / "probe.onnx"
    onnx.save(model, str(tmp))
    features = int(np.prod(load_onnx(tmp).layers[-1].out_shape))
    b.nodes[-1].output[0] = b.nodes[-1].output[0] if b.nodes[-1].output[0] != "logits" else "flat"
    wf = np.sign(b.rng.standard_normal((classes, features))).astype(np.float32) * 0.2
    b.node("Gemm", ["flat", b.const(wf, "fc")], transB=1)
    path = tmp_path / "conv.onnx"
    onnx.save(b.model(["batch", in_ch, *spatial], "logits", classes), str(path))
    return path


CASES_1D = [
    ((3,), {"pads": [1, 1]}, {"kernel_shape": [2], "strides": [2]}),
    ((5,), {"pads": [2, 1], "strides": [2]}, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ((1,), {}, None),
    ((3,), {"auto_pad": "SAME_UPPER", "strides": [2]}, {"kernel_shape": [2], "strides": [2]}),
    ((4,), {"auto_pad": "SAME_LOWER"}, {"kernel_shape": [3], "strides": [1], "auto_pad": "SAME_UPPER"}),
    ((3,), {"auto_pad": "VALID"}, {"kernel_shape": [2], "strides": [2]}),
]


@pytest.mark.parametrize("kernel, conv_attrs, pool_attrs", CASES_1D)
@pytest.mark.parametrize("negative_bn", [False, True])
def test_conv1d_pool_batchnorm(tmp_path, kernel, conv_attrs, pool_attrs, negative_bn):
    path = _conv_net(tmp_path, (20,), kernel, conv_attrs, pool_attrs, negative_bn, bias=not negative_bn)
    x = np.random.default_rng(1).standard_normal((64, 3, 20))
    net = _check(path, x)
    pools = [layer for layer in net.layers if layer.op == "MaxPool"]
    if negative_bn and pools:
        assert any(pools[0].minimum) and not all(pools[0].minimum)


CASES_2D = [
    ((3, 3), {"pads": [1, 1, 1, 1]}, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((1, 3), {"pads": [0, 1, 0, 1], "strides": [1, 2]}, {"kernel_shape": [1, 2], "strides": [1, 2]}),
    ((2, 3), {"pads": [0, 2, 1, 0], "strides": [2, 1]}, None),
]


@pytest.mark.parametrize("kernel, conv_attrs, pool_attrs", CASES_2D)
def test_conv2d_pool_batchnorm(tmp_path, kernel, conv_attrs, pool_attrs):
    path = _conv_net(tmp_path, (8, 10), kernel, conv_attrs, pool_attrs, negative_bn=True, bias=True)
    x = np.random.default_rng(2).standard_normal((64, 3, 8, 10))
    _check(path, x)


def test_modulation_classifier_family(tmp_path):
    path = tmp_path / "vgg.onnx"
    onnx.save(vgg1d(channels=8, length=64, convs=3, dense=(32,), classes=6, seed=4), str(path))
    net = _check(path, np.random.default_rng(3).standard_normal((64, 2, 64)))
    kinds = [(layer.op, getattr(layer, "weight_kind", "")) for layer in net.layers]
    assert kinds[:-1] == [("Conv", "ternary"), ("MaxPool", "")] * 3 + [("Gemm", "ternary")]
    assert kinds[-1][1] in ("int7", "int8")  # multiples of 1/64 up to +-127/64


@pytest.mark.parametrize("op, attrs", [("Softmax", {"axis": 1}), ("LogSoftmax", {}), ("ArgMax", {"axis": 1})])
def test_final_output_ops(tmp_path, op, attrs):
    b = _Builder(5)
    x = b.node("Gemm", ["input", b.const(b.ternary((4, 6), 0.3), "w")], transB=1)
    b.node(op, [x], **attrs)
    model = b.model(["batch", 6], "logits", 4 if op != "ArgMax" else 1)
    if op == "ArgMax":
        model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    assert net.output_op == {"Softmax": "softmax", "LogSoftmax": "logsoftmax", "ArgMax": "argmax"}[op]
    x = np.random.default_rng(0).standard_normal((32, 6))
    ref = _ort(path, x)
    got = golden.run(net, x)
    if op == "ArgMax":
        assert np.mean(got.reshape(-1) == ref.reshape(-1)) >= 0.99
    else:
        np.testing.assert_allclose(got, ref, atol=2e-3)


def test_transpose_before_flatten_permutes_dense_columns(tmp_path):
    b = _Builder(6)
    x = b.node("Conv", ["input", b.const(b.ternary((4, 2, 3), 0.3), "w")], pads=[1, 1])
    x = b.node("Relu", [x])
    x = b.node("Transpose", [x], perm=[0, 2, 1])  # channels-last, as Keras flattens
    x = b.node("Flatten", [x], axis=1)
    b.node("Gemm", [x, b.const(b.ternary((3, 4 * 5), 0.3), "fc")], transB=1)
    path = tmp_path / "t.onnx"
    onnx.save(b.model(["batch", 2, 5], "logits", 3), str(path))
    x = np.random.default_rng(0).standard_normal((16, 2, 5))
    np.testing.assert_allclose(load_onnx(path).float_forward(x), _ort(path, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "conv_attrs, match",
    [
        ({"group": 2}, "grouped/depthwise"),
        ({"dilations": [2]}, "dilations"),
    ],
)
def test_conv_refusals(tmp_path, conv_attrs, match):
    b = _Builder(0)
    w = b.ternary((4, 2 if "group" not in conv_attrs else 1, 3), 0.3)
    b.node("Conv", ["input", b.const(w, "w")], **conv_attrs)
    path = tmp_path / "bad.onnx"
    onnx.save(b.model(["batch", 2, 8], "logits", 4), str(path))
    with pytest.raises(TwnError, match=r"\(Conv\).*" + match):
        load_onnx(path)


def test_unsupported_pooling_is_refused_by_name(tmp_path):
    b = _Builder(0)
    x = b.node("Conv", ["input", b.const(b.ternary((4, 2, 3), 0.3), "w")])
    b.node("AveragePool", [x], kernel_shape=[2])
    path = tmp_path / "avg.onnx"
    onnx.save(b.model(["batch", 2, 8], "logits", 4), str(path))
    with pytest.raises(TwnError, match=r"\(AveragePool\).*not supported.*MaxPool"):
        load_onnx(path)


def test_windows_a_stream_cannot_hold_are_refused_clearly(tmp_path, capsys):
    from hwgen.cli import main

    b = _Builder(0)
    x = b.node("Conv", ["input", b.const(b.ternary((4, 2, 3), 0.3), "w")], kernel_shape=[3], pads=[3, 3])
    b.node("Relu", [x])
    path = tmp_path / "overpadded.onnx"
    onnx.save(b.model(["batch", 2, 16], "logits", 4), str(path))
    assert main([str(path), "--board", "zcu111", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layer '/conv_2/Conv' (Conv): left padding 3 is not smaller than the kernel (3)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    # The golden model still runs it.
    np.save(tmp_path / "x.npy", np.zeros((2, 2, 16), dtype=np.float32))
    assert main(["golden", str(path), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy")]) == 0


def test_bundled_examples_exist():
    assert (REPO / "examples" / "make_conv_net.py").is_file()


def test_the_cifar10_vgg_preset_is_the_intended_network(tmp_path):
    """``make_conv_net.py --preset cifar10-vgg``: 3x32x32, six 3x3 'same' convolutions
    (64, 64, 128, 128, 256, 256) with 2x2 pools after the 2nd, 4th and 6th, dense 4096 -> 512
    -> 512 -> 10; ternary at 75% zeros but the first convolution (30%)."""
    assert cifar10_vgg_spec() == "c64k3p1,c64k3p1,m2,c128k3p1,c128k3p1,m2,c256k3p1,c256k3p1,m2,d512,d512,o10"
    path = tmp_path / "cifar.onnx"
    onnx.save(cifar10_vgg(), str(path))
    net = load_onnx(path)
    assert net.input_shape == (3, 32, 32)
    shapes = [(layer.op, layer.in_shape, layer.out_shape) for layer in net.layers]
    assert shapes == [
        ("Conv", (3, 32, 32), (64, 32, 32)),
        ("Conv", (64, 32, 32), (64, 32, 32)),
        ("MaxPool", (64, 32, 32), (64, 16, 16)),
        ("Conv", (64, 16, 16), (128, 16, 16)),
        ("Conv", (128, 16, 16), (128, 16, 16)),
        ("MaxPool", (128, 16, 16), (128, 8, 8)),
        ("Conv", (128, 8, 8), (256, 8, 8)),
        ("Conv", (256, 8, 8), (256, 8, 8)),
        ("MaxPool", (256, 8, 8), (256, 4, 4)),
        ("Gemm", (4096,), (512,)),
        ("Gemm", (512,), (512,)),
        ("Gemm", (512,), (10,)),
    ]
    convs = [layer for layer in net.layers if layer.op == "Conv"]
    assert all(layer.kernel == (3, 3) and layer.pads == (1, 1, 1, 1) and layer.relu for layer in convs)
    zeros = [1 - layer.weights_nonzero / layer.weights.size for layer in net.layers if layer.op != "MaxPool"]
    assert abs(zeros[0] - 0.3) < 0.05
    assert all(abs(z - 0.75) < 0.01 for z in zeros[1:-1])
    assert {int(v) for v in np.unique(net.layers[1].weights)} == {-1, 0, 1}
    # A narrower one keeps the shape (the test-sized variant of the bench).
    small = load_onnx(_saved(cifar10_vgg(channels=4, dense=(16,)), tmp_path / "small.onnx"))
    assert [layer.out_shape for layer in small.layers][-5:] == [(16, 8, 8), (16, 8, 8), (16, 4, 4), (16,), (10,)]


def _saved(model: onnx.ModelProto, path):
    onnx.save(model, str(path))
    return path
