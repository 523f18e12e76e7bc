"""Hostile and strange inputs: refused with exit 2 and one message, or built correctly."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwgen.hwplan import plan_network
from hwgen.verify import load_build


def _model(nodes, inits, in_shape=("n", 4), out_shape=("n", 3), inputs=None):
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _w(values, name="W"):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


GEMM = [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)]
TERNARY = np.sign(np.random.default_rng(0).standard_normal((3, 4))) * 0.5


def _write(tmp_path, case):
    path = tmp_path / f"{case}.onnx"
    if case == "truncated":
        data = _model(GEMM, [_w(TERNARY)]).SerializeToString()
        path.write_bytes(data[: len(data) // 2])
    elif case == "cycle":
        nodes = [
            helper.make_node("Relu", ["x", "b"], ["a"], name="first"),
            helper.make_node("Relu", ["a"], ["b"], name="second"),
            helper.make_node("Gemm", ["b", "W"], ["y"], name="fc", transB=1),
        ]
        onnx.save(_model(nodes, [_w(TERNARY)]), str(path))
    elif case == "missing_initializer":
        onnx.save(_model(GEMM, []), str(path))
    elif case == "nan_weights":
        w = TERNARY.copy()
        w[1, 2] = np.nan
        onnx.save(_model(GEMM, [_w(w)]), str(path))
    elif case == "inf_weights":
        w = TERNARY.copy()
        w[0, 0] = np.inf
        onnx.save(_model(GEMM, [_w(w)]), str(path))
    elif case == "zero_width":
        onnx.save(_model(GEMM, [_w(np.zeros((3, 0)))], in_shape=("n", 0)), str(path))
    elif case == "absurd_size":
        onnx.save(_model(GEMM, [_w(TERNARY)], in_shape=("n", 10**12)), str(path))
    elif case == "external_data":
        model = _model(GEMM, [_w(TERNARY)])
        init = model.graph.initializer[0]
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        init.external_data.add(key="location", value="../../../etc/passwd")
        onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "not a readable ONNX model"),
        ("cycle", "cycle|non-constant inputs|feeds"),
        ("missing_initializer", "neither an initializer"),
        ("nan_weights", "NaN or infinite"),
        ("inf_weights", "NaN or infinite"),
        ("zero_width", "fixed positive feature dimensions"),
        ("absurd_size", "elements"),
        ("external_data", "external file"),
    ],
)
def test_hostile_models_are_refused(tmp_path, case, message):
    path = _write(tmp_path, case)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "hwgen.cli", str(path), "--board", "zcu111", "-o", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("twngen: error:") and "Traceback" not in r.stderr
    import re

    assert re.search(message, r.stderr), r.stderr
    assert not out.exists()


def test_all_zero_weights_build_to_constant_outputs(tmp_path):
    path = tmp_path / "zero.onnx"
    b = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "B")
    onnx.save(
        _model([helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", transB=1)], [_w(np.zeros((3, 4))), b]),
        str(path),
    )
    from hwgen.build import build

    result = build(path, "zcu111", tmp_path / "out")
    assert result.report["adders"] == 0
    network, _ = load_build(tmp_path / "out")
    assert plan_network(network).layers[0].graph.outputs == (None, None, None)


def test_names_with_verilog_syntax_never_reach_the_rtl(tmp_path):
    evil = "fc; endmodule module evil(); initial $finish; //"
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name=evil, transB=1)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [_w(TERNARY)],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    from hwgen.build import build

    build(path, "zcu111", tmp_path / "out")
    for v in (tmp_path / "out" / "rtl").glob("*.v"):
        text = v.read_text()
        assert "evil" not in text and "$finish" not in text and "fc;" not in text
        assert text.count("endmodule") == text.count("\nmodule ") + text.startswith("module ")
