"""Read a plain float ONNX network into the IR.

The graph must be a single chain from one input to one output (shape
computations aside, which are constant-folded). Gemm, MatMul and Conv start a
linear layer; constant affine ops (BatchNormalization, Mul, Add, Sub, Div)
fold into it as per-channel scale and bias; Relu closes it. MaxPool becomes a
pooling layer; an affine after the pooling still folds into the layer before
it (pooling is monotone, so a negative scale turns that channel's max into a
min). Reshape-like ops change only the shape; a Transpose is accepted before
a dense layer (it permutes the dense layer's columns). A final Softmax,
LogSoftmax, ArgMax or TopK(k=1) is recorded as the output op. Everything
else is refused with the node, the op and what would be accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hwgen.errors import TwnError
from hwgen.frontend import quant_ops
from hwgen.frontend.fold import BATCH, MAX_TENSOR_ELEMENTS, fold_constants
from hwgen.frontend.nodes import node_attrs, node_label
from hwgen.frontend.quant_ops import FINN_DOMAINS, QONNX_DOMAINS
from hwgen.frontend.weights import factor_weights, round_weights
from hwgen.ir import Layer, LinearLayer, Network, PoolLayer, Quantizer

__all__ = ["MAX_FINAL_WEIGHT_BITS", "MAX_FIRST_WEIGHT_BITS", "MAX_WEIGHT_BITS", "SUPPORTED_OPS", "load_onnx"]

SUPPORTED_OPS = (
    "Gemm",
    "MatMul",
    "Conv",
    "BatchNormalization",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Clip (as ReLU)",
    "MaxPool",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose (before a dense layer)",
    "Identity",
    "Dropout",
    "Softmax/LogSoftmax/ArgMax/TopK (last)",
    "Quant/BipolarQuant (QONNX)",
    "MultiThreshold (FINN)",
    "QuantizeLinear+DequantizeLinear",
    "Greater+Where and Sign (binary/ternary activations)",
)
MIN_OPSET, MAX_OPSET = 7, 21
#: Refused before anything of that size is allocated.
MAX_INPUT_ELEMENTS = 1 << 24
_LINEAR = ("Gemm", "MatMul", "Conv")
_AFFINE = ("BatchNormalization", "Add", "Sub", "Mul", "Div")
_SHAPE_ONLY = ("Flatten", "Reshape", "Squeeze", "Unsqueeze")
_OUTPUT_OPS = {"Softmax": "softmax", "LogSoftmax": "logsoftmax", "ArgMax": "argmax", "TopK": "topk1"}


@dataclass
class _Pool:
    name: str
    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[int, ...]
    sign: np.ndarray  # product of the signs of affines applied after this pool
    source: str


@dataclass
class _Open:
    """A linear layer still taking affine ops, with any pools that follow it."""

    name: str
    op: str
    weights: np.ndarray  # float64 [out, cols]
    scale: np.ndarray  # float64 [out], multiplies the factored weights
    bias: np.ndarray  # float64 [out]
    in_shape: tuple[int, ...]
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    relu: bool = False
    quantizer: Quantizer | None = None
    clip: tuple[float, float] | None = None  # a Clip waiting for its quantiser
    pools: list[_Pool] = field(default_factory=list)
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


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise TwnError(
                f"initializer {init.name!r} stores its data in an external file; "
                "twngen accepts models with all weights embedded in the .onnx file"
            )
        consts[init.name] = _initializer_array(init)
    return consts


def _initializer_array(init: onnx.TensorProto) -> np.ndarray:
    """The initializer's values, refusing declared sizes that are absurd or that its data does not hold."""
    dims = [int(d) for d in init.dims]
    what = f"initializer {init.name!r}"
    if any(d < 0 for d in dims):
        raise TwnError(f"{what} declares a negative dimension {dims}; dimensions must be >= 0")
    if init.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        kind = onnx.TensorProto.DataType.Name(init.data_type)
        raise TwnError(f"{what} has element type {kind}; twngen accepts numeric constants")
    count = int(np.prod(dims, dtype=object)) if dims else 1
    if count > MAX_TENSOR_ELEMENTS:
        raise TwnError(
            f"{what} declares {count:,} elements (shape {dims}); twngen accepts constants of at most "
            f"{MAX_TENSOR_ELEMENTS:,} elements"
        )
    try:
        return numpy_helper.to_array(init)
    except Exception as exc:  # data that does not match the declared shape or type
        raise TwnError(
            f"{what} of shape {dims} holds data that does not match its declared shape or type "
            f"({type(exc).__name__}: {exc})"
        ) from None


#: Custom-domain quantisers whose output has their first input's shape (ONNX shape inference
#: stops at them: it does not know the ops).
_SHAPE_PRESERVING = ("Quant", "BipolarQuant", "MultiThreshold")


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference, carried through the custom quantisers, so that a flatten written as
    ``Shape -> Gather -> Concat -> Reshape`` after a ``Quant`` folds like one after a ``Relu``.
    A model that shape inference cannot handle is read without it."""
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # any failure only means no inferred shapes
        return model
    for _ in range(sum(1 for n in model.graph.node if n.op_type in _SHAPE_PRESERVING)):
        known = {vi.name: vi for vi in [*model.graph.value_info, *model.graph.input]}
        added = False
        for node in model.graph.node:
            if node.op_type not in _SHAPE_PRESERVING or node.domain in ("", "ai.onnx"):
                continue
            src = known.get(node.input[0])
            if src is None or not node.output or node.output[0] in known:
                continue
            vi = onnx.ValueInfoProto()
            vi.CopyFrom(src)
            vi.name = node.output[0]
            model.graph.value_info.append(vi)
            added = True
        if not added:
            break
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:
            break
    return model


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims


def _channel_vector(c: np.ndarray, channels: int, rank: int, label: str) -> np.ndarray:
    """A constant that broadcasts per channel (axis 1 of [batch, C, ...]) as a [C] vector."""
    c = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise TwnError(f"{label}: constant has NaN or infinite values")
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]))
    # Align to the full rank [batch, C, *spatial] the way numpy broadcasting does.
    full = c.reshape((1,) * (rank + 1 - c.ndim) + c.shape) if c.ndim <= rank + 1 else None
    ok = full is not None and full.shape[0] == 1 and full.shape[1] == channels and all(d == 1 for d in full.shape[2:])
    if not ok and rank == 1 and c.ndim == 1 and c.size == channels:
        return c.copy()
    if not ok:
        raise TwnError(
            f"{label}: constant of shape {list(c.shape)} is not per-channel for a tensor with {channels} "
            "channels; accepted: a scalar or one value per channel"
        )
    assert full is not None
    return full.reshape(channels).copy()


def _window_attrs(
    attrs: dict[str, Any], spatial: tuple[int, ...], kernel: tuple[int, ...], label: str, pool: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    nd = len(kernel)
    stride = tuple(int(v) for v in attrs.get("strides", [1] * nd))
    dil = tuple(int(v) for v in attrs.get("dilations", [1] * nd))
    if any(d != 1 for d in dil):
        raise TwnError(f"{label}: dilations {list(dil)} are not supported; accepted: dilation 1")
    if pool and int(attrs.get("ceil_mode", 0)) != 0:
        raise TwnError(f"{label}: ceil_mode=1 is not supported; accepted: ceil_mode=0")
    if len(stride) != nd or any(s < 1 for s in stride):
        raise TwnError(f"{label}: strides {list(stride)} do not match a {nd}-D kernel")
    auto = str(attrs.get("auto_pad", "NOTSET"))
    if auto in ("NOTSET", ""):
        pads = tuple(int(v) for v in attrs.get("pads", [0] * (2 * nd)))
    elif auto == "VALID":
        pads = (0,) * (2 * nd)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s in zip(spatial, kernel, stride, strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = tuple(begin + end)
    else:
        raise TwnError(f"{label}: auto_pad={auto!r} is not supported")
    if len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise TwnError(f"{label}: pads {list(pads)} are not valid for a {nd}-D kernel")
    padded = int(np.prod([n + pads[i] + pads[nd + i] for i, n in enumerate(spatial)], dtype=object))
    if padded > MAX_INPUT_ELEMENTS:
        # Refused before the golden model or the calibration pads a batch to that size.
        raise TwnError(
            f"{label}: pads {list(pads)} make a padded frame of {padded:,} positions; twngen accepts at most "
            f"{MAX_INPUT_ELEMENTS:,} (and streams padding up to kernel - 1 on each side)"
        )
    return stride, pads


class _Reader:
    def __init__(
        self,
        path: Path,
        max_weight_bits: int,
        max_final_weight_bits: int,
        max_first_weight_bits: int,
        quantize_weights: dict[str, int],
    ) -> None:
        self.path = path
        self.max_weight_bits = max_weight_bits
        self.max_final_weight_bits = max_final_weight_bits
        self.max_first_weight_bits = max_first_weight_bits
        self.quantize_weights = quantize_weights
        model = _load_model(path)
        self.opset = _opset(model, path)
        model = _infer_shapes(model)
        self.graph = model.graph
        self.consts = _initializers(self.graph)
        self.value_shapes = {vi.name: _dims(vi) for vi in [*self.graph.value_info, *self.graph.input]}
        self.layers: list[Layer | _Open] = []
        self.open: _Open | None = None
        self.output_op = "none"
        self.last_tensor = ""
        self.input_quantizer: Quantizer | None = None
        self.input_scale: np.ndarray | None = None
        self.input_offset: np.ndarray | None = None
        self.input_shape: tuple[int, ...] = ()
        self.current_shape: tuple[int, ...] = ()
        self.in_features = 0

    # -- chain walking -----------------------------------------------------
    def read(self) -> Network:
        graph = self.graph
        inputs = [vi for vi in graph.input if vi.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(vi.name for vi in inputs) or "none"
            raise TwnError(
                f"{self.path}: the graph has {len(inputs)} inputs ({names}); "
                "twngen accepts exactly one streamed input tensor"
            )
        if len(graph.output) != 1:
            raise TwnError(f"{self.path}: the graph has {len(graph.output)} outputs; twngen accepts exactly one")
        inp = inputs[0]
        elem = inp.type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise TwnError(
                f"input {inp.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
                "twngen accepts a FLOAT input tensor"
            )
        in_dims = _dims(inp)
        if len(in_dims) < 2 or any(not isinstance(d, int) or d <= 0 for d in in_dims[1:]):
            raise TwnError(
                f"input {inp.name!r} has shape {in_dims}; twngen accepts [batch, features...] "
                "with fixed positive feature dimensions (the batch dimension may be dynamic)"
            )
        input_shape = tuple(int(d) for d in in_dims[1:])  # type: ignore[arg-type]
        if int(np.prod(input_shape, dtype=object)) > MAX_INPUT_ELEMENTS:
            raise TwnError(
                f"input {inp.name!r} declares {int(np.prod(input_shape, dtype=object)):,} elements per sample; "
                f"twngen accepts at most {MAX_INPUT_ELEMENTS:,}"
            )
        self.input_shape, self.in_features = input_shape, int(np.prod(input_shape))
        folded = fold_constants(graph, self.consts, self.value_shapes, inp.name, input_shape, self.opset)

        produced = {name for node in graph.node for name in node.output} | {vi.name for vi in graph.input}
        for i, node in enumerate(graph.node):
            for name in node.input:
                if name and name not in produced and name not in self.consts:
                    raise TwnError(
                        f"{node_label(node, i)}: input {name!r} is neither an initializer, a graph input "
                        "nor the output of a node"
                    )
        consumers: dict[str, list[int]] = {}
        for i, node in enumerate(graph.node):
            if i in folded:
                continue
            for name in node.input:
                if name:
                    consumers.setdefault(name, []).append(i)

        current, shape = inp.name, input_shape
        perm: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (shape before, permutation)
        visited: set[int] = set()
        out_name = graph.output[0].name
        while current != out_name:
            users = consumers.get(current, [])
            if len(users) != 1:
                raise TwnError(
                    f"tensor {current!r} feeds {len(users)} nodes; twngen accepts a single chain "
                    "of layers from the input to the output (no branches, no dead ends)"
                )
            idx = users[0]
            node = graph.node[idx]
            label = node_label(node, idx)
            if idx in visited:
                raise TwnError(f"{label}: the graph has a cycle")
            visited.add(idx)
            dialect = (node.op_type in ("Quant", "BipolarQuant", "Trunc") and node.domain in QONNX_DOMAINS) or (
                node.op_type == "MultiThreshold" and node.domain in FINN_DOMAINS
            )
            if node.domain not in ("", "ai.onnx") and not dialect:
                raise TwnError(
                    f"{label}: op {node.op_type!r} in domain {node.domain!r} is not supported; "
                    f"accepted ops: {', '.join(SUPPORTED_OPS)}"
                )
            data_inputs = [n for n in node.input if n and n not in self.consts]
            if data_inputs != [current]:
                raise TwnError(
                    f"{label}: takes {len(data_inputs)} non-constant inputs; "
                    "twngen accepts ops whose only non-constant input is the previous layer"
                )
            if self.output_op != "none":
                raise TwnError(f"{label}: nothing may follow the final {self.output_op} op")
            op = node.op_type
            attrs = node_attrs(node)
            nodename = node.name or f"#{idx}"
            if op in _LINEAR:
                if perm is not None and op != "Conv":
                    shape, perm_cols = self._permuted_columns(perm, shape)
                else:
                    perm_cols = None
                if perm is not None and op == "Conv":
                    raise TwnError(f"{label}: a Transpose before a convolution is not supported")
                perm = None
                self._close()
                shape = self._linear(node, label, attrs, shape, nodename, perm_cols)
            elif op in _AFFINE:
                self._affine(node, label, attrs, shape, nodename)
            elif op == "Relu" or op == "Clip":
                lo, hi = self._clip_bounds(node, label, attrs) if op == "Clip" else (0.0, np.inf)
                layer = self.open
                if layer is None:
                    raise TwnError(f"{label}: a {op} on the network input is not supported")
                if layer.quantizer is not None:
                    if lo <= layer.quantizer.code_lo * layer.quantizer.step and np.isinf(hi):
                        layer.source_nodes.append(nodename)  # no effect on these codes
                    else:
                        raise TwnError(f"{label}: a {op} after the activation quantiser is not supported")
                elif lo == 0 and np.isinf(hi):
                    layer.relu = True
                else:
                    layer.clip = (lo, hi)  # applied by the quantiser that must follow
                layer.source_nodes.append(nodename)
            elif op in ("Quant", "BipolarQuant") and node.domain in QONNX_DOMAINS:
                self._quantizer(quant_ops.quant_quantizer(node, self.consts, label), label, nodename)
            elif op == "MultiThreshold":
                self.current_shape = shape
                channels = shape[0]
                self._quantizer(quant_ops.multithreshold_quantizer(node, self.consts, channels, label), label, nodename)
            elif op == "QuantizeLinear":
                dq_idx = self._single_user(node.output[0], consumers, "DequantizeLinear", label)
                dq = graph.node[dq_idx]
                visited.add(dq_idx)
                self._quantizer(quant_ops.qdq_quantizer(node, dq, self.consts, label), label, nodename)
                current = dq.output[0]
                if self.output_op == "none":
                    self.last_tensor = current
                continue
            elif op in ("Greater", "GreaterOrEqual"):
                where_idx = self._single_user(node.output[0], consumers, "Where", label)
                where = graph.node[where_idx]
                visited.add(where_idx)
                self._quantizer(self._sign_idiom(node, where, label), label, nodename)
                current = where.output[0]
                if self.output_op == "none":
                    self.last_tensor = current
                continue
            elif op == "Sign":
                q = Quantizer("sign", step=1.0, code_lo=-1, code_hi=1, source=nodename)
                self._quantizer(q, label, nodename)
            elif op == "MaxPool":
                if perm is not None:
                    raise TwnError(f"{label}: a Transpose before pooling is not supported")
                if len(node.output) > 1 and node.output[1]:
                    raise TwnError(f"{label}: the Indices output is not supported")
                shape = self._pool(node, label, attrs, shape, nodename)
            elif op in _SHAPE_ONLY:
                # After a Transpose the data stays in its untransposed order
                # until a dense layer reads it (see _permuted_columns).
                shape = self._reshape(node, label, attrs, shape)
            elif op == "Transpose":
                p = tuple(int(v) for v in attrs.get("perm", range(len(shape) + 1))[::1])
                if not p or p[0] != 0:
                    raise TwnError(f"{label}: a Transpose that moves the batch axis is not supported")
                inner = tuple(v - 1 for v in p[1:])
                base_shape = perm[0] if perm is not None else shape
                if perm is not None:
                    if int(np.prod(shape)) != int(np.prod(perm[0])) or shape != tuple(perm[0][i] for i in perm[1]):
                        raise TwnError(f"{label}: a Transpose after a Reshape of a transposed tensor is not supported")
                    inner = tuple(perm[1][i] for i in inner)
                perm = (base_shape, inner)
                shape = tuple(base_shape[i] for i in inner)
            elif op in ("Identity", "Dropout"):
                if op == "Dropout" and len(node.output) > 1 and node.output[1]:
                    raise TwnError(f"{label}: the Dropout mask output is not supported")
            elif op in _OUTPUT_OPS:
                shape = self._output_op(node, label, attrs, shape)
                current = node.output[1] if op == "TopK" else node.output[0]
                continue
            else:
                raise TwnError(
                    f"{label}: op {op!r} is not supported by the plain-ONNX frontend; "
                    f"accepted ops: {', '.join(SUPPORTED_OPS)}"
                )
            current = node.output[0]
            if self.output_op == "none":
                self.last_tensor = current
        if perm is not None:
            raise TwnError("a Transpose must be followed by a dense layer (Gemm/MatMul)")
        self._close()
        opens = [k for k, layer in enumerate(self.layers) if isinstance(layer, _Open)]
        if not opens:
            raise TwnError(f"{self.path}: the graph has no Gemm/MatMul/Conv layer to build")
        rounding = _rounding_bits(self.quantize_weights, [self.layers[k] for k in opens])  # type: ignore[misc]
        layers: list[Layer] = [
            self._factor(layer, k == opens[0], k == opens[-1], rounding.get(k)) if isinstance(layer, _Open) else layer
            for k, layer in enumerate(self.layers)
        ]
        out_dims = _dims(graph.output[0])
        last = layers[-1]
        output_shape = tuple(last.out_shape)
        if len(out_dims) > 1 and all(isinstance(d, int) for d in out_dims[1:]):
            declared = tuple(int(d) for d in out_dims[1:])  # type: ignore[arg-type]
            if self.output_op == "none" and int(np.prod(declared)) == int(np.prod(output_shape)):
                output_shape = declared
        net = Network(
            name=self.path.stem,
            input_name=inp.name,
            input_shape=input_shape,
            output_name=out_name,
            output_shape=output_shape,
            layers=tuple(layers),
            opset=self.opset,
            output_op=self.output_op,
            compare_name=self.last_tensor or out_name,
            input_scale=self.input_scale,
            input_offset=self.input_offset,
            input_quantizer=self.input_quantizer,
        )
        net.verify()
        return net

    # -- ops -----------------------------------------------------------------
    def _const(self, name: str, label: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise TwnError(f"{label}: {what} {name!r} is not a constant initializer")
        return np.asarray(self.consts[name])

    def _linear(
        self,
        node: onnx.NodeProto,
        label: str,
        attrs: dict[str, Any],
        shape: tuple[int, ...],
        nodename: str,
        perm_cols: np.ndarray | None,
    ) -> tuple[int, ...]:
        op = node.op_type
        w = self._const(node.input[1], label, "weight").astype(np.float64)
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        kernel: tuple[int, ...] = ()
        stride: tuple[int, ...] = ()
        pads: tuple[int, ...] = ()
        alpha = 1.0
        if op == "Conv":
            if len(shape) < 2:
                raise TwnError(f"{label}: a convolution needs a [channels, length(s)] input, not {list(shape)}")
            if int(attrs.get("group", 1)) != 1:
                raise TwnError(
                    f"{label}: group={attrs.get('group')} (grouped/depthwise convolution) is not supported; "
                    "accepted: group=1"
                )
            if w.ndim != len(shape) + 1 or w.shape[1] != shape[0]:
                raise TwnError(f"{label}: weight shape {list(w.shape)} does not fit input {list(shape)}")
            kernel = tuple(int(v) for v in w.shape[2:])
            if len(kernel) > 2:
                raise TwnError(f"{label}: {len(kernel)}-D convolution is not supported; accepted: 1-D and 2-D")
            if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != kernel:
                raise TwnError(f"{label}: kernel_shape {attrs['kernel_shape']} differs from the weights")
            stride, pads = _window_attrs(attrs, shape[1:], kernel, label, pool=False)
            w_oi = w.reshape(w.shape[0], -1)
        else:
            if len(shape) != 1:
                raise TwnError(
                    f"{label}: input has shape {list(shape)}; a dense layer needs a flat [batch, features] "
                    "input (add a Flatten before it)"
                )
            if w.ndim != 2:
                raise TwnError(f"{label}: weight has shape {list(w.shape)}; needs 2-D")
            if op == "Gemm":
                if int(attrs.get("transA", 0)) != 0:
                    raise TwnError(f"{label}: transA=1 is not supported; accepted: transA=0")
                w_oi = w if int(attrs.get("transB", 0)) else w.T
                alpha = float(attrs.get("alpha", 1.0))
                if not math.isfinite(alpha) or not math.isfinite(float(attrs.get("beta", 1.0))):
                    raise TwnError(
                        f"{label}: alpha={attrs.get('alpha', 1.0)}, beta={attrs.get('beta', 1.0)}; "
                        "Gemm's alpha and beta must be finite"
                    )
            else:
                w_oi, bias_name = w.T, None
            if perm_cols is not None:
                w_oi = w_oi[:, perm_cols]
            if w_oi.shape[1] != shape[0]:
                raise TwnError(
                    f"{label}: weight expects {w_oi.shape[1]} inputs but the previous layer gives {shape[0]}"
                )
        out = w_oi.shape[0]
        bias = np.zeros(out)
        if bias_name is not None:
            beta = float(attrs.get("beta", 1.0)) if op == "Gemm" else 1.0
            bias = _channel_vector(self._const(bias_name, label, "bias") * beta, out, 1, label)
        self.open = _Open(
            name=nodename,
            op=op,
            weights=w_oi,
            scale=np.full(out, alpha),
            bias=bias,
            in_shape=shape,
            kernel=kernel,
            stride=stride,
            pads=pads,
            source_nodes=[nodename],
        )
        probe = LinearLayer(
            name=nodename,
            op=op,
            weights=np.zeros((out, w_oi.shape[1]), dtype=np.int64),
            scale=np.zeros(out),
            bias=np.zeros(out),
            relu=False,
            weight_kind="ternary",
            source_nodes=(),
            in_shape=shape,
            kernel=kernel,
            stride=stride,
            pads=pads,
        )
        if any(d <= 0 for d in probe.out_shape):
            raise TwnError(f"{label}: the output would be empty ({list(probe.out_shape)})")
        return probe.out_shape

    def _affine(
        self, node: onnx.NodeProto, label: str, attrs: dict[str, Any], shape: tuple[int, ...], nodename: str
    ) -> None:
        op = node.op_type
        channels = shape[0]
        rank = len(shape)
        if op == "BatchNormalization":
            params = []
            for n in node.input[1:5]:
                v = np.asarray(self._const(n, label, "parameter"), dtype=np.float64).reshape(-1)
                if v.size != channels or not np.all(np.isfinite(v)):
                    raise TwnError(f"{label}: parameter {n!r} must hold {channels} finite values")
                params.append(v)
            gamma, beta, mean, var = params
            eps = float(attrs.get("epsilon", 1e-5))
            if np.any(var + eps <= 0):
                raise TwnError(f"{label}: variance + epsilon must be positive")
            a = gamma / np.sqrt(var + eps)
            b = beta - mean * a
        else:
            const_pos = 0 if node.input[0] in self.consts else 1
            c = _channel_vector(self.consts[node.input[const_pos]], channels, rank, label)
            if op == "Add":
                a, b = np.ones(channels), c
            elif op == "Sub":
                a, b = (np.ones(channels), -c) if const_pos == 1 else (-np.ones(channels), c)
            elif op == "Mul":
                a, b = c, np.zeros(channels)
            else:
                if const_pos == 0:
                    raise TwnError(f"{label}: constant / tensor is not an affine op; accepted: tensor / constant")
                if np.any(c == 0):
                    raise TwnError(f"{label}: division by zero")
                a, b = 1.0 / c, np.zeros(channels)
        layer = self.open
        if layer is None:
            self._input_affine(a, b, shape, label)
            return
        if layer.quantizer is not None:
            raise TwnError(
                f"{label}: an affine op after the activation quantiser {layer.quantizer.source!r} cannot be "
                "folded; accepted: affine ops before the quantiser"
            )
        if layer.relu:
            raise TwnError(
                f"{label}: an affine op after a ReLU cannot be folded into the layer before it; accepted: "
                "affine ops between a Gemm/MatMul/Conv (or its pooling) and its ReLU"
            )
        if len(a) != layer.weights.shape[0]:
            raise TwnError(f"{label}: has {len(a)} channels, the layer before has {layer.weights.shape[0]}")
        layer.scale = layer.scale * a
        layer.bias = layer.bias * a + b
        for pool in layer.pools:
            pool.sign = pool.sign * np.where(a < 0, -1, 1)
        layer.source_nodes.append(nodename)

    def _input_affine(self, a: np.ndarray, b: np.ndarray, shape: tuple[int, ...], label: str) -> None:
        """Preprocessing on the network input (e.g. x / 255 * 2 - 1), before any layer."""
        if self.layers or self.input_quantizer is not None:
            raise TwnError(
                f"{label}: an affine op here cannot be folded; accepted: affine ops on the network input, "
                "or after a Gemm/MatMul/Conv before its ReLU"
            )
        channels = self.input_shape[0] if len(self.input_shape) > 1 else self.in_features
        if len(set(a.tolist())) == 1 and len(set(b.tolist())) == 1:
            a, b = np.full(channels, a[0]), np.full(channels, b[0])
        elif shape != self.input_shape or len(a) != channels:
            raise TwnError(f"{label}: a per-channel input affine after a reshape is not supported")
        self.input_scale = a * (self.input_scale if self.input_scale is not None else 1.0)
        self.input_offset = b + a * (self.input_offset if self.input_offset is not None else 0.0)

    def _single_user(self, tensor: str, consumers: dict[str, list[int]], op: str, label: str) -> int:
        users = consumers.get(tensor, [])
        if len(users) != 1 or self.graph.node[users[0]].op_type != op:
            raise TwnError(f"{label}: must be followed by exactly one {op}")
        return users[0]

    def _sign_idiom(self, greater: onnx.NodeProto, where: onnx.NodeProto, label: str) -> Quantizer:
        """Where(Greater(x, t), hi, lo): a binary activation."""
        if greater.input[1] not in self.consts or any(n not in self.consts for n in where.input[1:3]):
            raise TwnError(f"{label}: the threshold and both Where values must be constants")
        t = np.asarray(self.consts[greater.input[1]], dtype=np.float64)
        hi = np.asarray(self.consts[where.input[1]], dtype=np.float64)
        lo = np.asarray(self.consts[where.input[2]], dtype=np.float64)
        if t.size != 1 or hi.size != 1 or lo.size != 1:
            raise TwnError(f"{label}: per-channel sign thresholds are not supported; accepted: scalars")
        t_v, hi_v, lo_v = float(t.reshape(-1)[0]), float(hi.reshape(-1)[0]), float(lo.reshape(-1)[0])
        if hi_v == -lo_v and hi_v > 0:
            codes, step = (-1, 1), hi_v
        elif lo_v == 0 and hi_v > 0:
            codes, step = (0, 1), hi_v
        else:
            raise TwnError(f"{label}: Where values ({hi_v}, {lo_v}); accepted: (a, -a) or (a, 0) with a > 0")
        return Quantizer(
            "binary", step=step, code_lo=codes[0], code_hi=codes[1], threshold=t_v,
            strict=greater.op_type == "Greater", source=greater.name,
        )  # fmt: skip

    def _quantizer(self, q: Quantizer, label: str, nodename: str) -> None:
        """An activation quantiser: the open layer's output codes, or the network's input codes."""
        layer = self.open
        if layer is None:
            if self.layers or self.input_quantizer is not None:
                raise TwnError(
                    f"{label}: an activation quantiser is accepted after a Gemm/MatMul/Conv (with its affine "
                    "ops and ReLU) or on the network input"
                )
            per_channel = q.thresholds is not None and q.thresholds.shape[0] > 1
            if per_channel and self.current_shape != self.input_shape:
                raise TwnError(f"{label}: a per-channel input quantiser after a reshape is not supported")
            self.input_quantizer = q
            return
        if layer.quantizer is not None:
            raise TwnError(f"{label}: the layer's output is already quantised by {layer.quantizer.source!r}")
        if layer.clip is not None:
            q = Quantizer(**{**q.__dict__, "clip": layer.clip})
        layer.quantizer = q
        layer.source_nodes.append(nodename)

    def _clip_bounds(self, node: onnx.NodeProto, label: str, attrs: dict[str, Any]) -> tuple[float, float]:
        if self.opset < 11:
            lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
        else:
            bounds = []
            for k, default in ((1, -np.inf), (2, np.inf)):
                name = node.input[k] if len(node.input) > k else ""
                if name and name not in self.consts:
                    raise TwnError(f"{label}: Clip bounds must be constants")
                bounds.append(float(np.asarray(self.consts[name]).reshape(-1)[0]) if name else default)
            lo, hi = bounds
        if lo > hi:
            raise TwnError(f"{label}: Clip({lo}, {hi}) is empty")
        return float(lo), float(hi)

    def _pool(
        self, node: onnx.NodeProto, label: str, attrs: dict[str, Any], shape: tuple[int, ...], nodename: str
    ) -> tuple[int, ...]:
        if len(shape) < 2:
            raise TwnError(f"{label}: pooling needs a [channels, length(s)] input, not {list(shape)}")
        kernel = tuple(int(v) for v in attrs["kernel_shape"])
        if len(kernel) != len(shape) - 1:
            raise TwnError(f"{label}: kernel {list(kernel)} does not fit input {list(shape)}")
        stride, pads = _window_attrs(attrs, shape[1:], kernel, label, pool=True)
        if any(p >= k for p, k in zip(pads, kernel * 2, strict=True)):
            raise TwnError(f"{label}: padding as large as the kernel is not supported")
        pool = _Pool(nodename, shape, kernel, stride, pads, np.ones(shape[0]), nodename)
        if self.open is not None:
            self.open.pools.append(pool)
        else:
            self._emit_pool(pool)
        probe = PoolLayer(nodename, "MaxPool", shape, kernel, stride, pads, (False,) * shape[0], ())
        if any(d <= 0 for d in probe.out_shape):
            raise TwnError(f"{label}: the output would be empty ({list(probe.out_shape)})")
        return probe.out_shape

    def _emit_pool(self, pool: _Pool) -> None:
        self.layers.append(
            PoolLayer(
                name=pool.name,
                op="MaxPool",
                in_shape=pool.in_shape,
                kernel=pool.kernel,
                stride=pool.stride,
                pads=pool.pads,
                minimum=tuple(bool(s < 0) for s in pool.sign),
                source_nodes=(pool.source,),
            )
        )

    def _reshape(
        self, node: onnx.NodeProto, label: str, attrs: dict[str, Any], shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        op = node.op_type
        total = int(np.prod(shape))
        full = (BATCH, *shape)
        if op == "Flatten":
            axis = int(attrs.get("axis", 1))
            if axis != 1:
                raise TwnError(f"{label}: Flatten axis={axis}; accepted: axis=1 (keep the batch)")
            return (total,)
        if op in ("Squeeze", "Unsqueeze"):
            axes = attrs.get("axes")
            if axes is None and len(node.input) > 1:
                axes = [int(v) for v in np.asarray(self.consts[node.input[1]]).reshape(-1)]
            if axes is None:
                if op == "Unsqueeze":
                    raise TwnError(f"{label}: Unsqueeze without axes")
                return tuple(d for d in shape if d != 1) or (1,)
            rank = len(full) + (len(axes) if op == "Unsqueeze" else 0)
            axes = sorted(a + rank if a < 0 else a for a in axes)
            if 0 in axes:
                raise TwnError(f"{label}: {op} of the batch axis is not supported")
            dims = list(full)
            if op == "Squeeze":
                if any(dims[a] != 1 for a in axes):
                    raise TwnError(f"{label}: squeezes an axis that is not 1")
                dims = [d for i, d in enumerate(dims) if i not in axes]
            else:
                for a in axes:
                    dims.insert(a, 1)
            return tuple(int(d) for d in dims[1:])
        # Reshape
        if len(node.input) < 2 or node.input[1] not in self.consts:
            raise TwnError(f"{label}: the target shape is not a constant (or a foldable shape computation)")
        target = list(np.asarray(self.consts[node.input[1]], dtype=object).reshape(-1))
        if not target:
            raise TwnError(f"{label}: empty target shape")
        first = target[0]
        if not (first is BATCH or first in (0, -1, 1)):
            raise TwnError(
                f"{label}: target shape {target} does not keep the batch dimension first; "
                "accepted: [batch, ...] (batch as 0, -1, 1 or the input's batch size)"
            )
        rest = [shape[i - 1] if (t == 0 and i - 1 < len(shape)) else t for i, t in enumerate(target) if i > 0]
        if any(t is BATCH for t in rest):
            raise TwnError(f"{label}: the batch dimension may only be the first")
        rest = [int(t) for t in rest]
        if first == -1 and -1 in rest:
            raise TwnError(f"{label}: two inferred dimensions")
        if -1 in rest:
            known = int(np.prod([t for t in rest if t != -1]))
            if known == 0 or total % known:
                raise TwnError(f"{label}: cannot reshape {list(shape)} to {target}")
            rest[rest.index(-1)] = total // known
        if int(np.prod(rest)) != total or any(t <= 0 for t in rest):
            raise TwnError(f"{label}: cannot reshape {list(shape)} to {target} keeping the batch")
        return tuple(rest)

    def _permuted_columns(
        self, perm: tuple[tuple[int, ...], tuple[int, ...]], shape: tuple[int, ...]
    ) -> tuple[tuple[int, ...], np.ndarray]:
        """Columns of a dense layer that reads a transposed-then-flattened tensor."""
        base, p = perm
        index = np.arange(int(np.prod(base))).reshape(base).transpose(p).reshape(-1)
        # Dense column j reads element index[j] of the untransposed tensor; reorder
        # so that column i of the new matrix reads element i.
        cols = np.empty_like(index)
        cols[index] = np.arange(len(index))
        return (int(np.prod(base)),), cols

    def _output_op(
        self, node: onnx.NodeProto, label: str, attrs: dict[str, Any], shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        op = node.op_type
        if len(shape) != 1:
            raise TwnError(f"{label}: a final {op} needs a flat [batch, classes] input, not {list(shape)}")
        axis = int(attrs.get("axis", -1 if op in ("Softmax", "LogSoftmax", "TopK") else 0))
        if axis not in (1, -1):
            raise TwnError(f"{label}: axis={axis}; accepted: the class axis (1 or -1)")
        if op == "TopK":
            k = np.asarray(self.consts.get(node.input[1], attrs.get("k", 0))).reshape(-1)
            if len(k) != 1 or int(k[0]) != 1 or self.graph.output[0].name != node.output[1]:
                raise TwnError(f"{label}: only TopK with k=1 whose indices are the graph output is supported")
        self._close()
        self.output_op = _OUTPUT_OPS[op]
        return (1,) if op in ("ArgMax", "TopK") else shape

    def _close(self) -> None:
        layer = self.open
        if layer is None:
            return
        self.open = None
        self.layers.append(layer)  # factored once the last linear layer is known
        for pool in layer.pools:
            self._emit_pool(pool)

    def _factor(self, layer: _Open, first: bool, last: bool, round_to: int | None) -> LinearLayer:
        where = f"node {layer.source_nodes[0]!r} ({layer.op})"
        if layer.clip is not None and layer.quantizer is None:
            raise TwnError(
                f"{where}: a Clip({layer.clip[0]}, {layer.clip[1]}) without an activation quantiser after it is "
                "not supported; accepted: Clip(0, none) as a ReLU, or Clip before Quant/QuantizeLinear"
            )
        rounding = None
        if round_to is not None:
            fw, rounding = round_weights(layer.weights, where, round_to)
        else:
            # The first and last layers of trained ternary networks are commonly kept wider.
            limits = [(self.max_weight_bits, "--max-weight-bits")]
            if first or last:  # a one-layer network is both: the wider limit
                limits = [(self.max_first_weight_bits, "--max-first-weight-bits")] if first else []
                if last:
                    limits.append((self.max_final_weight_bits, "--max-final-weight-bits"))
            max_bits, option = max(limits)
            hint = (
                f"; or round them with --quantize-weights {layer.source_nodes[0]}=BITS "
                "(BITS signed bits, 2..16, one scale per output channel)"
            )
            fw = factor_weights(layer.weights, where, max_bits, option, hint)
        return LinearLayer(
            name=layer.name,
            op=layer.op,
            weights=fw.integers,
            scale=fw.scale * layer.scale,
            bias=layer.bias,
            relu=layer.relu,
            weight_kind=fw.kind,
            source_nodes=tuple(layer.source_nodes),
            in_shape=layer.in_shape,
            kernel=layer.kernel,
            stride=layer.stride,
            pads=layer.pads,
            quantizer=layer.quantizer,
            weight_rounding=rounding,
        )


def _rounding_bits(requested: dict[str, int], linear: list[_Open]) -> dict[int, int]:
    """``--quantize-weights`` by position in ``linear``: a node name (the layer's linear node),
    ``first`` or ``last``; unknown names are refused, naming the layers there are."""
    out: dict[int, int] = {}
    for key, bits in requested.items():
        if key == "first":
            k = 0
        elif key == "last":
            k = len(linear) - 1
        else:
            found = [k for k, layer in enumerate(linear) if key in (layer.source_nodes[0], layer.name)]
            if not found:
                names = ", ".join(repr(layer.source_nodes[0]) for layer in linear[:8])
                more = ", ..." if len(linear) > 8 else ""
                raise TwnError(
                    f"--quantize-weights {key}={bits}: no Gemm/MatMul/Conv node named {key!r}; "
                    f"accepted: first, last or one of {names}{more}"
                )
            k = found[0]
        if not 2 <= bits <= 16:
            raise TwnError(f"--quantize-weights {key}={bits}: BITS must be between 2 and 16")
        if k in out and out[k] != bits:
            raise TwnError(f"--quantize-weights names layer {linear[k].source_nodes[0]!r} twice with different bits")
        out[k] = bits
    return out


#: Widest signed integer weights accepted by default: hidden layers may be
#: ternary, binary or up to 4-bit; the first and the last linear layer, which
#: trained networks commonly keep at higher precision (the published
#: classifiers' last layer is 9-bit), up to 16-bit.
MAX_WEIGHT_BITS, MAX_FIRST_WEIGHT_BITS, MAX_FINAL_WEIGHT_BITS = 4, 16, 16


def load_onnx(
    path: str | Path,
    max_weight_bits: int = MAX_WEIGHT_BITS,
    max_final_weight_bits: int = MAX_FINAL_WEIGHT_BITS,
    max_first_weight_bits: int = MAX_FIRST_WEIGHT_BITS,
    quantize_weights: dict[str, int] | None = None,
) -> Network:
    """Parse a plain-ONNX ternary/binary network into a :class:`Network` (not yet quantised).

    ``quantize_weights`` maps a linear layer (its ONNX node name, ``first`` or
    ``last``) to the signed bits its float weights are rounded to
    (:func:`hwgen.frontend.weights.round_weights`) instead of factored exactly.
    """
    for what, bits in (
        ("--max-weight-bits", max_weight_bits),
        ("--max-final-weight-bits", max_final_weight_bits),
        ("--max-first-weight-bits", max_first_weight_bits),
    ):
        if not 2 <= bits <= 16:
            raise TwnError(f"{what} must be between 2 and 16, not {bits}")
    return _Reader(
        Path(path), max_weight_bits, max_final_weight_bits, max_first_weight_bits, dict(quantize_weights or {})
    ).read()
