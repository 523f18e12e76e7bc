"""QDQ, QONNX and FINN activation/weight quantisers on tiny graphs, against their executors."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from hwgen import golden
from hwgen.build import ArithmeticOptions, prepare_network
from hwgen.errors import TwnError
from hwgen.frontend import load_onnx


def _graph(nodes, inits, n_in, n_out, opset=13, domains=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])],
        inits,
    )
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=imports)


def _c(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _qdq_mlp(path, seed, zero_point=128, n_in=12, hidden=10, n_out=4):
    """QDQ as quantisation toolkits export it: int8 ternary weights behind
    DequantizeLinear, uint8 activations after Relu, int8 input."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-1, 2, size=(n_in, hidden)).astype(np.int8)
    w2 = rng.integers(-1, 2, size=(hidden, n_out)).astype(np.int8)
    inits = [
        _c("w1_q", w1, np.int8), _c("w1_s", 0.05), _c("w2_q", w2, np.int8), _c("w2_s", 0.08),
        _c("in_s", 1 / 16), _c("in_z", 0, np.int8), _c("a_s", 0.02), _c("a_z", zero_point, np.uint8),
        _c("b1", rng.normal(0, 0.1, hidden)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "in_s", "in_z"], ["xq"], name="in_q"),
        helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], ["xd"], name="in_dq"),
        helper.make_node("DequantizeLinear", ["w1_q", "w1_s"], ["w1"], name="w1_dq"),
        helper.make_node("MatMul", ["xd", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu1"),
        helper.make_node("QuantizeLinear", ["hr", "a_s", "a_z"], ["hq"], name="act_q"),
        helper.make_node("DequantizeLinear", ["hq", "a_s", "a_z"], ["hd"], name="act_dq"),
        helper.make_node("DequantizeLinear", ["w2_q", "w2_s"], ["w2"], name="w2_dq"),
        helper.make_node("MatMul", ["hd", "w2"], ["y"], name="fc2"),
    ]
    onnx.save(_graph(nodes, inits, n_in, n_out), str(path))
    return path


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("zero_point", [0, 128])
def test_qdq_codes_are_exactly_onnxruntimes(tmp_path, seed, zero_point):
    path = _qdq_mlp(tmp_path / "qdq.onnx", seed, zero_point)
    net, _ = prepare_network(path, ArithmeticOptions())
    assert net.input_quantizer is not None and net.layers[0].quantizer is not None
    assert [layer.weight_kind for layer in net.layers] in (["ternary", "ternary"], ["ternary", "binary"])
    x = np.random.default_rng(seed).standard_normal((200, 12)) * 3
    # Expose the activation codes in onnxruntime and compare in the integer domain.
    model = onnx.load(str(path))
    model.graph.output.append(helper.make_tensor_value_info("hq", TensorProto.UINT8, ["n", 10]))
    # Without graph optimisations onnxruntime computes what the graph says (in
    # float32), rather than fusing QDQ into its own integer kernels.
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    y_ref, hq = sess.run(None, {"x": x.astype(np.float32)})
    codes = golden.run_layers(net, golden.quantize_input(net, x))
    np.testing.assert_array_equal(codes[0], hq.astype(np.int64) - zero_point)
    out = golden.run(net, x)
    assert np.abs(out - y_ref).max() <= 0.5 * golden.output_format(net).resolution + 1e-5


def _qonnx_model(path, act_bits, signed, seed=0):
    rng = np.random.default_rng(seed)
    n_in, hidden, n_out = 8, 6, 3
    dom = "qonnx.custom_op.general"
    w1 = rng.integers(-1, 2, size=(hidden, n_in)).astype(np.float32) * 0.25
    w2 = rng.integers(-1, 2, size=(n_out, hidden)).astype(np.float32)
    inits = [
        _c("w1", w1), _c("w2", w2), _c("s_in", 0.125), _c("s_act", 0.3), _c("s_w", 0.25), _c("z", 0.0),
        _c("bits_in", 8.0), _c("bits_act", float(act_bits)), _c("bits_w", 2.0), _c("one", 1.0),
        _c("bn_scale", rng.uniform(0.5, 1.5, hidden)), _c("bn_bias", rng.normal(0, 0.3, hidden)),
        _c("bn_mean", rng.normal(0, 0.3, hidden)), _c("bn_var", rng.uniform(0.5, 2, hidden)),
    ]  # fmt: skip
    q = dict(domain=dom, narrow=1, signed=1, rounding_mode="ROUND")
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "z", "bits_in"], ["xq"], name="in_quant", **q),
        helper.make_node("Quant", ["w1", "s_w", "z", "bits_w"], ["w1q"], name="w1_quant", **q),
        helper.make_node("Gemm", ["xq", "w1q"], ["h"], name="fc1", transB=1),
        helper.make_node("BatchNormalization", ["h", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["hb"], name="bn"),
        helper.make_node(
            "Quant", ["hb", "s_act", "z", "bits_act"], ["hq"], name="act_quant",
            domain=dom, narrow=0, signed=int(signed), rounding_mode="ROUND",
        ),
        helper.make_node("BipolarQuant", ["w2", "one"], ["w2q"], name="w2_quant", domain=dom),
        helper.make_node("Gemm", ["hq", "w2q"], ["y"], name="fc2", transB=1),
    ]  # fmt: skip
    onnx.save(_graph(nodes, inits, n_in, n_out, domains=(dom,)), str(path))
    return path


@pytest.mark.filterwarnings("ignore:Output shapes disagree")
@pytest.mark.parametrize("act_bits, signed", [(2, True), (3, False), (4, True)])
def test_qonnx_quant_codes_match_the_qonnx_executor(tmp_path, act_bits, signed):
    path = _qonnx_model(tmp_path / "q.onnx", act_bits, signed)
    net, _ = prepare_network(path, ArithmeticOptions())
    assert [layer.weight_kind for layer in net.layers] in (["ternary", "binary"], ["ternary", "ternary"])
    model = ModelWrapper(str(path))
    model.set_tensor_shape("x", [1, 8])  # qonnx executes with a fixed batch
    model.set_tensor_shape("y", [1, 3])
    model = model.transform(InferShapes())
    x = np.random.default_rng(act_bits).standard_normal((24, 8)) * 4
    codes = golden.run_layers(net, golden.quantize_input(net, x))
    for i in range(len(x)):
        ctx = execute_onnx(model, {"x": x[i : i + 1].astype(np.float32)}, return_full_exec_context=True)
        np.testing.assert_array_equal(np.round(ctx["hq"].reshape(-1) / 0.3), codes[0][i])
        assert np.abs(ctx["y"].reshape(-1) - golden.run(net, x[i : i + 1]).reshape(-1)).max() < 1e-3


def test_sign_activation_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
        helper.make_node("Add", ["h", "b"], ["hb"], name="bias"),
        helper.make_node("Sign", ["hb"], ["hs"], name="sign"),
        helper.make_node("Gemm", ["hs", "w2"], ["y"], name="fc2", transB=1),
    ]
    inits = [
        _c("w1", np.sign(rng.standard_normal((6, 5))) * 0.5),
        _c("b", rng.normal(0, 0.3, 6)),
        _c("w2", np.sign(rng.standard_normal((3, 6)))),
    ]
    path = tmp_path / "sign.onnx"
    onnx.save(_graph(nodes, inits, 5, 3), str(path))
    net, _ = prepare_network(path, ArithmeticOptions())
    x = rng.standard_normal((100, 5))
    acc = golden.compare_with_onnxruntime(path, net, x, "normal")
    assert acc.max_abs_error == 0.0  # binary in, integer out: nothing to round


@pytest.mark.parametrize(
    "case, match",
    [
        ("per_channel_act_scale", "per-channel activation scales"),
        ("six_bit_weights", r"node 'fc1' \(Gemm\).*within 4 bits"),
        ("trunc", "Trunc"),
    ],
)
def test_dialect_refusals(tmp_path, case, match):
    dom = "qonnx.custom_op.general"
    w = np.sign(np.random.default_rng(0).standard_normal((3, 4))).astype(np.float32)
    inits = [_c("z", 0.0), _c("b8", 8.0), _c("b6", 6.0), _c("s", 0.5), _c("sv", [0.5, 0.25, 0.5])]
    nodes = []
    if case == "six_bit_weights":
        # In a hidden layer: the first and last layers accept up to 16 bits by default.
        inits.append(_c("w0", np.sign(np.random.default_rng(2).standard_normal((4, 4)))))
        nodes.append(helper.make_node("Gemm", ["x", "w0"], ["h0"], name="fc0", transB=1))
        nodes.append(helper.make_node("Relu", ["h0"], ["r0"], name="relu0"))
        inits.append(_c("w", np.random.default_rng(1).standard_normal((3, 4)) * 10))
        nodes.append(helper.make_node("Quant", ["w", "s", "z", "b6"], ["wq"], name="wq", domain=dom, signed=1))
        nodes.append(helper.make_node("Gemm", ["r0", "wq"], ["h"], name="fc1", transB=1))
        nodes.append(helper.make_node("Relu", ["h"], ["r"], name="relu"))
        inits.append(_c("w2", w[:, :3]))
        nodes.append(helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1))
    else:
        inits.append(_c("w", w))
        nodes.append(helper.make_node("Gemm", ["x", "w"], ["h"], name="fc1", transB=1))
        if case == "per_channel_act_scale":
            nodes.append(helper.make_node("Quant", ["h", "sv", "z", "b8"], ["y"], name="aq", domain=dom, signed=1))
        else:
            nodes.append(helper.make_node("Trunc", ["h", "s", "z", "b8", "b6"], ["y"], name="tr", domain=dom))
    path = tmp_path / "bad.onnx"
    onnx.save(_graph(nodes, inits, 4, 3, domains=(dom,)), str(path))
    with pytest.raises(TwnError, match=match):
        load_onnx(path)


def _qdq_mixed_conv(path, seed):
    """QDQ conv1d -> pool -> (unsqueeze) conv2d -> pool -> dense, with batch norm."""
    from make_conv_net import _Builder

    b = _Builder(seed)

    def qdq(x, s, zp, dtype=np.uint8):
        sn, zn = b.const(np.float32(s), "s"), b.const(np.array(zp, dtype=dtype), "z")
        return b.node("DequantizeLinear", [b.node("QuantizeLinear", [x, sn, zn]), sn, zn])

    def weights(shape, zeros, s):
        ints = np.sign(b.ternary(shape, zeros)).astype(np.int8)
        return b.node("DequantizeLinear", [b.const(ints, "wq"), b.const(np.float32(s), "ws")])

    x = qdq("input", 1 / 32, 0, np.int8)
    x = b.node("Conv", [x, weights((8, 2, 5), 0.5, 0.1)], pads=[2, 2])
    x = qdq(b.node("Relu", [b.batchnorm(x, 8)]), 0.05, 0)
    x = b.node("MaxPool", [x], kernel_shape=[2], strides=[2])
    x = b.node("Unsqueeze", [x, b.const(np.array([2], dtype=np.int64), "axes")])
    x = b.node("Conv", [x, weights((8, 8, 1, 3), 0.6, 0.2)], pads=[0, 1, 0, 1], strides=[1, 2])
    x = qdq(b.node("Relu", [b.batchnorm(x, 8)]), 0.05, 0)
    x = b.flatten_view(b.node("MaxPool", [x], kernel_shape=[1, 2], strides=[1, 2]))
    b.node("Gemm", [x, weights((5, 32), 0.4, 0.3)], transB=1)
    onnx.save(b.model(["batch", 2, 32], "logits", 5), str(path))
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qdq_mixed_conv1d_conv2d_pool_dense(tmp_path, seed):
    path = _qdq_mixed_conv(tmp_path / "mixed.onnx", seed)
    net, _ = prepare_network(path, ArithmeticOptions())
    assert [layer.op for layer in net.layers] == ["Conv", "MaxPool", "Conv", "MaxPool", "Gemm"]
    x = np.random.default_rng(seed).standard_normal((200, 2, 32))
    acc = golden.compare_with_onnxruntime(path, net, x, "normal")
    assert acc.reference == "onnxruntime" and acc.top1_agreement >= 0.99
    assert acc.max_abs_error < 1e-3
