#!/usr/bin/env python3
"""Write a small ternary (or binary) MLP as plain ONNX, the way exporters do.

Weights are sign patterns times a per-output-channel (or per-tensor) magnitude
with trained-like sparsity; hidden layers end in Relu. The bundled
``mlp_ternary.onnx`` was made with the defaults:

    python examples/make_ternary_mlp.py examples/mlp_ternary.onnx
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_mlp(
    sizes: list[int],
    seed: int = 0,
    zeros: float = 0.5,
    binary: bool = False,
    per_channel: bool = True,
    style: str = "gemm",
    opset: int = 13,
) -> onnx.ModelProto:
    """An MLP sizes[0] -> ... -> sizes[-1] with ternary/binary weights.

    ``style`` is ``gemm`` (Gemm, transB=1 like PyTorch), ``gemm-t0`` (Gemm,
    transB=0 like Keras) or ``matmul`` (MatMul + Add).
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "input"
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        signs = rng.choice([-1.0, 1.0], size=(n_out, n_in))
        if not binary:
            signs[rng.random((n_out, n_in)) < zeros] = 0.0
        # Magnitudes like a trained layer's: about 1/sqrt(fan-in).
        if per_channel:
            mag = rng.uniform(0.5, 1.5, size=(n_out, 1)) / np.sqrt(n_in * (1 - (0 if binary else zeros)))
        else:
            mag = np.full((n_out, 1), 1.0 / np.sqrt(n_in))
        w = (signs * mag).astype(np.float32)  # [out, in]
        b = rng.normal(0, 0.1, size=n_out).astype(np.float32)
        y = f"fc{k}_out"
        if style == "matmul":
            inits.append(numpy_helper.from_array(w.T.copy(), f"fc{k}.weight"))
            inits.append(numpy_helper.from_array(b, f"fc{k}.bias"))
            nodes.append(helper.make_node("MatMul", [x, f"fc{k}.weight"], [f"fc{k}_mm"], name=f"fc{k}/MatMul"))
            nodes.append(helper.make_node("Add", [f"fc{k}_mm", f"fc{k}.bias"], [y], name=f"fc{k}/Add"))
        else:
            trans_b = 1 if style == "gemm" else 0
            inits.append(numpy_helper.from_array(w if trans_b else w.T.copy(), f"fc{k}.weight"))
            inits.append(numpy_helper.from_array(b, f"fc{k}.bias"))
            nodes.append(
                helper.make_node("Gemm", [x, f"fc{k}.weight", f"fc{k}.bias"], [y], name=f"fc{k}/Gemm", transB=trans_b)
            )
        x = y
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"relu{k}_out"], name=f"relu{k}"))
            x = f"relu{k}_out"
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes,
        "ternary_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="twngen-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--sizes", default="64,32,16,10", help="layer widths, input first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zeros", type=float, default=0.5, help="fraction of zero weights")
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--style", choices=["gemm", "gemm-t0", "matmul"], default="gemm")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    model = make_mlp(sizes, args.seed, args.zeros, args.binary, not args.per_tensor, args.style)
    onnx.save(model, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
