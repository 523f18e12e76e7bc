"""Read a plain float ONNX MLP into the IR.

The graph must be a single chain from one input to one output. Each
Gemm/MatMul starts a dense layer; a constant Add after it is its bias; a Relu
closes it. Identity, Dropout and a Flatten of the input are pass-throughs.
Everything else is refused with the node, the op and what would be accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from hwgen.errors import TwnError
from hwgen.frontend.weights import factor_weights
from hwgen.ir import DenseLayer, Network

__all__ = ["SUPPORTED_OPS", "load_onnx"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Relu", "Identity", "Dropout", "Flatten", "Constant")
MIN_OPSET, MAX_OPSET = 7, 21


def _node_label(node: onnx.NodeProto, index: int) -> str:
    name = node.name or f"#{index}"
    return f"node {name!r} ({node.op_type})"


@dataclass
class _PendingLayer:
    name: str
    op: str
    weights: np.ndarray  # float64 [out, in]
    bias: np.ndarray  # float64 [out]
    alpha: float = 1.0  # Gemm's alpha, folded into the scale after factoring
    relu: bool = False
    source_nodes: list[str] = field(default_factory=list)


def _load_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise TwnError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types
        raise TwnError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise TwnError(f"{path}: the ONNX model has no graph nodes")
    return model


def _opset(model: onnx.ModelProto, path: Path) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not MIN_OPSET <= imp.version <= MAX_OPSET:
                raise TwnError(
                    f"{path}: ONNX opset {imp.version} is not supported; "
                    f"twngen accepts opsets {MIN_OPSET} to {MAX_OPSET}"
                )
            return int(imp.version)
    raise TwnError(f"{path}: the model imports no default-domain ONNX opset")


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise TwnError(
                f"initializer {init.name!r} stores its data in an external file; "
                "twngen accepts models with all weights embedded in the .onnx file"
            )
        consts[init.name] = numpy_helper.to_array(init)
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            attr = {a.name: a for a in node.attribute}
            if "value" not in attr:
                raise TwnError(f"{_node_label(node, i)}: only the 'value' form of Constant is accepted")
            consts[node.output[0]] = numpy_helper.to_array(attr["value"].t)
    return consts


def _shape(value_info: onnx.ValueInfoProto) -> list[int | str]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_onnx(path: str | Path) -> Network:
    """Parse a plain-ONNX ternary/binary MLP into a :class:`Network` (not yet quantised)."""
    path = Path(path)
    model = _load_model(path)
    opset = _opset(model, path)
    graph = model.graph
    consts = _constants(graph)

    inputs = [vi for vi in graph.input if vi.name not in consts]
    if len(inputs) != 1:
        names = ", ".join(vi.name for vi in inputs) or "none"
        raise TwnError(
            f"{path}: the graph has {len(inputs)} inputs ({names}); twngen accepts exactly one streamed input tensor"
        )
    if len(graph.output) != 1:
        raise TwnError(f"{path}: the graph has {len(graph.output)} outputs; twngen accepts exactly one")
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise TwnError(
            f"input {inp.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
            "twngen accepts a FLOAT input tensor"
        )
    in_dims = _shape(inp)
    if len(in_dims) < 2 or any(not isinstance(d, int) or d <= 0 for d in in_dims[1:]):
        raise TwnError(
            f"input {inp.name!r} has shape {in_dims}; twngen accepts [batch, features...] "
            "with fixed positive feature dimensions (the batch dimension may be dynamic)"
        )
    input_shape = tuple(int(d) for d in in_dims[1:])  # type: ignore[arg-type]

    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(i)

    layers: list[_PendingLayer] = []
    current = inp.name
    features = int(np.prod(input_shape))
    flat = len(input_shape) == 1
    # A layer stays open (can take a bias) until something non-affine follows it.
    open_layer: _PendingLayer | None = None
    visited: set[int] = set()

    while current != graph.output[0].name:
        users = [u for u in consumers.get(current, []) if graph.node[u].op_type != "Constant"]
        if len(users) != 1:
            raise TwnError(
                f"tensor {current!r} feeds {len(users)} nodes; twngen accepts a single chain "
                "of layers from the input to the output (no branches, no dead ends)"
            )
        idx = users[0]
        node = graph.node[idx]
        if idx in visited:
            raise TwnError(f"{_node_label(node, idx)}: the graph has a cycle")
        visited.add(idx)
        label = _node_label(node, idx)
        data_inputs = [n for n in node.input if n and n not in consts]
        if data_inputs != [current]:
            raise TwnError(
                f"{label}: takes {len(data_inputs)} non-constant inputs; "
                "twngen accepts ops whose only non-constant input is the previous layer"
            )
        attrs = _attrs(node)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise TwnError(
                f"{label}: custom op domain {node.domain!r} is not supported here; "
                f"this frontend accepts plain ONNX ops: {', '.join(SUPPORTED_OPS)}"
            )

        if op in ("Gemm", "MatMul"):
            if not flat:
                raise TwnError(
                    f"{label}: input has shape {list(input_shape)}; a dense layer needs a "
                    "flat [batch, features] input (add a Flatten before it)"
                )
            wname = node.input[1]
            if wname not in consts:
                raise TwnError(f"{label}: weight {wname!r} is not a constant initializer")
            w = consts[wname].astype(np.float64)
            if w.ndim != 2:
                raise TwnError(f"{label}: weight {wname!r} has shape {list(w.shape)}; needs 2-D")
            if op == "Gemm":
                if int(attrs.get("transA", 0)) != 0:  # type: ignore[call-overload]
                    raise TwnError(f"{label}: transA=1 is not supported; accepted: transA=0")
                trans_b = int(attrs.get("transB", 0))  # type: ignore[call-overload]
                alpha = float(attrs.get("alpha", 1.0))  # type: ignore[arg-type]
                beta = float(attrs.get("beta", 1.0))  # type: ignore[arg-type]
                w_oi = w if trans_b else w.T
            else:
                w_oi, alpha, beta = w.T, 1.0, 1.0
            if w_oi.shape[1] != features:
                raise TwnError(
                    f"{label}: weight {wname!r} expects {w_oi.shape[1]} inputs but the previous layer gives {features}"
                )
            bias = np.zeros(w_oi.shape[0])
            if op == "Gemm" and len(node.input) > 2 and node.input[2]:
                c = consts.get(node.input[2])
                if c is None:
                    raise TwnError(f"{label}: bias {node.input[2]!r} is not a constant")
                bias = _broadcast_bias(c.astype(np.float64) * beta, w_oi.shape[0], label)
            open_layer = _PendingLayer(
                name=node.name or f"{op.lower()}_{idx}",
                op=op,
                weights=w_oi,
                bias=bias,
                alpha=alpha,
                source_nodes=[node.name or f"#{idx}"],
            )
            layers.append(open_layer)
            features = w_oi.shape[0]
        elif op == "Add":
            if open_layer is None or open_layer.relu:
                raise TwnError(
                    f"{label}: a constant Add is accepted only as the bias of a dense layer "
                    "(directly after Gemm/MatMul, before its Relu)"
                )
            const_name = next(n for n in node.input if n in consts)
            open_layer.bias = open_layer.bias + _broadcast_bias(
                consts[const_name].astype(np.float64), len(open_layer.bias), label
            )
            open_layer.source_nodes.append(node.name or f"#{idx}")
        elif op == "Relu":
            if open_layer is None:
                raise TwnError(
                    f"{label}: a Relu on the network input is not supported; accepted: Relu after a dense layer"
                )
            open_layer.relu = True
            open_layer.source_nodes.append(node.name or f"#{idx}")
        elif op in ("Identity", "Dropout"):
            pass
        elif op == "Flatten":
            axis = int(attrs.get("axis", 1))  # type: ignore[call-overload]
            if axis != 1:
                raise TwnError(f"{label}: Flatten axis={axis}; accepted: axis=1 (keep the batch)")
            flat = True
        else:
            raise TwnError(
                f"{label}: op {op!r} is not supported by the plain-ONNX MLP frontend; "
                f"accepted ops: {', '.join(SUPPORTED_OPS)}"
            )
        current = node.output[0]

    if not layers:
        raise TwnError(f"{path}: the graph has no Gemm/MatMul layer to build")
    out_dims = _shape(graph.output[0])
    output_shape = tuple(int(d) for d in out_dims[1:] if isinstance(d, int)) if len(out_dims) > 1 else ()
    if int(np.prod(output_shape)) != features:
        output_shape = (features,)

    ir_layers = []
    for pl in layers:
        where = f"node {pl.source_nodes[0]!r} ({pl.op})"
        fw = factor_weights(pl.weights, where)
        ir_layers.append(
            DenseLayer(
                name=pl.name,
                op=pl.op,
                weights=fw.integers,
                scale=fw.scale * pl.alpha,
                bias=pl.bias,
                relu=pl.relu,
                weight_kind=fw.kind,
                source_nodes=tuple(pl.source_nodes),
            )
        )
    net = Network(
        name=path.stem,
        input_name=inp.name,
        input_shape=input_shape,
        output_name=graph.output[0].name,
        output_shape=output_shape,
        layers=tuple(ir_layers),
        opset=opset,
    )
    net.verify()
    return net


def _broadcast_bias(c: np.ndarray, n: int, label: str) -> np.ndarray:
    if not np.all(np.isfinite(c)):
        raise TwnError(f"{label}: bias has NaN or infinite values")
    if c.size == 1:
        return np.full(n, float(c.reshape(-1)[0]))
    flat = c.reshape(-1)
    if flat.size != n or (c.ndim > 1 and c.shape[-1] != n):
        raise TwnError(
            f"{label}: bias of shape {list(c.shape)} does not broadcast to the layer's "
            f"{n} outputs; accepted: a scalar or [{n}]"
        )
    return flat.astype(np.float64)
