"""The shared real models (tests/fixtures/models, see PROVENANCE.md) against their references."""

import numpy as np
import onnxruntime as ort
import pytest
from conftest import REPO
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from hwgen import golden
from hwgen.build import ArithmeticOptions, prepare_network

MODELS = REPO / "tests" / "fixtures" / "models"
FINN = MODELS / "finn_build_dataflow"


def test_finn_dataflow_model_reproduces_expected_labels():
    net, _ = prepare_network(FINN / "model.onnx", ArithmeticOptions())
    assert net.input_quantizer is not None and net.input_quantizer.kind == "thresholds"
    assert [layer.weight_kind for layer in net.layers] == ["binary"] * 4
    assert net.output_op == "topk1"
    labels = golden.run(net, np.load(FINN / "input.npy")).reshape(-1)
    assert labels.tolist() == np.load(FINN / "expected_output.npy").reshape(-1).tolist()


@pytest.fixture(scope="module")
def tfc():
    net, _ = prepare_network(MODELS / "tfc_2w2a_qonnx.onnx", ArithmeticOptions())
    model = ModelWrapper(str(MODELS / "tfc_2w2a_qonnx.onnx")).transform(InferShapes())
    return net, model


@pytest.mark.filterwarnings("ignore:Output shapes disagree")  # qonnx's own check, batch-size noise
def test_qonnx_tfc_integer_codes_match_the_qonnx_executor(tfc):
    net, model = tfc
    rng = np.random.default_rng(0)
    x = np.concatenate([np.load(FINN / "input.npy") / 255.0, rng.uniform(0, 1, size=(4, 1, 28, 28))])
    inits = {i.name for i in model.graph.initializer}
    act_quants = [n.output[0] for n in model.graph.node if n.op_type == "Quant" and n.input[0] not in inits]
    assert len(act_quants) == 4  # input + three hidden activations
    codes = golden.run_layers(net, golden.quantize_input(net, x))
    in_codes = golden.quantize_input(net, x)
    iname = model.graph.input[0].name
    for i in range(len(x)):
        ctx = execute_onnx(model, {iname: x[i : i + 1].astype(np.float32)}, return_full_exec_context=True)
        np.testing.assert_array_equal(ctx[act_quants[0]].reshape(-1) / net.input_quantizer.step, in_codes[i])
        for k, name in enumerate(act_quants[1:]):
            np.testing.assert_array_equal(ctx[name].reshape(-1) / net.layers[k].quantizer.step, codes[k][i])
        out = ctx[model.graph.output[0].name].reshape(-1)
        got = golden.run(net, x[i : i + 1]).reshape(-1)
        # The float output is rounded to the output format: within half a code.
        assert np.abs(out - got).max() <= 0.5 * golden.output_format(net).resolution + 1e-6
        assert np.argmax(out) == np.argmax(got)


def test_qonnx_tfc_reads_as_ternary_with_two_bit_activations(tfc):
    net, _ = tfc
    assert [layer.weight_kind for layer in net.layers] == ["ternary"] * 4
    assert [layer.requant.out.bits for layer in net.layers[:3]] == [2, 2, 2]
    assert net.input_format.bits == 2


def test_plain_binary_cnn_matches_onnxruntime():
    path = MODELS / "bnn_cnn_mnist_plain.onnx"
    net, _ = prepare_network(path, ArithmeticOptions(input_range=256))
    ops = [layer.op for layer in net.layers]
    assert ops == ["Conv", "MaxPool", "Conv", "MaxPool", "Gemm", "Gemm"]
    assert all(layer.quantizer is not None for layer in net.linear_layers[:-1])
    x = np.random.default_rng(1).integers(0, 256, size=(64, 784)).astype(np.float32)
    acc = golden.compare_with_onnxruntime(path, net, x, "random 0..255 images")
    assert acc.reference == "onnxruntime" and acc.top1_agreement >= 0.99
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(golden.run(net, x), ref, atol=1e-3)


def test_finn_dataflow_model_builds_and_verifies_on_icarus(tmp_path):
    """A real trained binary MLP end to end: merged adder graphs, RTL bit-exact with the golden model."""
    from hwgen.build import build
    from hwgen.verify import verify

    result = build(FINN / "model.onnx", "zcu111", tmp_path / "finn")
    assert result.report["adders"] < result.report["naive_adders"] / 3  # binary layers share a lot
    r = verify(tmp_path / "finn", "icarus", inputs=np.load(FINN / "input.npy"), stall=0.3)
    assert (r.passed, r.failed) == (4, 0) and r.ok


@pytest.mark.bench  # a 4 MB design: its Verilator build takes minutes (make bench runs it)
def test_real_binary_cnn_streams_bit_exact(tmp_path_factory):
    """A real trained binary CNN (2-D conv, pooling, batch norm, sign activations, dense) as
    streamed hardware: one pixel per cycle, the graph's flat input taken as [1, 28, 28].
    Verilator only: Icarus takes minutes per frame-sized run of this design (the small
    frame networks in test_frames.py run on both)."""
    simulator = "verilator"
    from hwgen.build import build
    from hwgen.verify import verify

    out = tmp_path_factory.mktemp(f"bnn_cnn_{simulator}") / "b"
    options = ArithmeticOptions(input_range=256)
    result = build(MODELS / "bnn_cnn_mnist_plain.onnx", "zcu111", out, options=options)
    assert result.report["initiation_interval_cycles"] == 28 * 28
    assert result.report["interface"]["input_elements_per_beat"] == 1
    x = np.random.default_rng(5).integers(0, 256, size=(5, 784)).astype(np.float64)
    r = verify(out, simulator, inputs=x, stall=0.3, seed=2)
    assert (r.passed, r.failed, r.extra_outputs) == (5, 0, 0), r.mismatches
    assert r.measured_latency_cycles == r.expected_latency_cycles
    assert r.measured_ii_cycles == r.expected_ii_cycles == 784
