#!/usr/bin/env python3
"""Write ternary convolutional networks as plain ONNX, shaped like real exports.

``vgg1d`` is the modulation classifier family of the published work: input
[1, 2, L] I/Q samples; N x (Conv1d k=3 'same' without bias, ternary ->
MaxPool 2 -> BatchNormalization -> ReLU); flatten; ternary dense layers with
BatchNormalization and ReLU; a final dense layer with weights at 1/64
resolution (``final_peak``: magnitudes up to that value, 3.375 in the
published checkpoints, i.e. 9-bit integers) and, optionally
(``first_bits``), a first convolution of ``first_bits``-bit integers times
a per-channel scale, as trained ternary networks often keep their first
layer. Weights are random at trained-like sparsity. The flatten is the
PyTorch ``x.view(x.size(0), -1)`` chain (Shape -> Gather -> Unsqueeze ->
Concat -> Reshape), which twngen constant-folds.

    python examples/make_conv_net.py vgg1d.onnx --channels 64 --length 1024 --convs 7
    python examples/make_conv_net.py tw64.onnx --final-peak 3.375 --first-bits 8   # like the real checkpoint
    python examples/make_conv_net.py incra128.onnx --channels 128 --act-bits 1,2,4,8,16,16,1  # TW-INCRA-128
    python examples/make_conv_net.py cifar.onnx --preset cifar10-vgg   # 32x32x3, convs 64..256, dense 512, 512, 10

``--preset cifar10-vgg`` (:func:`cifar10_vgg`) is a CIFAR-10-shaped ternary VGG;
``--channels`` scales its widths (16: 16, 16, 32, 32, 64, 64) and ``--dense`` sets its
hidden dense layers.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The QONNX operator domain (Brevitas exports its ``Quant`` nodes there).
QONNX = "qonnx.custom_op.general"


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value: np.ndarray, base: str) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"/{out}/{op}", **attrs))
        return out

    def ternary(self, shape: tuple[int, ...], zeros: float) -> np.ndarray:
        signs = self.rng.choice([-1.0, 1.0], size=shape)
        signs[self.rng.random(shape) < zeros] = 0.0
        fan_in = int(np.prod(shape[1:]))
        mag = self.rng.uniform(0.5, 1.5, size=(shape[0],) + (1,) * (len(shape) - 1)) / np.sqrt(fan_in * (1 - zeros))
        return (signs * mag).astype(np.float32)

    def integers(self, shape: tuple[int, ...], bits: int, zeros: float) -> np.ndarray:
        """``bits``-bit signed integers times a float32 scale per output channel, as a quantised
        exporter writes them (float32(integer * scale), exact)."""
        qmax = (1 << (bits - 1)) - 1
        ints = np.clip(np.round(self.rng.normal(0, qmax / 2.5, size=shape)), -qmax, qmax)
        ints[self.rng.random(shape) < zeros] = 0.0
        fan_in = int(np.prod(shape[1:]))
        std = self.rng.uniform(0.5, 1.5, size=(shape[0],) + (1,) * (len(shape) - 1)) / np.sqrt(fan_in)
        scale = (std / (qmax / 2.5)).astype(np.float32).astype(np.float64)
        return (ints * scale).astype(np.float32)

    def batchnorm(self, x: str, channels: int) -> str:
        gamma = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        beta = self.rng.normal(0, 0.2, channels).astype(np.float32)
        mean = self.rng.normal(0, 0.3, channels).astype(np.float32)
        var = self.rng.uniform(0.5, 2.0, channels).astype(np.float32)
        args = [x] + [
            self.const(v, p) for v, p in ((gamma, "bn_w"), (beta, "bn_b"), (mean, "bn_mean"), (var, "bn_var"))
        ]
        return self.node("BatchNormalization", args, epsilon=1e-5)

    def flatten_view(self, x: str) -> str:
        """PyTorch's x.view(x.size(0), -1)."""
        shape = self.node("Shape", [x])
        batch = self.node("Gather", [shape, self.const(np.array(0, dtype=np.int64), "zero")], axis=0)
        batch1 = self.node("Unsqueeze", [batch, self.const(np.array([0], dtype=np.int64), "axes")])
        target = self.node("Concat", [batch1, self.const(np.array([-1], dtype=np.int64), "minus1")], axis=0)
        return self.node("Reshape", [x, target])

    def quant(self, x: str, bits: int, peak: float) -> str:
        """A QONNX ``Quant`` of ``x`` to unsigned ``bits``-bit codes covering [0, peak]."""
        args = [
            self.const(np.float32(peak / ((1 << bits) - 1)), "act_scale"),
            self.const(np.float32(0.0), "act_zero"),
            self.const(np.float32(bits), "act_bits"),
        ]
        out = self.name("quant")
        self.nodes.append(
            helper.make_node(
                "Quant", [x, *args], [out], name=f"/{out}/Quant", domain=QONNX, signed=0, narrow=0,
                rounding_mode="ROUND",
            )
        )  # fmt: skip
        return out

    def model(
        self, x_shape: list[object], out: str, out_dim: int, opset: int = 13, domains: tuple[str, ...] = ()
    ) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "logits"
        graph = helper.make_graph(
            self.nodes,
            "twn_conv",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", out_dim])],
            self.inits,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains],
            producer_name="twngen-examples",
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def vgg1d(
    channels: int = 64,
    length: int = 1024,
    convs: int = 7,
    dense: tuple[int, ...] = (512, 512),
    classes: int = 24,
    seed: int = 0,
    conv_zeros: float = 0.7,
    dense_zeros: float = 0.46,
    final_step: float = 1 / 64,
    final_peak: float | None = None,
    first_bits: int | None = None,
    act_bits: tuple[int, ...] | None = None,
) -> onnx.ModelProto:
    """The modulation classifier's shape (see the module docstring).

    ``final_peak``: the final layer's largest magnitude (a multiple of
    ``final_step``; None: integers within +-127 steps, about +-1 at 1/64).
    ``first_bits``: the first convolution as integers of that many signed bits
    (None: ternary like the rest).
    ``act_bits``: one width per convolution, its ReLU output quantised by a
    QONNX ``Quant`` node (unsigned, round half to even) of that many bits, as
    Brevitas exports a network trained with those activation precisions
    (the published incremental design: 1, 2, 4, 8, 16, 16, 1).
    """
    b = _Builder(seed)
    if act_bits is not None and len(act_bits) != convs:
        raise ValueError(f"act_bits needs one width per convolution ({convs}), not {len(act_bits)}")
    x, c_in, size = "input", 2, length
    for k in range(convs):
        # The first layer sees only 2 input channels: keep it dense-ish.
        if k == 0 and first_bits is not None:
            w = b.integers((channels, c_in, 3), first_bits, 0.1)
        else:
            w = b.ternary((channels, c_in, 3), 0.3 if k == 0 else conv_zeros)
        x = b.node("Conv", [x, b.const(w, "conv_w")], kernel_shape=[3], pads=[1, 1], strides=[1])
        x = b.node("MaxPool", [x], kernel_shape=[2], strides=[2])
        x = b.batchnorm(x, channels)
        x = b.node("Relu", [x])
        if act_bits is not None:
            x = b.quant(x, act_bits[k], peak=2.5)
        c_in, size = channels, size // 2
    x = b.flatten_view(x)
    features = c_in * size
    for width in dense:
        w = b.ternary((width, features), dense_zeros)
        x = b.node("Gemm", [x, b.const(w, "fc_w")], transB=1)
        x = b.batchnorm(x, width)
        x = b.node("Relu", [x])
        features = width
    z = b.rng.normal(0, 0.25, size=(classes, features))
    if final_peak is None:
        w = np.clip(np.round(z / final_step), -127, 127) * final_step
    else:
        peak = round(final_peak / final_step)
        ints = np.clip(np.round(z / 0.25 * peak / 4), -peak, peak)
        top = np.unravel_index(np.argmax(np.abs(ints)), ints.shape)
        ints[top] = peak if ints[top] >= 0 else -peak  # the peak is reached, as in the checkpoint
        w = ints * final_step
    bias = b.rng.normal(0, 0.1, classes).astype(np.float32)
    b.node("Gemm", [x, b.const(w.astype(np.float32), "out_w"), b.const(bias, "out_b")], transB=1)
    return b.model(["batch", 2, length], "logits", classes, domains=(QONNX,) if act_bits is not None else ())


def stack(
    spec: str,
    in_shape: tuple[int, ...],
    seed: int = 0,
    zeros: float = 0.6,
    negative_bn: bool = False,
    first_zeros: float | None = None,
) -> onnx.ModelProto:
    """Any chain of the supported layers, from a compact spec (comma-separated).

    ``c8k3p1`` Conv with 8 filters, kernel 3 (3x3 for a 2-D input), pads 1 on
    every side (``p1.2`` for begin 1, end 2; ``s2`` for stride 2), ternary,
    followed by batch norm and ReLU (``C8k3p1``: the bare convolution, as
    in the classifier where pooling comes first); ``b`` batch norm and ReLU;
    ``m2`` MaxPool kernel 2 stride 2
    (``m3s2`` kernel 3 stride 2, ``m3s2p1`` with padding 1); ``d16`` flatten (first time) then ternary
    Gemm with 16 outputs, batch norm and ReLU; ``o5`` a final Gemm with 5
    outputs at 1/64 weight resolution. ``in_shape`` is [channels, *spatial].
    ``negative_bn`` flips half the batch-norm scales (max pooling before
    them becomes min pooling). ``zeros`` is the ternary layers' fraction of
    zero weights; ``first_zeros`` the first convolution's, when it differs
    (a trained first layer, which sees few input channels, is denser).
    """
    b = _Builder(seed)
    x, shape = "input", list(in_shape)
    nd = len(in_shape) - 1
    flat = False
    out_dim = 0
    for item in spec.split(","):
        kind, rest = item[0], item[1:]
        if kind == "b":
            x = b.node("Relu", [_bn(b, x, shape[0], negative_bn)])
        elif kind in "cC":
            filters, rest = rest.split("k")
            fields = {"k": 3, "p": "0", "s": 1}
            key = None
            buf = ""
            for ch in rest:
                if ch in "ps":
                    if key is None:
                        fields["k"] = int(buf)
                    else:
                        fields[key] = buf
                    key, buf = ch, ""
                else:
                    buf += ch
            if key is None:
                fields["k"] = int(buf)
            else:
                fields[key] = buf
            k, stride = int(fields["k"]), int(fields["s"])
            pads = [int(v) for v in str(fields["p"]).split(".")]
            begin, end = pads[0], pads[-1]
            first = first_zeros is not None and not any(n.op_type == "Conv" for n in b.nodes)
            w = b.ternary((int(filters), shape[0], *([k] * nd)), first_zeros if first else zeros)
            x = b.node(
                "Conv",
                [x, b.const(w, "conv_w")],
                kernel_shape=[k] * nd,
                pads=[begin] * nd + [end] * nd,
                strides=[stride] * nd,
            )
            shape = [int(filters)] + [(n + begin + end - k) // stride + 1 for n in shape[1:]]
            if kind == "c":
                x = b.node("Relu", [_bn(b, x, shape[0], negative_bn)])
        elif kind == "m":
            rest, _, pad = rest.partition("p")
            k, _, st = rest.partition("s")
            k_i, st_i, p_i = int(k), int(st or k), int(pad or 0)
            pads = {"pads": [p_i] * (2 * nd)} if p_i else {}
            x = b.node("MaxPool", [x], kernel_shape=[k_i] * nd, strides=[st_i] * nd, **pads)
            shape = [shape[0]] + [(n + 2 * p_i - k_i) // st_i + 1 for n in shape[1:]]
        elif kind in "do":
            if not flat:
                x = b.flatten_view(x)
                shape, flat = [int(np.prod(shape))], True
            n = int(rest)
            if kind == "d":
                x = b.node("Gemm", [x, b.const(b.ternary((n, shape[0]), zeros), "fc_w")], transB=1)
                x = _bn(b, x, n, False)
                x = b.node("Relu", [x])
            else:
                w = np.clip(np.round(b.rng.normal(0, 0.25, size=(n, shape[0])) * 64), -127, 127) / 64
                x = b.node("Gemm", [x, b.const(w.astype(np.float32), "out_w")], transB=1)
            shape = [n]
        else:
            raise ValueError(f"unknown layer {item!r} in {spec!r}")
        out_dim = int(np.prod(shape))
    if not flat:
        x = b.flatten_view(x)
    return b.model(["batch", *in_shape], "logits", out_dim)


def cifar10_vgg_spec(channels: int = 64, dense: tuple[int, ...] = (512, 512), classes: int = 10) -> str:
    """The CIFAR-10 VGG's layer chain for :func:`stack`: six 3x3 'same' convolutions of
    ``channels``, ``channels``, 2x, 2x, 4x, 4x ``channels`` filters with a 2x2 max pool after
    the second, fourth and sixth, then the dense layers and ``classes`` logits."""
    c = (channels, channels, 2 * channels, 2 * channels, 4 * channels, 4 * channels)
    convs = [f"c{n}k3p1" + (",m2" if k % 2 else "") for k, n in enumerate(c)]
    return ",".join([*convs, *(f"d{n}" for n in dense), f"o{classes}"])


def cifar10_vgg(
    channels: int = 64,
    dense: tuple[int, ...] = (512, 512),
    classes: int = 10,
    seed: int = 0,
    zeros: float = 0.75,
    first_zeros: float = 0.3,
    size: int = 32,
) -> onnx.ModelProto:
    """A CIFAR-10-shaped ternary VGG: input [3, size, size] (32x32 RGB), the convolutions of
    :func:`cifar10_vgg_spec` (3 -> 64 -> 64 -> 128 -> 128 -> 256 -> 256), each with batch norm
    and ReLU, flatten (4096 features at 32x32), dense 512 -> 512 with batch norm and ReLU, and
    10 logits at 1/64 weight resolution.

    The channels are those of FINN's CNV (BNN-PYNQ ``cnv``, the usual binarised/ternary CIFAR-10
    network on FPGAs), whose dense head is 512 -> 512 -> 10 as here; CNV's convolutions are
    unpadded, these are 'same' (padding 1), as in the VGG-style networks of the ternary-weight
    papers, so the pools see 32, 16 and 8 pixels a side. Ternary weights at trained-like
    sparsity: ``zeros`` (75%, what trained CIFAR-10 VGG layers show) in every layer but the
    first convolution (27 inputs), which has ``first_zeros``.
    """
    spec = cifar10_vgg_spec(channels, dense, classes)
    return stack(spec, (3, size, size), seed, zeros=zeros, first_zeros=first_zeros)


#: Named networks for ``--preset``.
PRESETS = ("cifar10-vgg",)


def _bn(b: _Builder, x: str, channels: int, negative: bool) -> str:
    out = b.batchnorm(x, channels)
    if negative:
        scale = next(t for t in b.inits if t.name == b.nodes[-1].input[1])
        gamma = numpy_helper.to_array(scale).copy()
        gamma[::2] *= -1
        scale.CopyFrom(numpy_helper.from_array(gamma, scale.name))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--convs", type=int, default=7)
    ap.add_argument("--dense", default="512,512", help="hidden dense widths")
    ap.add_argument("--classes", type=int, default=None, help="outputs (default 24; 10 for --preset cifar10-vgg)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--final-peak",
        type=float,
        default=None,
        help="largest final-layer weight magnitude, at 1/64 steps (the published checkpoints: 3.375, 9 bits)",
    )
    ap.add_argument("--first-bits", type=int, default=None, help="first convolution as integers of this many bits")
    ap.add_argument(
        "--act-bits",
        default=None,
        help="per-convolution activation widths as QONNX Quant nodes, e.g. 1,2,4,8,16,16,1 (the published "
        "incremental precisions); default: float activations",
    )
    ap.add_argument("--spec", help="any layer chain instead of vgg1d (see stack()), e.g. c8k3p1,m2,d16,o5")
    ap.add_argument("--shape", default="2,64", help="input [channels, *spatial] for --spec, e.g. 3,16,16")
    ap.add_argument("--preset", choices=PRESETS, help="a named network instead of vgg1d: cifar10-vgg")
    args = ap.parse_args()
    dense = tuple(int(v) for v in args.dense.split(",") if v)
    if args.preset == "cifar10-vgg":
        classes = 10 if args.classes is None else args.classes
        onnx.save(cifar10_vgg(args.channels, dense, classes, args.seed), args.output)
        print(f"wrote {args.output}: {cifar10_vgg_spec(args.channels, dense, classes)} on 3x32x32")
        return
    if args.spec:
        shape = tuple(int(v) for v in args.shape.split(","))
        onnx.save(stack(args.spec, shape, args.seed), args.output)
        print(f"wrote {args.output}")
        return
    model = vgg1d(
        args.channels,
        args.length,
        args.convs,
        dense,
        24 if args.classes is None else args.classes,
        args.seed,
        final_peak=args.final_peak,
        first_bits=args.first_bits,
        act_bits=tuple(int(v) for v in args.act_bits.split(",")) if args.act_bits else None,
    )
    onnx.save(model, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
