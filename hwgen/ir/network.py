"""The intermediate representation between the ONNX frontend and the backends.

A :class:`Network` is a chain of layers over one streamed input vector. The IR
is pure data: integer weight matrices with their scales factored out, the
fixed-point format of every tensor, the requantisation between layers, and
(after the adder-graph pass) the adder graph that realises each layer. Passes
take a network and return a new one; :meth:`Network.verify` checks the
invariants after each of them.

Arithmetic conventions (the golden model implements exactly these):

* an activation tensor is a vector of signed two's-complement integers
  ``q`` of ``bits`` bits meaning ``q * 2**-frac``;
* a dense layer computes the exact integer accumulator ``acc = W @ q``;
* requantisation computes, per output channel ``i``,
  ``floor((acc[i] * multiplier[i] + offset[i]) / 2**shift)`` and clamps it to
  the output format (``[0, 2**(bits-1) - 1]`` after a ReLU). ``offset`` holds
  the bias and the rounding constant ``2**(shift-1)``, so the result is the
  real value rounded half up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir.adder_graph import AdderGraph

__all__ = [
    "DenseLayer",
    "FixedFormat",
    "Network",
    "Requant",
    "signed_bits_for_range",
]


def signed_bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


@dataclass(frozen=True)
class FixedFormat:
    """Signed fixed point: ``bits`` total bits, value = code * 2**-frac.

    ``lo``/``hi`` bound the codes that can actually occur (a ReLU output never
    holds a negative code), which narrows the accumulators downstream.
    """

    bits: int
    frac: int
    lo: int
    hi: int

    @staticmethod
    def full(bits: int, frac: int) -> FixedFormat:
        return FixedFormat(bits, frac, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round half up to the nearest code and saturate (float -> int64 codes)."""
        scaled = np.floor(np.asarray(x, dtype=np.float64) * (2.0**self.frac) + 0.5)
        return np.clip(scaled, self.lo, self.hi).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) * (2.0**-self.frac)

    def to_json(self) -> dict[str, int]:
        return {"bits": self.bits, "frac": self.frac, "lo": self.lo, "hi": self.hi}

    @staticmethod
    def from_json(d: dict[str, Any]) -> FixedFormat:
        return FixedFormat(int(d["bits"]), int(d["frac"]), int(d["lo"]), int(d["hi"]))


@dataclass(frozen=True)
class Requant:
    """Per-channel integer affine, shift and clamp from accumulator to output codes."""

    multiplier: tuple[int, ...]
    offset: tuple[int, ...]
    shift: int
    out: FixedFormat
    relu: bool

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """Exact integer requantisation of ``acc`` (shape [..., channels])."""
        acc_obj = np.asarray(acc).astype(object)
        mult = np.array(self.multiplier, dtype=object)
        off = np.array(self.offset, dtype=object)
        # Python integers: no width can overflow, and >> is a floor division.
        y = (acc_obj * mult + off) >> self.shift
        lo = 0 if self.relu else self.out.lo
        y = np.minimum(np.maximum(y, lo), self.out.hi)
        return y.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "multiplier": list(self.multiplier),
            "offset": list(self.offset),
            "shift": self.shift,
            "out": self.out.to_json(),
            "relu": self.relu,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Requant:
        return Requant(
            tuple(int(v) for v in d["multiplier"]),
            tuple(int(v) for v in d["offset"]),
            int(d["shift"]),
            FixedFormat.from_json(d["out"]),
            bool(d["relu"]),
        )


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """y = relu?(scale * (weights @ x) + bias), with integer ``weights``.

    ``weights`` is an int64 matrix [out, in] (ternary, binary or small
    integers); ``scale`` and ``bias`` are float64 per output channel, so the
    float layer the frontend understood is ``(weights * scale[:, None]) @ x +
    bias``. ``requant`` and ``adder_graph`` are filled in by passes.
    """

    name: str
    op: str
    weights: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    relu: bool
    weight_kind: str
    source_nodes: tuple[str, ...]
    requant: Requant | None = None
    adder_graph: AdderGraph | None = None
    naive_adders: int = field(default=0)

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def weights_nonzero(self) -> int:
        return int(np.count_nonzero(self.weights))

    def float_forward(self, x: np.ndarray) -> np.ndarray:
        """The float layer as parsed (before any quantisation)."""
        w = self.weights.astype(np.float64) * self.scale[:, None]
        y = x @ w.T + self.bias
        return np.maximum(y, 0.0) if self.relu else y


@dataclass(frozen=True, eq=False)
class Network:
    """A chain of dense layers fed by one input tensor (batch dimension dropped)."""

    name: str
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    layers: tuple[DenseLayer, ...]
    input_format: FixedFormat | None = None
    opset: int = 0

    @property
    def in_features(self) -> int:
        return int(np.prod(self.input_shape))

    def with_layers(self, layers: tuple[DenseLayer, ...], **changes: Any) -> Network:
        return replace(self, layers=layers, **changes)

    def float_forward(self, x: np.ndarray) -> np.ndarray:
        """Float reference of the parsed network, x: [batch, *input_shape]."""
        y = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        for layer in self.layers:
            y = layer.float_forward(y)
        return y

    def verify(self) -> None:
        """Check the IR's invariants; raise AssertionError naming the layer."""
        if not self.layers:
            raise TwnError(f"model {self.name!r} has no layers twngen can build")
        width = self.in_features
        for layer in self.layers:
            w = layer.weights
            assert w.dtype == np.int64 and w.ndim == 2, layer.name
            assert w.shape[1] == width, f"{layer.name}: expects {w.shape[1]} inputs, gets {width}"
            assert layer.scale.shape == (w.shape[0],), layer.name
            assert layer.bias.shape == (w.shape[0],), layer.name
            assert np.all(np.isfinite(layer.scale)) and np.all(np.isfinite(layer.bias)), layer.name
            if layer.requant is not None:
                assert len(layer.requant.multiplier) == w.shape[0], layer.name
                assert len(layer.requant.offset) == w.shape[0], layer.name
                assert layer.requant.shift >= 0, layer.name
            if layer.adder_graph is not None:
                g = layer.adder_graph
                assert g.n_inputs == w.shape[1] and len(g.outputs) == w.shape[0], layer.name
            width = w.shape[0]
        assert int(np.prod(self.output_shape)) == width, "output shape"

    # Serialisation: the build writes the quantised IR next to the RTL so that
    # `twngen verify` can rebuild the golden model without the ONNX file.
    def to_json(self) -> str:
        def layer_json(layer: DenseLayer) -> dict[str, Any]:
            return {
                "name": layer.name,
                "op": layer.op,
                "weights": layer.weights.tolist(),
                "scale": [float(v) for v in layer.scale],
                "bias": [float(v) for v in layer.bias],
                "relu": layer.relu,
                "weight_kind": layer.weight_kind,
                "source_nodes": list(layer.source_nodes),
                "requant": layer.requant.to_json() if layer.requant else None,
                "adder_graph": layer.adder_graph.to_json() if layer.adder_graph else None,
                "naive_adders": layer.naive_adders,
            }

        doc = {
            "format": "twngen-ir-1",
            "name": self.name,
            "input_name": self.input_name,
            "input_shape": list(self.input_shape),
            "output_name": self.output_name,
            "output_shape": list(self.output_shape),
            "input_format": self.input_format.to_json() if self.input_format else None,
            "opset": self.opset,
            "layers": [layer_json(layer) for layer in self.layers],
        }
        return json.dumps(doc, indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Network:
        doc = json.loads(text)
        if doc.get("format") != "twngen-ir-1":
            raise TwnError("network.json is not a twngen IR file (format twngen-ir-1)")
        layers = tuple(
            DenseLayer(
                name=d["name"],
                op=d["op"],
                weights=np.array(d["weights"], dtype=np.int64).reshape(len(d["bias"]), -1),
                scale=np.array(d["scale"], dtype=np.float64),
                bias=np.array(d["bias"], dtype=np.float64),
                relu=bool(d["relu"]),
                weight_kind=d["weight_kind"],
                source_nodes=tuple(d["source_nodes"]),
                requant=Requant.from_json(d["requant"]) if d["requant"] else None,
                adder_graph=AdderGraph.from_json(d["adder_graph"]) if d["adder_graph"] else None,
                naive_adders=int(d["naive_adders"]),
            )
            for d in doc["layers"]
        )
        fmt = doc["input_format"]
        return Network(
            name=doc["name"],
            input_name=doc["input_name"],
            input_shape=tuple(doc["input_shape"]),
            output_name=doc["output_name"],
            output_shape=tuple(doc["output_shape"]),
            layers=layers,
            input_format=FixedFormat.from_json(fmt) if fmt else None,
            opset=int(doc["opset"]),
        )
