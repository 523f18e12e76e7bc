"""Fold a 1-D input stream into lanes, so that a network can take several positions per cycle.

The hardware takes one beat per cycle at most. An input of ``P`` positions a
cycle (e.g. two I/Q samples) becomes one beat of ``P`` positions: the input
[C, L] is seen as [P * C, L / P] with channel ``lane * C + c`` holding
position ``P * t + lane``. Every layer up to the pooling that brings the rate
down to one position per cycle is rewritten on that folded layout, exactly:

* a convolution of stride ``s`` (dividing ``P``) becomes a convolution over
  folded positions with ``P / s`` output lanes: its weight matrix is the
  original taps placed where each lane's window falls, zeros elsewhere (free
  in an adder graph, and the merging pass shares work between lanes); the
  per-channel scale, bias, requantisation and quantiser are repeated per lane;
* a max pool of kernel = stride = ``g`` (dividing ``P``) becomes a
  :class:`~hwgen.ir.LanePoolLayer`: a max across lanes within one beat.

The folded network computes the same integer function (the golden model
folds its input the same way, :meth:`hwgen.ir.Network.fold_input`). Layers a
fold cannot express (2-D windows, strides or pool sizes that do not divide
the lanes, a dense layer before the rate falls to one position a cycle) are
refused with the rate that would avoid the fold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir import LanePoolLayer, Layer, Network, PoolLayer, Requant, ThresholdRequant
from hwgen.ir.quantizer import Quantizer

__all__ = ["FoldLanes", "fold_conv_weights"]


def fold_conv_weights(
    weights: np.ndarray, channels: int, kernel: int, stride: int, pad_begin: int, lanes: int
) -> tuple[np.ndarray, int, int]:
    """The folded weight matrix, folded kernel and folded begin padding of a 1-D convolution.

    ``weights`` is [F, C * K] (column ``c * K + k``). Output lane ``l`` of
    folded position ``t`` is original output ``(P / s) * t + l``, which reads
    original input ``P * t + s * l - pad_begin + k``: folded offset
    ``floor((s * l - pad_begin + k) / P)``, input lane the remainder.
    """
    f = weights.shape[0]
    out_lanes = lanes // stride
    offsets = [(stride * lane - pad_begin + k) // lanes for lane in range(out_lanes) for k in range(kernel)]
    lo, hi = min(offsets), max(offsets)
    k2 = hi - lo + 1
    folded = np.zeros((out_lanes * f, lanes * channels * k2), dtype=np.int64)
    w = weights.reshape(f, channels, kernel)
    for lane in range(out_lanes):
        for k in range(kernel):
            pos = stride * lane - pad_begin + k
            off, in_lane = pos // lanes, pos % lanes
            for c in range(channels):
                col = (in_lane * channels + c) * k2 + (off - lo)
                folded[lane * f : (lane + 1) * f, col] = w[:, c, k]
    return folded, k2, -lo


def _tile_requant(rq: Requant | ThresholdRequant | None, times: int) -> Requant | ThresholdRequant | None:
    if rq is None:
        return None
    if isinstance(rq, Requant):
        return replace(rq, multiplier=rq.multiplier * times, offset=rq.offset * times, shift=rq.shift * times)
    return replace(rq, base=rq.base * times, thresholds=rq.thresholds * times, rising=rq.rising * times)


def _tile_quantizer(q: Quantizer | None, times: int) -> Quantizer | None:
    if q is None or q.thresholds is None or q.thresholds.shape[0] == 1:
        return q
    return replace(q, thresholds=np.tile(q.thresholds, (times, 1)))


@dataclass(frozen=True)
class FoldLanes:
    """Rewrite the first layers for ``lanes`` input positions per beat (1: no change)."""

    name: ClassVar[str] = "fold-lanes"
    lanes: int = 1

    def apply(self, network: Network) -> Network:
        p = self.lanes
        if p == 1:
            return network
        if network.input_lanes != 1:
            raise ValueError("the network is folded already")
        rate = f"{p} positions per cycle"
        if len(network.input_shape) != 2:
            raise TwnError(
                f"input {network.input_name!r} has shape {list(network.input_shape)}: {rate} needs a 1-D input "
                "[channels, length]; 2-D inputs stream at most one pixel per cycle"
            )
        length = network.input_shape[1]
        if length % p:
            raise TwnError(f"{rate}: the input length {length} is not a multiple of {p}")
        layers: list[Layer] = []
        lanes, folded_length = p, length // p
        for layer in network.layers:
            if lanes == 1:
                layers.append(layer)
                continue
            where = f"layer {layer.name!r} ({layer.op})"
            if isinstance(layer, PoolLayer):
                k, s = layer.kernel[0], layer.stride[0]
                if k != s or any(layer.pads) or lanes % s:
                    raise TwnError(
                        f"{where}: at {lanes} positions per cycle, twngen folds max pooling with kernel = stride "
                        f"dividing {lanes} and no padding (this one has kernel {k}, stride {s}, pads "
                        f"{list(layer.pads)}); use an input rate of at most one position per cycle"
                    )
                c = layer.in_shape[0]
                layers.append(
                    LanePoolLayer(
                        name=layer.name,
                        op=layer.op,
                        in_shape=(lanes * c, folded_length),
                        kernel=(1,),
                        stride=(1,),
                        pads=(0, 0),
                        minimum=layer.minimum * lanes,
                        source_nodes=layer.source_nodes,
                        lanes=lanes,
                        group=s,
                    )
                )
                lanes //= s
                continue
            if not layer.is_conv:
                raise TwnError(
                    f"{where}: the input rate leaves {lanes} positions per cycle at this dense layer; twngen "
                    "folds lanes only until pooling brings the rate to one position per cycle"
                )
            k, s = layer.kernel[0], layer.stride[0]
            if lanes % s:
                raise TwnError(f"{where}: stride {s} does not divide the {lanes} positions per cycle")
            c = layer.in_shape[0]
            out_len = layer.out_shape[1]
            if out_len * s != layer.in_shape[1]:
                raise TwnError(
                    f"{where}: at {lanes} positions per cycle twngen folds convolutions whose output length is "
                    f"the input length over the stride ('same' padding); this one maps {layer.in_shape[1]} "
                    f"positions to {out_len}"
                )
            weights, k2, pad_begin = fold_conv_weights(layer.weights, c, k, s, layer.pads[0], lanes)
            out_lanes = lanes // s
            pad_end = k2 - 1 - pad_begin
            if pad_end < 0:
                raise TwnError(f"{where}: cannot fold this window into {lanes} lanes")
            layers.append(
                replace(
                    layer,
                    weights=weights,
                    scale=np.tile(layer.scale, out_lanes),
                    bias=np.tile(layer.bias, out_lanes),
                    in_shape=(lanes * c, folded_length),
                    kernel=(k2,),
                    stride=(1,),
                    pads=(pad_begin, pad_end),
                    quantizer=_tile_quantizer(layer.quantizer, out_lanes),
                    requant=_tile_requant(layer.requant, out_lanes),
                    adder_graph=None,
                )
            )
            lanes = out_lanes
        if lanes != 1:
            raise TwnError(
                f"{rate}: the network's last layer still sees {lanes} positions per cycle; twngen folds lanes "
                "only until pooling brings the rate to one position per cycle"
            )
        return network.with_layers(tuple(layers), input_lanes=p)
