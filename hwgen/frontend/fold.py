"""Constant folding of shape computations (Shape -> Gather -> Concat -> Reshape).

Exporters compute reshape targets at run time from the input's shape, e.g.
PyTorch's ``x.view(x.size(0), -1)``. The feature dimensions are static, the
batch dimension is not: it is carried through the folding as the sentinel
:data:`BATCH`, which a Reshape then reads as "keep the batch".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hwgen.errors import TwnError
from hwgen.frontend import quant_ops
from hwgen.frontend.nodes import node_attrs, node_label
from hwgen.frontend.quant_ops import QONNX_DOMAINS

__all__ = ["BATCH", "fold_constants"]


class _Batch:
    def __repr__(self) -> str:
        return "batch"


#: Stands for the dynamic batch dimension inside folded shape tensors.
BATCH: Any = _Batch()

_FOLDABLE = {
    "Constant", "Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Cast", "Slice", "Identity",
    "Reshape", "Mul", "Add", "Sub", "Div", "ConstantOfShape", "Range", "ReduceProd", "Transpose", "Pow",
    "Neg", "Sqrt", "Reciprocal", "QuantizeLinear", "DequantizeLinear", "Quant", "BipolarQuant",
}  # fmt: skip
_DOMAINS = ("", "ai.onnx", *QONNX_DOMAINS)


def _has_batch(a: np.ndarray) -> bool:
    return a.dtype == object and any(v is BATCH for v in a.reshape(-1))


def _evaluate(node: onnx.NodeProto, args: list[np.ndarray | None], opset: int) -> np.ndarray:
    op = node.op_type
    at = node_attrs(node)
    x = args[0] if args else None
    if op == "Constant":
        if "value" in at:
            return numpy_helper.to_array(at["value"])
        for key in ("value_float", "value_int"):
            if key in at:
                return np.array(at[key])
        for key in ("value_floats", "value_ints"):
            if key in at:
                return np.array(list(at[key]))
        raise ValueError("unsupported Constant form")
    assert x is not None
    if op in ("Identity", "Cast"):
        if op == "Cast" and _has_batch(x):
            return x
        if op == "Cast":
            dtype = onnx.helper.tensor_dtype_to_np_dtype(at["to"])
            return x.astype(dtype)
        return x
    if op == "Gather":
        idx = np.asarray(args[1]).astype(np.int64)
        return np.take(x, idx, axis=int(at.get("axis", 0)))
    if op == "Concat":
        parts = [np.asarray(a) for a in args]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(object) for p in parts]
        return np.concatenate(parts, axis=int(at.get("axis", 0)))
    if op in ("Unsqueeze", "Squeeze"):
        axes = at.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = [int(v) for v in np.asarray(args[1]).reshape(-1)]
        if op == "Unsqueeze":
            if axes is None:
                raise ValueError("Unsqueeze without axes")
            out = x
            for a in sorted(int(v) + (x.ndim + len(axes) if int(v) < 0 else 0) for v in axes):
                out = np.expand_dims(out, a)
            return out
        return np.squeeze(x, axis=tuple(axes) if axes is not None else None)
    if op == "Slice":
        if opset < 10:
            starts, ends, axes = at["starts"], at["ends"], at.get("axes")
            steps = None
        else:
            starts, ends = list(np.asarray(args[1]).reshape(-1)), list(np.asarray(args[2]).reshape(-1))
            axes = list(np.asarray(args[3]).reshape(-1)) if len(args) > 3 and args[3] is not None else None
            steps = list(np.asarray(args[4]).reshape(-1)) if len(args) > 4 and args[4] is not None else None
        axes = axes if axes is not None else list(range(len(starts)))
        sl = [slice(None)] * x.ndim
        for i, a in enumerate(axes):
            sl[int(a)] = slice(int(starts[i]), int(ends[i]), int(steps[i]) if steps else 1)
        return x[tuple(sl)]
    if op == "Reshape":
        return x.reshape([int(v) for v in np.asarray(args[1]).reshape(-1)])
    if op in ("Mul", "Add", "Sub", "Div"):
        if _has_batch(x) or _has_batch(np.asarray(args[1])):
            raise ValueError("arithmetic on the batch dimension")
        y = np.asarray(args[1])
        if op == "Div":
            return (x // y) if np.issubdtype(x.dtype, np.integer) else x / y
        return {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract}[op](x, y)
    if op == "Transpose":
        perm = at.get("perm")
        return np.transpose(x, perm if perm is None else list(perm))
    if op in ("Pow", "Neg", "Sqrt", "Reciprocal"):
        if _has_batch(x):
            raise ValueError("arithmetic on the batch dimension")
        xf = np.asarray(x)
        if op == "Pow":
            return np.power(xf, np.asarray(args[1]))
        return {"Neg": np.negative, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal}[op](xf)
    if op == "ReduceProd":
        if _has_batch(x):
            raise ValueError("product over the batch dimension")
        return np.prod(x, keepdims=bool(at.get("keepdims", 1)))
    if op == "ConstantOfShape":
        value = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, dtype=np.float32)
        return np.full([int(v) for v in x.reshape(-1)], value.reshape(-1)[0], dtype=value.dtype)
    if op == "Range":
        return np.arange(np.asarray(args[0]).item(), np.asarray(args[1]).item(), np.asarray(args[2]).item())
    raise ValueError(f"cannot fold {op}")


#: Largest constant (initializer or folded tensor) accepted, in elements: far
#: above any layer that fits an FPGA, far below what would exhaust memory.
MAX_TENSOR_ELEMENTS = 1 << 27


def _elements(shape: Any) -> int:
    return int(np.prod([int(d) for d in shape], dtype=object)) if len(shape) else 1


def _folded_elements(node: onnx.NodeProto, args: list[np.ndarray | None]) -> int:
    """How many elements folding ``node`` would allocate, computed without allocating them."""
    op = node.op_type
    given = [np.asarray(a) for a in args if a is not None]
    if op == "ConstantOfShape" and given:
        dims = [int(v) for v in given[0].reshape(-1)]
        if any(d < 0 for d in dims):
            raise ValueError(f"negative dimension in {dims}")
        return _elements(dims)
    if op == "Range" and len(given) == 3:
        start, limit, delta = (float(np.asarray(a).reshape(-1)[0]) for a in given)
        if delta == 0 or not all(np.isfinite([start, limit, delta])):
            raise ValueError("Range with a zero or non-finite step")
        return max(0, int(np.ceil((limit - start) / delta)))
    if op == "Gather" and len(given) == 2:
        return _elements(given[0].shape) * max(1, given[1].size)
    if op in ("Mul", "Add", "Sub", "Div", "Pow", "Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"):
        return _elements(np.broadcast_shapes(*(a.shape for a in given)))
    return max((a.size for a in given), default=1)


def fold_constants(
    graph: onnx.GraphProto,
    consts: dict[str, np.ndarray],
    value_shapes: dict[str, list[int | str]],
    input_name: str,
    input_shape: tuple[int, ...],
    opset: int,
) -> set[int]:
    """Evaluate every node whose inputs are constants (or a Shape of a known shape).

    Adds the results to ``consts`` and returns the indices of folded nodes.
    """
    folded: set[int] = set()
    for i, node in enumerate(graph.node):
        op = node.op_type
        if op not in _FOLDABLE or node.domain not in _DOMAINS:
            continue
        if (op in ("Quant", "BipolarQuant")) != (node.domain in QONNX_DOMAINS):
            continue
        if op == "Shape":
            name = node.input[0]
            if name == input_name:
                dims: list[Any] = [BATCH, *input_shape]
            elif name in consts:
                dims = list(np.asarray(consts[name]).shape)
            else:
                known = value_shapes.get(name)
                if not known or not all(isinstance(d, int) for d in known[1:]):
                    continue
                dims = [BATCH, *known[1:]]
            value = np.array(dims, dtype=object)
            at = node_attrs(node)
            start, end = at.get("start"), at.get("end")
            if start is not None or end is not None:
                value = value[slice(start, end)]
            consts[node.output[0]] = value
            folded.add(i)
            continue
        args = [consts.get(n) if n else None for n in node.input]
        if any(n and n not in consts for n in node.input):
            continue
        try:
            size = _folded_elements(node, args)
        except (ValueError, TypeError, OverflowError) as exc:
            raise TwnError(f"{node_label(node, i)}: cannot fold the shape computation ({exc})") from None
        if size > MAX_TENSOR_ELEMENTS:
            raise TwnError(
                f"{node_label(node, i)}: folding it would make a constant of {size:,} elements; "
                f"twngen accepts constants of at most {MAX_TENSOR_ELEMENTS:,} elements"
            )
        try:
            if op == "Quant":
                consts[node.output[0]] = quant_ops.quant(node, args[0], consts)  # type: ignore[arg-type]
            elif op == "BipolarQuant":
                consts[node.output[0]] = quant_ops.bipolar_quant(node, args[0], consts)  # type: ignore[arg-type]
            elif op == "QuantizeLinear":
                consts[node.output[0]] = quant_ops.quantize_linear(node, args[0], consts)  # type: ignore[arg-type]
            elif op == "DequantizeLinear":
                consts[node.output[0]] = quant_ops.dequantize_linear(node, args[0], consts)  # type: ignore[arg-type]
            else:
                consts[node.output[0]] = _evaluate(node, args, opset)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TwnError(f"{node_label(node, i)}: cannot fold the shape computation ({exc})") from None
        folded.add(i)
    return folded
