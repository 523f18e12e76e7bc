"""The digit-width scheduler: every layer meets the II at the least estimated area."""

import numpy as np
import pytest
from conftest import built_network, write_mlp
from test_backend import simulate

from hwgen import golden
from hwgen.build import stream_rate
from hwgen.cli import main
from hwgen.errors import TwnError
from hwgen.passes.schedule import ScheduleDigitWidths, layer_choices
from hwgen.plan import plan_network
from hwgen.plan.bit_serial import digits_per_word


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return built_network(write_mlp(tmp_path_factory.mktemp("s") / "m.onnx", [12, 9, 5], seed=3))


def test_full_rate_is_parallel(net):
    scheduled = ScheduleDigitWidths(1).apply(net)
    assert [layer.digit_bits for layer in scheduled.layers] == [0, 0]


@pytest.mark.parametrize("ii", [2, 3, 5, 11, 40])
def test_every_layer_meets_the_rate_at_the_cheapest_choice(net, ii):
    scheduled = ScheduleDigitWidths(ii).apply(net)
    fmt = net.input_format
    lo, hi, bits = fmt.lo, fmt.hi, fmt.bits
    for layer in scheduled.layers:
        if layer.digit_bits:
            assert digits_per_word(layer.word_bits, layer.digit_bits) <= ii
        options = layer_choices(layer.adder_graph, lo, hi, bits, ii)
        chosen = next(c for c in options if c.digit_bits == layer.digit_bits)
        assert chosen.lut == min(c.lut for c in options)
        lo, hi, bits = layer.requant.out.lo, layer.requant.out.hi, layer.requant.out.bits
    # Slower rates never cost more.
    assert plan_network(scheduled).initiation_interval == ii


@pytest.mark.parametrize("ii, stall", [(3, 0.0), (6, 0.3), (23, 0.5)])
def test_serial_networks_are_exact_at_the_scheduled_rate(net, ii, stall):
    scheduled = ScheduleDigitWidths(ii).apply(net)
    assert any(layer.digit_bits for layer in scheduled.layers)
    fmt = net.input_format
    rng = np.random.default_rng(ii)
    codes = np.concatenate([[[fmt.lo] * 12, [fmt.hi] * 12], rng.integers(fmt.lo, fmt.hi + 1, size=(14, 12))])
    plan, outputs, accepted, delivered = simulate(scheduled, codes, stall=stall, seed=ii)
    assert outputs == golden.run_integer(scheduled, codes).tolist()
    if stall == 0.0:
        assert set(np.diff(delivered).tolist()) == {ii}
        assert [d - a for a, d in zip(accepted, delivered, strict=True)] == [plan.latency] * len(codes)


class _Shape:
    """What stream_rate reads of a network."""

    def __init__(self, shape, conv):
        self.input_shape, self.has_conv, self.input_name = shape, conv, "x"
        self.stream_shape = shape
        self.in_features = int(np.prod(shape))


def test_rates_to_initiation_intervals():
    dense = _Shape((64,), False)
    assert stream_rate(dense, 250.0, None, None)[1] == 1
    assert stream_rate(dense, 250.0, 2.0, None)[1] == 32
    assert stream_rate(dense, 250.0, 3.0, None)[1] == 22
    assert stream_rate(dense, 250.0, None, 10e6)[1] == 25
    with pytest.raises(TwnError, match="best rate is one input per cycle, 250,000,000"):
        stream_rate(dense, 250.0, None, 300e6)
    with pytest.raises(TwnError, match="not both"):
        stream_rate(dense, 250.0, 1.0, 1e6)
    # A streamed frame: the rate counts positions (all channels of a sample) per cycle.
    frames = _Shape((2, 1024), True)
    assert stream_rate(frames, 250.0, None, None)[1] == 1024
    assert stream_rate(frames, 250.0, 0.25, None)[1] == 4096
    assert stream_rate(frames, 250.0, 0.3, None)[1] == 3 * 1024
    assert stream_rate(frames, 250.0, None, 60e3)[1] == 4 * 1024
    # Above one position per cycle: the 1-D input folds into lanes (a divisor of the length).
    assert stream_rate(frames, 250.0, 2.0, None) == (2, 512)
    assert stream_rate(frames, 250.0, 3.0, None) == (4, 256)
    assert stream_rate(frames, 250.0, None, 300e3) == (2, 512)
    # A 2-D input folds along its rows: lanes divide the row width, II = pixels / lanes.
    assert stream_rate(_Shape((3, 8, 12), True), 250.0, 2.0, None) == (2, 48)
    assert stream_rate(_Shape((3, 8, 12), True), 250.0, 5.0, None) == (6, 16)
    with pytest.raises(TwnError, match=r"more than a whole row \(12 positions\) per cycle"):
        stream_rate(_Shape((3, 8, 12), True), 250.0, 13.0, None)
    with pytest.raises(TwnError, match="streams one position per cycle at most"):
        stream_rate(_Shape((3, 4, 8, 8), True), 250.0, 2.0, None)


def test_unreachable_rate_exits_2(tmp_path, capsys):
    model = write_mlp(tmp_path / "m.onnx", [8, 4], seed=1)
    assert main([str(model), "--board", "zcu111", "-o", str(tmp_path / "o"), "--target-fps", "1e9"]) == 2
    assert "best rate" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
