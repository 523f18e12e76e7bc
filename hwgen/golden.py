"""The golden model: exactly what the generated hardware computes, in numpy.

Written from the IR's arithmetic (see :mod:`hwgen.ir.network`), independently
of the gateware, it is the single oracle for the cocotb testbenches, the
Amaranth unit tests and the accuracy check against onnxruntime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hwgen.errors import TwnError
from hwgen.ir import FixedFormat, LinearLayer, Network
from hwgen.ir.widths import wrap_signed

__all__ = [
    "AGREEMENT_FLOOR",
    "AccuracyReport",
    "LayerCache",
    "accuracy_from",
    "apply_output_op",
    "as_batch",
    "compare_with_onnxruntime",
    "dequantize_output",
    "hardware_outputs",
    "output_format",
    "outputs_are_classes",
    "quantize_input",
    "reference_outputs",
    "run",
    "run_integer",
    "run_layers",
]


def _check_ready(network: Network) -> None:
    if network.input_format is None or any(layer.requant is None for layer in network.linear_layers):
        raise ValueError("the golden model needs a quantised network (run the quantise pass)")


def as_batch(network: Network, x: np.ndarray, what: str = "inputs") -> np.ndarray:
    """A user's float array as a batch [batch, *input_shape] (one sample, or flat features, accepted)."""
    x = np.asarray(x, dtype=np.float64)
    shape = tuple(network.input_shape)
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape and x.shape[1:] != (network.in_features,):
        raise TwnError(
            f"{what}: an array of shape {list(x.shape)} does not fit the model's input "
            f"{network.input_name!r}, which takes [batch, {', '.join(str(d) for d in shape)}]"
        )
    if not np.all(np.isfinite(x)):
        raise TwnError(f"{what}: the array contains NaN or infinite values")
    return x.reshape(len(x), *shape)


def quantize_input(network: Network, x: np.ndarray) -> np.ndarray:
    """Float inputs [batch, *input_shape] to integer codes [batch, features]."""
    _check_ready(network)
    return network.quantize_input(as_batch(network, x))


def run_layers(network: Network, q: np.ndarray) -> list[np.ndarray]:
    """Integer codes after every layer ([batch, *out_shape]) for input codes q [batch, features]."""
    _check_ready(network)
    q = network.fold_input(np.asarray(q, dtype=np.int64))
    outs = []
    for layer in network.layers:
        q = layer.integer_forward(q)
        outs.append(q)
    return outs


def run_integer(network: Network, q: np.ndarray) -> np.ndarray:
    """Output codes [batch, outputs] (flattened) for input codes [batch, features]."""
    out = network.unfold_output(run_layers(network, q)[-1])
    return out.reshape(len(out), -1)


def hardware_outputs(network: Network, q: np.ndarray) -> np.ndarray:
    """What the generated hardware emits for input codes q: the output codes
    [batch, outputs], or with ``argmax_output`` the index of the largest code
    (the first on ties) [batch, 1]."""
    return _emitted(network, run_integer(network, q))


def word_wraps(network: Network, q: np.ndarray) -> dict[str, object] | None:
    """What the accumulator words (``--words``) do on input codes q [batch, features]: per layer
    with a word width, the samples in which any accumulator wrapped, and the samples whose
    hardware outputs (and, for class scores, top-1 class) differ from the same network with
    exact words. None when no layer wraps.

    One pass through the layers: the exact network's activations are carried only for the
    samples where they have come to differ from the wrapped network's.
    """
    if not network.wrapping_layers:
        return None
    _check_ready(network)
    q = np.asarray(q, dtype=np.int64)
    x = network.fold_input(q)
    apart = np.zeros(0, dtype=np.int64)  # samples whose exact activations differ
    x_exact = x[:0]
    layers = []
    for layer in network.layers:
        if not isinstance(layer, LinearLayer):
            x = layer.integer_forward(x)
            x_exact = layer.integer_forward(x_exact) if len(apart) else x[:0]
        else:
            if layer.wrap_bits:
                acc = layer.accumulate(x)
                word = wrap_signed(acc, layer.wrap_bits)
                wrapped = (acc != word).reshape(len(q), -1).any(axis=1)
                layers.append({"name": layer.name, "word_bits": layer.wrap_bits, "samples_wrapped": int(wrapped.sum())})
                y = layer.requantize(word)
                # Samples that wrap here and agreed so far: their exact outputs, from the same input.
                fresh = np.setdiff1d(np.flatnonzero(wrapped), apart)
                exact_fresh = layer.requantize(acc[fresh])
            else:
                y = layer.integer_forward(x)
                fresh = np.zeros(0, dtype=np.int64)
                exact_fresh = y[:0]
            exact_apart = layer.requantize(layer.accumulate(x_exact)) if len(apart) else y[:0]
            x = y
            order = np.argsort(np.concatenate([apart, fresh]), kind="stable")
            apart = np.concatenate([apart, fresh])[order]
            x_exact = np.concatenate([exact_apart, exact_fresh])[order]
            # Keep only the samples that still differ.
            if len(apart):
                still = (x[apart] != x_exact).reshape(len(apart), -1).any(axis=1)
                apart, x_exact = apart[still], x_exact[still]
    got = _emitted(network, network.unfold_output(x).reshape(len(q), -1))
    ref = got.copy()
    if len(apart):
        ref[apart] = _emitted(network, network.unfold_output(x_exact).reshape(len(apart), -1))
    out: dict[str, object] = {
        "samples": len(q),
        "layers": layers,
        "samples_changed": int((got != ref).any(axis=1).sum()),
    }
    if outputs_are_classes(network):
        changed = got != ref if network.argmax_output else np.argmax(got, axis=1) != np.argmax(ref, axis=1)
        out["samples_top1_changed"] = int(np.asarray(changed).reshape(len(q), -1).any(axis=1).sum())
    return out


def _emitted(network: Network, out: np.ndarray) -> np.ndarray:
    """The last layer's codes [batch, outputs] as the hardware emits them (see :func:`hardware_outputs`)."""
    if network.argmax_output:
        return np.argmax(out, axis=1).reshape(len(out), 1).astype(np.int64)
    return out


def output_format(network: Network) -> FixedFormat:
    rq = network.linear_layers[-1].requant
    assert rq is not None
    return rq.out


def dequantize_output(network: Network, q: np.ndarray) -> np.ndarray:
    """Output codes to floats in the last layer's shape (before the output op)."""
    y = output_format(network).dequantize(q)
    return y.reshape(len(y), -1)


def apply_output_op(network: Network, y: np.ndarray) -> np.ndarray:
    """The graph's final op (softmax, argmax, ...) on float outputs [batch, classes]."""
    op = network.output_op
    if op == "none":
        return y.reshape(len(y), *network.output_shape)
    if op in ("softmax", "logsoftmax"):
        z = y - y.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return np.exp(logp) if op == "softmax" else logp
    return np.argmax(y, axis=1).reshape(len(y), 1)


def run(network: Network, x: np.ndarray) -> np.ndarray:
    """Float in, float out: quantise, run the integer model, dequantise, apply the output op."""
    return apply_output_op(network, dequantize_output(network, run_integer(network, quantize_input(network, x))))


#: Agreement below which a build warns when no accuracy budget is set (top-1 agreement for
#: classes, 1 - relative RMS error otherwise).
AGREEMENT_FLOOR = 0.90


def outputs_are_classes(network: Network) -> bool:
    """Whether the outputs are class scores, judged by top-1 agreement.

    Classes: the graph ends in softmax/logsoftmax/argmax/top-1, the hardware emits
    the argmax, or the output is one vector of two or more values (logits).
    Anything else (a single value, or a map with spatial dimensions) is judged by
    its relative RMS error: ``||golden - reference|| / ||reference||`` over the batch.
    """
    if network.argmax_output or network.output_op != "none":
        return True
    shape = tuple(network.output_shape)
    return len(shape) == 1 and shape[0] > 1


@dataclass(frozen=True)
class AccuracyReport:
    """The golden model against the source model on one batch.

    ``agreement`` is the score the budget applies to: the top-1 agreement when
    the outputs are classes (:func:`outputs_are_classes`), else one minus the
    relative RMS error. ``budget`` (``--accuracy-budget``) is the fraction the
    agreement may fall short of 1; without one, :data:`AGREEMENT_FLOOR` is required.
    """

    samples: int
    max_abs_error: float
    mean_abs_error: float
    output_peak: float
    top1_agreement: float
    batch: str
    reference: str = "onnxruntime"
    relative_rms_error: float = 0.0
    classes: bool = True
    budget: float | None = None

    @property
    def criterion(self) -> str:
        return "top-1 agreement" if self.classes else "1 - relative RMS error"

    @property
    def agreement(self) -> float:
        return self.top1_agreement if self.classes else max(0.0, 1.0 - self.relative_rms_error)

    @property
    def required(self) -> float:
        return AGREEMENT_FLOOR if self.budget is None else 1.0 - self.budget

    @property
    def met(self) -> bool:
        return self.agreement >= self.required - 1e-12

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "max_abs_error": self.max_abs_error,
            "mean_abs_error": self.mean_abs_error,
            "output_peak": self.output_peak,
            "top1_agreement": self.top1_agreement,
            "relative_rms_error": self.relative_rms_error,
            "batch": self.batch,
            "reference": self.reference,
            "criterion": self.criterion,
            "agreement": self.agreement,
            "budget": self.budget,
            "required_agreement": self.required,
            "budget_met": self.met,
        }


def _ort_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception types (not one hierarchy: Fail, InvalidGraph, InvalidArgument, ...)."""
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidGraph", "InvalidArgument", "InvalidProtobuf", "RuntimeException", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def onnxruntime_outputs(
    model: onnx.ModelProto, network: Network, x: np.ndarray, tensor: str | None = None
) -> np.ndarray:
    """onnxruntime on the source model; ``tensor`` exposes an inner tensor as the output."""
    # onnxruntime >= 1.29 on Linux otherwise writes a device id and an event
    # database under ~/.cache/Microsoft and uploads telemetry; a build writes
    # nothing outside OUTDIR and $TWNGEN_CACHE (the variable is read on import).
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # The model's literal semantics: no fusing of QDQ into integer kernels.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if tensor and tensor != network.output_name:
        model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy to edit
        del model.graph.output[:]
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    x = np.asarray(x, dtype=np.float32).reshape(len(x), *network.input_shape)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        # Run one sample at a time when the exporter fixed the batch dimension to 1.
        batch_dim = sess.get_inputs()[0].shape[0]
        if isinstance(batch_dim, int) and batch_dim == 1:
            ys = [sess.run(None, {network.input_name: x[i : i + 1]})[0] for i in range(len(x))]
            return np.concatenate(ys).astype(np.float64)
        return np.asarray(sess.run(None, {network.input_name: x})[0], dtype=np.float64)
    except _ort_errors(ort) as exc:
        # An invalid model (e.g. float16 weights on a float Gemm): the reference cannot run it.
        detail = " ".join(str(exc).split())
        raise TwnError(f"onnxruntime cannot run the model as the reference ({detail}); fix the model") from None


def reference_outputs(model_path: Path, network: Network, x: np.ndarray, batch: str) -> tuple[np.ndarray, str]:
    """The source model's outputs [batch, outputs] at the compared tensor, and what computed them."""
    model = onnx.load(str(model_path), load_external_data=False)
    if any(node.domain not in ("", "ai.onnx") for node in model.graph.node):
        # onnxruntime cannot run QONNX/FINN ops: the reference is the parsed
        # graph evaluated in float (quantisers included), which tests check
        # against qonnx's own executor.
        ref = network.float_forward(x).reshape(len(x), -1)
        reference = "the graph's float semantics (custom-domain ops; onnxruntime cannot run them)"
    else:
        ref = onnxruntime_outputs(model, network, x, network.compare_name or None).reshape(len(x), -1)
        reference = "onnxruntime"
    if not np.all(np.isfinite(ref)):
        raise TwnError(
            f"the source model's output {network.compare_name or network.output_name!r} is not finite on the "
            f"{batch} in float32 (onnxruntime gives inf or NaN); twngen accepts models whose float outputs are finite"
        )
    return ref, reference


def accuracy_from(
    network: Network,
    got: np.ndarray,
    ref: np.ndarray,
    batch: str,
    reference: str = "onnxruntime",
    budget: float | None = None,
) -> AccuracyReport:
    """The accuracy report of golden outputs ``got`` (dequantised, [batch, outputs]) against ``ref``."""
    got = got.reshape(len(got), -1)
    err = np.abs(ref - got)
    top1 = float(np.mean(np.argmax(ref, axis=1) == np.argmax(got, axis=1))) if ref.shape[1] > 1 else 1.0
    norm = float(np.sqrt(np.sum(ref**2)))
    rel = float(np.sqrt(np.sum((ref - got) ** 2))) / norm if norm > 0 else float(err.max(initial=0.0) > 0)
    return AccuracyReport(
        samples=len(ref),
        max_abs_error=float(err.max()) if err.size else 0.0,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        output_peak=float(np.abs(ref).max()) if ref.size else 0.0,
        top1_agreement=top1,
        batch=batch,
        reference=reference,
        relative_rms_error=rel,
        classes=outputs_are_classes(network),
        budget=budget,
    )


def compare_with_onnxruntime(
    model_path: Path, network: Network, x: np.ndarray, batch: str, budget: float | None = None
) -> AccuracyReport:
    """How far the golden model is from onnxruntime on the source model.

    Compared at the last layer's output (logits, before a final softmax or
    argmax), where the quantisation error is meaningful.
    """
    ref, reference = reference_outputs(model_path, network, x, batch)
    got = dequantize_output(network, run_integer(network, quantize_input(network, x)))
    return accuracy_from(network, got, ref, batch, reference, budget)


class LayerCache:
    """The golden model on one batch for many variants of a network, reusing the layers they share.

    Variants differ only in some layers' requantisers (``--precision auto`` tries
    activation widths layer by layer): the codes after layer ``k`` are kept, keyed by
    the requantisers of layers ``0..k``, so a variant runs only from its first changed
    layer on. Codes are stored in the narrowest integer type that holds them, at most
    ``max_bytes`` of them, the least recently used dropped first.
    """

    def __init__(self, x: np.ndarray, max_bytes: int = 1 << 30) -> None:
        self.x = x
        self.max_bytes = max_bytes
        self._codes: dict[tuple[object, ...], np.ndarray] = {}
        self._bytes = 0
        self._input: tuple[object, np.ndarray] | None = None

    def outputs(self, network: Network) -> np.ndarray:
        """Dequantised outputs [batch, outputs] of ``network`` (quantised) on the batch."""
        _check_ready(network)
        if self._input is None or self._input[0] != network.input_format:
            self._input = (network.input_format, network.fold_input(quantize_input(network, self.x)))
            self._codes.clear()
            self._bytes = 0
        q = self._input[1]
        key: tuple[object, ...] = ()
        start = 0
        keys = []
        for layer in network.layers:
            key = (*key, (layer.name, getattr(layer, "requant", None)))
            keys.append(key)
        for k in range(len(keys) - 1, -1, -1):
            if keys[k] in self._codes:
                q, start = self._codes.pop(keys[k]), k + 1
                self._codes[keys[k]] = q  # most recently used
                break
        for k in range(start, len(network.layers)):
            q = network.layers[k].integer_forward(q)
            q = self._store(keys[k], q)
        q = network.unfold_output(np.asarray(q))
        return dequantize_output(network, q.reshape(len(q), -1).astype(np.int64))

    def _store(self, key: tuple[object, ...], q: np.ndarray) -> np.ndarray:
        if q.dtype != object:
            peak = int(np.abs(q).max(initial=0))
            q = q.astype(np.int16 if peak < 1 << 15 else np.int32 if peak < 1 << 31 else np.int64)
        size = q.nbytes if q.dtype != object else q.size * 32
        while self._codes and self._bytes + size > self.max_bytes:
            old = self._codes.pop(next(iter(self._codes)))  # the least recently used
            self._bytes -= old.nbytes if old.dtype != object else old.size * 32
        if size <= self.max_bytes:
            self._codes[key] = q
            self._bytes += size
        return q
