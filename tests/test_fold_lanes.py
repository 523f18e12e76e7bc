"""Lane folding (hwgen.passes.fold_lanes) of 2-D inputs: P pixels of a row per beat.

The folded network must compute exactly the unfolded one's integers (and
floats); what a fold cannot express is refused naming the layer and what
would be accepted. The simulated designs are in tests/test_frames.py
(``test_2d_lanes_match_golden_and_the_reported_timing``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from make_conv_net import stack

from hwgen import golden
from hwgen.build import ArithmeticOptions, prepare_network, stream_rate
from hwgen.errors import TwnError
from hwgen.ir import LanePoolLayer, LinearLayer, Network, PoolLayer
from hwgen.passes import run_passes
from hwgen.passes.fold_lanes import FoldLanes, fold_conv_weights
from hwgen.verify import make_vectors


def _parsed(tmp_path, spec: str, shape: tuple[int, ...], seed: int = 4) -> Network:
    path = tmp_path / "m.onnx"
    onnx.save(stack(spec, shape, seed=seed, negative_bn=True), str(path))
    return prepare_network(path, ArithmeticOptions())[0]


# Kernels 1, 2, 3 and 5; strides 1 and 2; 'same', valid and asymmetric padding; 2x2 and 4x4
# pools (min pools from negative batch-norm scales) and overlapping, padded ones (3x3 stride 2
# pad 1, 5x5 stride 2 pad 2), at 2 and 4 pixels a cycle (8: a dense layer reading two lanes).
SPECS_2D = [
    ("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), (2, 4)),  # tests/test_frames.py's conv2d
    ("c4k3p1,m2,c5k3p1,m2,d6,o3", (2, 8, 8), (2, 4, 8)),  # 8: the dense layer reads 2 lanes
    ("c4k1,m2,d6,o3", (3, 4, 8), (2,)),
    ("c4k3,c3k3p1s2,d6,o3", (2, 6, 8), (2,)),  # valid padding: width 8 -> 6, three beats of 2
    ("c4k5p2s2,c3k3p1,m2,d6,o3", (2, 8, 16), (2, 4)),
    ("c4k3p1,m4,d6,o3", (2, 8, 8), (2, 4)),  # a 4x4 pool: across lanes, then along the folded row
    ("c4k3p1,c4k3p1s2,c3k3p1s2,d6,o3", (2, 8, 8), (2, 4)),  # strides halve the lanes
    ("c4k2s2,c3k3p1,m2,d6,o3", (2, 8, 8), (2, 4)),  # kernel 2 stride 2
    ("c3k2p1.0,c4k5p2,m2,d6,o3", (1, 5, 12), (2,)),  # asymmetric padding, odd height
    ("c4k3p2.1s2,m2s1,o3", (2, 6, 8), (2,)),  # the overlapping pool sees one pixel a cycle
    ("c4k3p1,m3s2p1,d6,o3", (2, 8, 8), (2,)),  # overlapping, padded pools over lanes
    ("c4k3p1,m3s1p1,m2,d6,o3", (2, 8, 8), (2, 4)),
    ("c4k3p1,m5s2p2,c3k3s2p1,d6,o3", (2, 8, 16), (2, 4)),
    ("c4k3p1,m3s2,d6,o3", (2, 8, 8), (2,)),
    ("c4k3p1,m2,c3k3p1", (2, 8, 8), (2, 4, 8)),  # ends on a convolution in 1, 2 or 4 lanes
    ("c4k3p1,m3s1p1", (2, 8, 8), (2, 4)),  # ends on an overlapping pool in lanes
]


@pytest.mark.parametrize(
    "spec, shape, lanes", [(spec, shape, p) for spec, shape, rates in SPECS_2D for p in rates]
)  # fmt: skip
def test_folded_2d_networks_compute_the_same_integers(tmp_path, spec, shape, lanes):
    net = _parsed(tmp_path, spec, shape)
    folded = run_passes(net, (FoldLanes(lanes),))
    c, h, w = shape
    assert folded.input_lanes == lanes and folded.stream_shape == (c * lanes, h, w // lanes)
    first = folded.layers[0]
    assert isinstance(first, LinearLayer) and first.fold_lanes[0] == lanes
    codes = make_vectors(net, 20, seed=1)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(net, codes))
    x = np.random.default_rng(0).standard_normal((4, *shape))
    np.testing.assert_allclose(folded.float_forward(x), net.float_forward(x))
    # network.json keeps the fold.
    again = Network.from_json(folded.to_json())
    assert [la.fold_lanes for la in again.layers] == [la.fold_lanes for la in folded.layers]
    assert again.output_lanes == folded.output_lanes
    np.testing.assert_array_equal(golden.run_integer(again, codes), golden.run_integer(net, codes))


def test_the_fold_input_puts_a_rows_pixels_side_by_side():
    """Channel lane * C + c of folded pixel (r, t) is channel c of pixel (r, P * t + lane)."""
    from hwgen.ir import FixedFormat

    conv = LinearLayer(
        name="c",
        op="Conv",
        weights=np.zeros((2, 4 * 3 * 2), dtype=np.int64),
        scale=np.ones(2),
        bias=np.zeros(2),
        relu=False,
        weight_kind="ternary",
        source_nodes=("c",),
        in_shape=(2 * 2, 3, 4),
        kernel=(3, 2),
        stride=(1, 1),
        pads=(1, 0, 1, 1),
        fold_lanes=(2, 2),
    )
    net = Network("n", "x", (2, 3, 8), "y", (2, 3, 8), (conv,), FixedFormat(8, 0, -128, 127), input_lanes=2)
    q = np.arange(2 * 3 * 8).reshape(1, 2, 3, 8)
    f = net.fold_input(q.reshape(1, -1))
    assert f.shape == (1, 4, 3, 4)
    for lane in range(2):
        for ch in range(2):
            np.testing.assert_array_equal(f[0, lane * 2 + ch], q[0, ch, :, lane::2])


def test_folded_convolution_weights_place_each_lanes_taps():
    """A 3x3 'same' convolution at two pixels a cycle: a 3x3 window over folded positions, each
    output lane reading its own three columns (the others zero)."""
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, size=(2, 1 * 3 * 3))
    folded, k2, begin = fold_conv_weights(w, 1, 3, 1, 1, 2, kernel_rows=3)
    assert (k2, begin) == (3, 1) and folded.shape == (2 * 2, 2 * 1 * 3 * 3)
    f = folded.reshape(2, 2, 2, 3, 3)  # [out lane, F, in lane, row, folded offset]
    ww = w.reshape(2, 3, 3)
    # Lane 0 reads columns -1, 0, 1: (offset -1, lane 1), (0, lane 0), (0, lane 1).
    np.testing.assert_array_equal(f[0, :, 1, :, 0], ww[:, :, 0])
    np.testing.assert_array_equal(f[0, :, 0, :, 1], ww[:, :, 1])
    np.testing.assert_array_equal(f[0, :, 1, :, 1], ww[:, :, 2])
    # Lane 1 reads columns 0, 1, 2: (0, lane 0), (0, lane 1), (offset 1, lane 0).
    np.testing.assert_array_equal(f[1, :, 0, :, 1], ww[:, :, 0])
    np.testing.assert_array_equal(f[1, :, 1, :, 1], ww[:, :, 1])
    np.testing.assert_array_equal(f[1, :, 0, :, 2], ww[:, :, 2])
    assert np.count_nonzero(folded) == 2 * np.count_nonzero(w)


def test_a_2x2_pool_is_a_max_across_lanes_then_over_rows(tmp_path):
    net = _parsed(tmp_path, "c4k3p1,m2,c3k3p1s2,d6,o3", (2, 8, 8))
    folded = run_passes(net, (FoldLanes(4),))
    across, along = folded.layers[1], folded.layers[2]
    assert isinstance(across, LanePoolLayer) and (across.lanes, across.group) == (4, 2)
    assert across.fold_lanes == (4, 2)
    assert isinstance(along, PoolLayer) and not isinstance(along, LanePoolLayer)
    assert (along.kernel, along.stride, along.in_shape, along.fold_lanes) == ((2, 1), (2, 1), (8, 8, 2), (2, 2))


def test_the_rate_of_a_2d_input_counts_pixels(tmp_path):
    """--input-rate 2 on an 8x8 image: two lanes, II = 64 / 2; a rate between takes the next
    number of lanes dividing the row."""
    net = _parsed(tmp_path, "C4k5p2,m2,b,c6k3s2p1", (2, 8, 8))
    assert stream_rate(net, 250.0, 2.0, None) == (2, 32)
    assert stream_rate(net, 250.0, 3.0, None) == (4, 16)
    assert stream_rate(net, 250.0, 8.0, None) == (8, 8)
    with pytest.raises(TwnError, match=r"more than a whole row \(8 positions\) per cycle"):
        stream_rate(net, 250.0, 9.0, None)


@pytest.mark.parametrize(
    "spec, shape, lanes, match",
    [
        # A valid 3x3 convolution leaves 6 columns: not four lanes.
        (
            "c4k3,m2,d6,o3",
            (2, 6, 8),
            4,
            r"layer '/conv_\d+/Conv' \(Conv\): its output width 6 does not divide into 4 lanes .*'same' padding",
        ),
        # Stride 3 along the row does not divide 2 lanes.
        (
            "c4k3s3,d6,o3",
            (2, 6, 12),
            2,
            r"layer '/conv_\d+/Conv' \(Conv\): its stride 3 along the row does not divide the 2 positions per "
            r"cycle; twngen folds convolutions whose stride divides the lanes \(here 1, 2\)",
        ),
        # A pool of stride 3 while two pixels a cycle arrive.
        (
            "c4k3p1,m3s3,d6,o3",
            (2, 6, 12),
            2,
            r"layer '/maxpool_\d+/MaxPool' \(MaxPool\): at 2 positions per cycle, twngen folds max pooling whose "
            r"stride along the row divides 2",
        ),
        # An overlapping pool whose output width the lanes do not divide.
        (
            "c4k3p1,m3s2,d6,o3",
            (2, 8, 8),
            4,
            r"layer '/maxpool_\d+/MaxPool' \(MaxPool\): its output width 3 does not divide into 2 lanes",
        ),
        # The row width is not a multiple of the lanes.
        ("c4k3p1,m2,d6,o3", (2, 6, 6), 4, r"4 positions per cycle: the input row width 6 is not a multiple of 4"),
    ],
)
def test_what_a_2d_fold_cannot_express_is_refused_by_name(tmp_path, spec, shape, lanes, match):
    net = _parsed(tmp_path, spec, shape)
    with pytest.raises(TwnError, match=match):
        run_passes(net, (FoldLanes(lanes),))


def test_a_2d_rate_no_fold_meets_exits_2_with_the_best_rate(tmp_path, capsys):
    from hwgen.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(stack("c4k3s3,d8,o3", (2, 8, 8), seed=1), str(path))
    out = tmp_path / "out"
    assert main([str(path), "--board", "zcu111", "-o", str(out), "--input-rate", "2"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"layer '/conv_\d+/Conv' \(Conv\): its stride 3 along the row does not divide the 2", err), err
    assert "fastest schedule this network takes is 1 position(s) per cycle (--input-rate 1: an initiation " in err
    assert "interval of 64 cycles per frame)" in err  # 8 / 4 lanes do not divide by 3 either
    assert "Traceback" not in err and not out.exists()


def test_a_2d_build_reports_its_lanes(tmp_path):
    """The report names every folded layer's lanes; II = H * W / P; the estimate counts the folded
    layers (wider adder graphs and window registers), so four lanes cost more than two."""
    from hwgen.build import build

    path = tmp_path / "m.onnx"
    onnx.save(stack("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), seed=13, negative_bn=True), str(path))
    reports = {}
    for p in (1, 2, 4):
        build(path, "zcu111", tmp_path / f"r{p}", input_rate=float(p), emit_rtl=False)
        reports[p] = json.loads((tmp_path / f"r{p}" / "report.json").read_text())
    for p, r in reports.items():
        assert r["initiation_interval_cycles"] == 64 // p
        assert r["interface"]["input_elements_per_beat"] == 2 * p
        assert r["schedule"]["lanes"] == p
    assert all(la["lanes"] == {"in": 1, "out": 1} for la in reports[1]["layers"])
    conv, across, along, last = reports[4]["layers"]
    assert conv["lanes"] == {"in": 4, "out": 4} and conv["in_shape"] == [8, 8, 2]
    assert conv["arithmetic"].endswith("; 4 pixels of a row in, 4 out per beat (folded lanes)")
    assert across["arithmetic"].startswith("min/max across 2 of 4 lanes; 4 pixels of a row in, 2 out per beat")
    assert along["lanes"] == {"in": 2, "out": 2} and along["arithmetic"].startswith("min/max over 2 taps")
    assert last["lanes"] == {"in": 2, "out": 1}  # the stride-2 convolution halves the lanes
    assert "2 consecutive positions of its row per beat" not in reports[4]["interface"]["packing"]
    assert "4 consecutive positions of its row per beat" in reports[4]["interface"]["packing"]
    luts = [reports[p]["resources"]["lut"] for p in (1, 2, 4)]
    assert luts == sorted(luts), luts
    md = (tmp_path / "r4" / "report.md").read_text()
    assert "4 pixels of a row in, 4 out per beat (folded lanes)" in md
