"""Fold an input stream into lanes, so that a network can take several positions per cycle.

The hardware takes one beat per cycle at most. An input of ``P`` positions a
cycle (e.g. two I/Q samples, or two pixels of a row) becomes one beat of
``P`` positions along the last axis: a 1-D input [C, L] is seen as
[P * C, L / P], a 2-D input [C, H, W] as [P * C, H, W / P], channel
``lane * C + c`` holding position (row ``r``,) column ``P * t + lane``. Rows
are not folded: a 2-D window still spans ``k_h`` rows of the (folded) frame.
Every layer up to the pooling that brings the rate down to one position per
cycle is rewritten on that folded layout, exactly:

* a convolution of any kernel and padding, with a horizontal stride ``s``
  dividing ``P``, becomes a convolution over folded positions with ``P / s``
  output lanes: its weight matrix is the original taps placed where each
  lane's window falls along the row, zeros elsewhere (free in an adder graph,
  and the merging pass shares work between lanes); rows, their stride and
  padding are unchanged; the per-channel scale, bias, requantisation and
  quantiser are repeated per lane. Its output width must divide into the
  ``P / s`` lanes;
* a max pool whose horizontal kernel equals its stride ``g`` (no horizontal
  padding) becomes a :class:`~hwgen.ir.LanePoolLayer`, a max across groups of
  ``min(g, P)`` lanes within one beat, followed (when something is left: a
  2-D pool's rows, or ``g / P`` more columns when ``P`` divides ``g``) by an
  ordinary pool over the folded positions with the rest of the window;
* any other max pool whose horizontal stride divides ``P`` becomes a
  :class:`~hwgen.ir.LaneWindowPoolLayer`: the folded window (as for a
  convolution), each output lane comparing the taps its own window covers;
* a dense layer reached while more than one position arrives a cycle reads
  the collected frame in its folded order: its weight columns are permuted
  to match;
* a network that ends while more than one position arrives a cycle gives
  its output frame in the ordinary order (``Network.output_lanes``: the
  collector unfolds it, and so does the golden model).

The folded network computes the same integer function (the golden model
folds its input the same way, :meth:`hwgen.ir.Network.fold_input`). Layers a
fold cannot express (strides that do not divide the lanes, an output width
the lanes do not divide) are refused, naming the layer and what would be
accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir import (
    LanePoolLayer,
    LaneWindowPoolLayer,
    Layer,
    LinearLayer,
    Network,
    PoolLayer,
    Requant,
    ThresholdRequant,
    lane_taps,
)
from hwgen.ir.quantizer import Quantizer

__all__ = ["FoldLanes", "fold_conv_weights"]


def fold_conv_weights(
    weights: np.ndarray,
    channels: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    lanes: int,
    kernel_rows: int = 1,
) -> tuple[np.ndarray, int, int]:
    """The folded weight matrix, folded kernel and folded begin padding of a convolution along its last axis.

    ``weights`` is [F, C * K_h * K] (column ``(c * K_h + r) * K + k``; ``K_h`` = ``kernel_rows``
    is 1 for a 1-D convolution). Output lane ``l`` of folded position ``t`` is original output
    ``(P / s) * t + l``, which reads original input ``P * t + s * l - pad_begin + k``: folded
    offset ``floor((s * l - pad_begin + k) / P)``, input lane the remainder. The folded matrix
    is [(P / s) * F, P * C * K_h * K2], column ``((lane * C + c) * K_h + r) * K2 + offset``.
    """
    f = weights.shape[0]
    where = lane_taps(kernel, stride, pad_begin, lanes)
    k2 = where.kernel
    folded = np.zeros((len(where.taps) * f, lanes * channels * kernel_rows * k2), dtype=np.int64)
    w = weights.reshape(f, channels, kernel_rows, kernel)
    for lane, taps in enumerate(where.taps):
        for k, (off, in_lane) in enumerate(taps):
            for c in range(channels):
                for r in range(kernel_rows):
                    col = ((in_lane * channels + c) * kernel_rows + r) * k2 + off
                    folded[lane * f : (lane + 1) * f, col] = w[:, c, r, k]
    return folded, k2, where.pad_begin


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


def _row_split(values: tuple[int, ...], nd: int) -> tuple[tuple[int, ...], int]:
    """(the row part, the last axis's value) of a kernel or stride."""
    return values[: nd - 1], values[nd - 1]


@dataclass(frozen=True)
class FoldLanes:
    """Rewrite the first layers for ``lanes`` input positions per beat along the last axis (1: no change)."""

    name: ClassVar[str] = "fold-lanes"
    lanes: int = 1

    def apply(self, network: Network) -> Network:
        p = self.lanes
        if p == 1:
            return network
        if network.input_lanes != 1:
            raise ValueError("the network is folded already")
        rate = f"{p} positions per cycle"
        shape = network.stream_shape
        if len(shape) not in (2, 3):
            raise TwnError(
                f"input {network.input_name!r} has shape {list(network.input_shape)}: {rate} needs a 1-D input "
                "[channels, length] or a 2-D input [channels, height, width]"
            )
        width = shape[-1]
        if width % p:
            axis = "length" if len(shape) == 2 else "row width"
            raise TwnError(f"{rate}: the input {axis} {width} is not a multiple of {p}")
        layers: list[Layer] = []
        lanes = p
        before = shape  # the unfolded stream the next layer reads
        for layer in network.layers:
            if lanes == 1:
                layers.append(layer)
                continue
            where = f"layer {layer.name!r} ({layer.op})"
            if isinstance(layer, PoolLayer):
                layers.extend(_fold_pool(layer, lanes, where))
                lanes = layers[-1].out_shape[0] // layer.in_shape[0]
            elif not layer.is_conv:
                layers.append(_fold_dense(layer, tuple(before), lanes))
                lanes = 1
            else:
                folded = _fold_conv(layer, lanes, where)
                layers.append(folded)
                lanes = folded.out_shape[0] // layer.out_shape[0]
            before = layer.out_shape
        # A network that ends folded gives its output frame unfolded (the collector's wiring).
        return network.with_layers(tuple(layers), input_lanes=p, output_lanes=lanes)


def _folded_shape(shape: tuple[int, ...], lanes: int) -> tuple[int, ...]:
    c, *outer, width = shape
    return (lanes * c, *outer, width // lanes)


def _fold_dense(layer: LinearLayer, stream: tuple[int, ...], lanes: int) -> LinearLayer:
    """A dense layer reading a frame that arrives folded: the same matrix with its columns in the
    folded stream's order (the collector flattens [lanes * C, ..., W / lanes] channels-first)."""
    c, *outer, width = stream
    original = np.arange(int(np.prod(stream))).reshape(c, *outer, width // lanes, lanes)
    order = np.moveaxis(original, -1, 0).reshape(-1)  # folded column j reads original column order[j]
    return replace(layer, weights=layer.weights[:, order], adder_graph=None, fold_lanes=(lanes, 1))


def _output_lanes(
    layer: LinearLayer | PoolLayer, lanes: int, stride: int, where: str, what: str, hint: str = ""
) -> tuple[int, int]:
    """(lanes out, output width) of a layer taking ``lanes`` positions a beat at row ``stride``;
    refused, naming the layer, when its output width does not divide into those lanes."""
    out_lanes = lanes // stride
    out_width = layer.out_shape[-1]
    if out_width % out_lanes:
        raise TwnError(
            f"{where}: its output width {out_width} does not divide into {out_lanes} lanes (its input's "
            f"{lanes} positions per cycle over the stride {stride}); twngen folds {what} whose output width "
            f"is a multiple of the lanes it gives{hint}, or use a lower input rate"
        )
    return out_lanes, out_width


def _fold_conv(layer: LinearLayer, lanes: int, where: str) -> LinearLayer:
    """``layer`` on the folded layout of ``lanes`` positions per beat."""
    nd = len(layer.kernel)
    rows_k, k = _row_split(layer.kernel, nd)
    rows_s, s = _row_split(layer.stride, nd)
    pad_begin = layer.pads[nd - 1]
    if lanes % s:
        raise TwnError(
            f"{where}: its stride {s} along the row does not divide the {lanes} positions per cycle; twngen "
            f"folds convolutions whose stride divides the lanes (here {', '.join(map(str, _divisors(lanes)))})"
        )
    c = layer.in_shape[0]
    out_lanes, out_width = _output_lanes(layer, lanes, s, where, "a convolution", ", e.g. 'same' padding")
    kernel_rows = int(np.prod(rows_k)) if rows_k else 1
    weights, k2, fold_begin = fold_conv_weights(layer.weights, c, k, s, pad_begin, lanes, kernel_rows)
    in_width = layer.in_shape[-1] // lanes
    # The folded windows (stride 1) must number exactly out_width / out_lanes.
    fold_end = out_width // out_lanes - 1 + k2 - in_width - fold_begin
    if fold_end < 0 or fold_end >= k2 or fold_begin >= k2:
        raise TwnError(f"{where}: cannot fold this window into {lanes} lanes (pads {list(layer.pads)})")
    pads = (*layer.pads[: nd - 1], fold_begin, *layer.pads[nd : 2 * nd - 1], fold_end)
    return replace(
        layer,
        weights=weights,
        scale=np.tile(layer.scale, out_lanes),
        bias=np.tile(layer.bias, out_lanes),
        in_shape=_folded_shape(layer.in_shape, lanes),
        kernel=(*rows_k, k2),
        stride=(*rows_s, 1),
        pads=pads,
        quantizer=_tile_quantizer(layer.quantizer, out_lanes),
        requant=_tile_requant(layer.requant, out_lanes),
        adder_graph=None,
        fold_lanes=(lanes, out_lanes),
    )


def _fold_pool(layer: PoolLayer, lanes: int, where: str) -> list[PoolLayer]:
    """``layer`` on the folded layout: a max across lanes then what is left of the window when the
    row kernel equals the stride (no row padding) and divides or is a multiple of the lanes; any
    other window (overlapping, padded) whose row stride divides the lanes, a window over folded
    positions that compares each output lane's own taps."""
    nd = len(layer.kernel)
    rows_k, k = _row_split(layer.kernel, nd)
    rows_s, s = _row_split(layer.stride, nd)
    pad_begin, pad_end = layer.pads[nd - 1], layer.pads[2 * nd - 1]
    if k == s and not pad_begin and not pad_end and (lanes % k == 0 or k % lanes == 0):
        return _fold_grouped_pool(layer, lanes)
    if lanes % s:
        raise TwnError(
            f"{where}: at {lanes} positions per cycle, twngen folds max pooling whose stride along the row "
            f"divides {lanes}, or whose kernel along the row equals its stride and is a multiple of {lanes} "
            f"(this one has kernel {list(layer.kernel)}, stride {list(layer.stride)}, pads {list(layer.pads)}); "
            "use an input rate whose lanes the stride divides, or at most one position per cycle"
        )
    out_lanes, out_width = _output_lanes(layer, lanes, s, where, "a pool")
    taps = lane_taps(k, s, pad_begin, lanes)
    in_width = layer.in_shape[-1] // lanes
    fold_end = out_width // out_lanes - 1 + taps.kernel - in_width - taps.pad_begin
    if fold_end < 0 or fold_end >= taps.kernel or taps.pad_begin >= taps.kernel:
        raise TwnError(f"{where}: cannot fold this window into {lanes} lanes (pads {list(layer.pads)})")
    return [
        LaneWindowPoolLayer(
            name=layer.name,
            op=layer.op,
            in_shape=_folded_shape(layer.in_shape, lanes),
            kernel=(*rows_k, taps.kernel),
            stride=(*rows_s, 1),
            pads=(*layer.pads[: nd - 1], taps.pad_begin, *layer.pads[nd : 2 * nd - 1], fold_end),
            minimum=layer.minimum * lanes,
            source_nodes=layer.source_nodes,
            fold_lanes=(lanes, out_lanes),
            lanes=lanes,
            row_kernel=k,
            row_stride=s,
            row_pad=pad_begin,
        )
    ]


def _fold_grouped_pool(layer: PoolLayer, lanes: int) -> list[PoolLayer]:
    """A pool of row kernel = stride ``g`` (no row padding): a max across groups of ``min(g,
    lanes)`` lanes, then an ordinary pool over the rest (the rows, ``g / lanes`` folded columns)."""
    nd = len(layer.kernel)
    rows_k, k = _row_split(layer.kernel, nd)
    rows_s, _ = _row_split(layer.stride, nd)
    group = min(k, lanes)
    folded = _folded_shape(layer.in_shape, lanes)
    ones = (1,) * nd
    across = LanePoolLayer(
        name=layer.name,
        op=layer.op,
        in_shape=folded,
        kernel=ones,
        stride=ones,
        pads=(0,) * (2 * nd),
        minimum=layer.minimum * lanes,
        source_nodes=layer.source_nodes,
        lanes=lanes,
        group=group,
        fold_lanes=(lanes, lanes // group),
    )
    rest = k // group  # columns still to pool, over folded positions
    if all(v == 1 for v in rows_k) and all(v == 1 for v in rows_s) and rest == 1 and not any(layer.pads):
        return [across]
    out_lanes = lanes // group
    along = PoolLayer(
        name=layer.name,
        op=layer.op,
        in_shape=across.out_shape,
        kernel=(*rows_k, rest),
        stride=(*rows_s, rest),
        pads=(*layer.pads[: nd - 1], 0, *layer.pads[nd : 2 * nd - 1], 0),
        minimum=layer.minimum * out_lanes,
        source_nodes=layer.source_nodes,
        fold_lanes=(out_lanes, out_lanes),
    )
    return [across, along]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
