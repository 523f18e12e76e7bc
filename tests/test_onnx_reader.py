"""Frontend: parsed networks reproduce onnxruntime in float; bad graphs are refused by name."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import write_mlp
from onnx import TensorProto, helper, numpy_helper

from hwgen.errors import TwnError
from hwgen.frontend import load_onnx


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("style", ["gemm", "gemm-t0", "matmul"])
@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_float_view_matches_onnxruntime(tmp_path, rng, style, binary, per_channel):
    path = write_mlp(tmp_path / "m.onnx", [12, 9, 5], seed=3, binary=binary, per_channel=per_channel, style=style)
    net = load_onnx(path)
    assert [layer.weight_kind for layer in net.layers] == ["binary" if binary else "ternary"] * 2
    assert [layer.relu for layer in net.layers] == [True, False]
    x = rng.standard_normal((16, 12))
    np.testing.assert_allclose(net.float_forward(x), _ort(path, x), rtol=1e-5, atol=1e-5)


def _model(nodes, inits, inputs=None, opset=13, out="y", out_dim=3):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", out_dim])], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _w(values=None, shape=(3, 4), name="W"):
    arr = (
        np.array(values, dtype=np.float32)
        if values is not None
        else np.sign(np.random.default_rng(0).integers(-1, 2, size=shape)).astype(np.float32) * 0.5
    )
    return numpy_helper.from_array(arr, name)


def test_gemm_alpha_beta_fold_into_scale_and_bias(tmp_path, rng):
    b = numpy_helper.from_array(np.array([0.1, -0.2, 0.3], dtype=np.float32), "B")
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0)
    path = tmp_path / "m.onnx"
    onnx.save(_model([node], [_w(), b]), str(path))
    net = load_onnx(path)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(net.float_forward(x), _ort(path, x), rtol=1e-5, atol=1e-6)


def test_flatten_identity_dropout_pass_through(tmp_path, rng):
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
        helper.make_node("Identity", ["f"], ["i"], name="id"),
        helper.make_node("Dropout", ["i"], ["d"], name="drop"),
        helper.make_node("MatMul", ["d", "W"], ["y"], name="mm"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2])]
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, [_w(shape=(4, 3))], inputs=inputs), str(path))
    net = load_onnx(path)
    assert net.input_shape == (2, 2) and len(net.layers) == 1
    x = rng.standard_normal((1, 2, 2))
    np.testing.assert_allclose(net.float_forward(x), _ort(path, x), rtol=1e-5, atol=1e-6)


def _refused(tmp_path, model, match):
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(TwnError, match=match):
        load_onnx(path)


def test_refuses_unsupported_op_by_name(tmp_path):
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["h"], name="fc", transB=1),
        helper.make_node("Sigmoid", ["h"], ["y"], name="act"),
    ]
    _refused(tmp_path, _model(nodes, [_w()]), r"node 'act' \(Sigmoid\).*accepted ops: Gemm")


def test_refuses_continuous_weights(tmp_path):
    w = _w(np.random.default_rng(3).standard_normal((3, 4)))
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)]
    # A one-layer network's layer is first and last: 16 bits by default; the refusal points at rounding.
    _refused(
        tmp_path,
        _model(nodes, [w]),
        r"node 'fc' \(Gemm\).*distinct weight magnitudes.*within 16 bits.*--quantize-weights fc=BITS",
    )


def _two_layer(tmp_path, w1, w2):
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"], name="hidden", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2"], ["y"], name="last", transB=1),
    ]
    path = tmp_path / "two.onnx"
    onnx.save(_model(nodes, [_w(w1, name="W1"), _w(w2, name="W2")]), str(path))
    return path


def _three_layer(tmp_path, w1, w2, w3):
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"], name="in_fc", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2"], ["h2"], name="hidden", transB=1),
        helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
        helper.make_node("Gemm", ["r2", "W3"], ["y"], name="out_fc", transB=1),
    ]
    path = tmp_path / "three.onnx"
    onnx.save(_model(nodes, [_w(w1, name="W1"), _w(w2, name="W2"), _w(w3, name="W3")]), str(path))
    return path


def test_six_bit_hidden_weights_are_refused_by_name_unless_allowed(tmp_path):
    rng = np.random.default_rng(0)
    six_bit = rng.integers(-31, 32, size=(3, 3)) / 32.0
    ternary = np.sign(rng.standard_normal((3, 4)))
    path = _three_layer(tmp_path, ternary, six_bit, np.sign(rng.standard_normal((3, 3))))
    with pytest.raises(TwnError, match=r"node 'hidden' \(Gemm\).*distinct weight magnitudes.*within 4 bits"):
        load_onnx(path)
    net = load_onnx(path, max_weight_bits=6)
    assert net.layers[1].weight_kind == "int6"
    assert np.array_equal(net.layers[1].weights * net.layers[1].scale[:, None], six_bit)


def test_wide_first_and_last_layers_are_accepted_by_default(tmp_path):
    rng = np.random.default_rng(0)
    first = rng.integers(-127, 128, size=(3, 4)) * np.float32(0.0123)  # int8 times a float32 scale
    last = rng.integers(-216, 217, size=(3, 3)) / 64.0  # int9 at 1/64, as in the published classifier
    last[:, 0] = np.array([216, -215, 201]) / 64.0  # 3.375 and odd codes: 9 bits per tensor and per channel
    path = _three_layer(tmp_path, first, np.sign(rng.standard_normal((3, 3))), last)
    net = load_onnx(path)
    assert [layer.weight_kind for layer in net.layers] == ["int8", "binary", "int9"]
    for layer, w in ((net.layers[0], first), (net.layers[2], last)):
        assert np.array_equal((layer.weights * layer.scale[:, None]).astype(np.float32), w.astype(np.float32))
    with pytest.raises(TwnError, match=r"node 'out_fc' \(Gemm\).*within 8 bits.*raise --max-final-weight-bits"):
        load_onnx(path, max_final_weight_bits=8)
    with pytest.raises(TwnError, match=r"node 'in_fc' \(Gemm\).*within 4 bits.*--quantize-weights in_fc=BITS"):
        load_onnx(path, max_first_weight_bits=4)


def test_final_layer_at_one_sixty_fourth_resolution_is_accepted(tmp_path, rng):
    final = np.random.default_rng(1).integers(-100, 101, size=(3, 3)) / 64.0
    path = _two_layer(tmp_path, np.sign(np.random.default_rng(2).standard_normal((3, 4))) * 0.5, final)
    net = load_onnx(path)
    assert [layer.weight_kind for layer in net.layers] == ["binary", "int8"]
    x = rng.standard_normal((8, 4))
    np.testing.assert_allclose(net.float_forward(x), _ort(path, x), rtol=1e-5, atol=1e-5)


def test_refuses_two_inputs(tmp_path):
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4]),
    ]
    nodes = [
        helper.make_node("Add", ["x", "z"], ["s"], name="sum"),
        helper.make_node("Gemm", ["s", "W"], ["y"], name="fc", transB=1),
    ]
    _refused(tmp_path, _model(nodes, [_w()], inputs=inputs), "2 inputs.*exactly one")


def test_refuses_trans_a(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transA=1, transB=1)]
    _refused(tmp_path, _model(nodes, [_w()]), r"node 'fc' \(Gemm\).*transA")


def test_refuses_branches(tmp_path):
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["h"], name="fc", transB=1),
        helper.make_node("Relu", ["h"], ["y"], name="r1"),
        helper.make_node("Relu", ["h"], ["z"], name="r2"),
    ]
    _refused(tmp_path, _model(nodes, [_w()]), "feeds 2 nodes")


def test_refuses_unknown_opset(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)]
    _refused(tmp_path, _model(nodes, [_w()], opset=99), "opset 99")


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf \xff\xfe", b"\x08\x07\x12"])
def test_refuses_files_that_are_not_models(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(TwnError, match=r"junk\.onnx"):
        load_onnx(path)
