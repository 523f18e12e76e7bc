"""Accumulator word widths (``--words``): exact, calibrated, or a width that wraps.

The golden model defines a wrapped accumulator as the exact one modulo 2**word (two's
complement); every realisation must compute exactly that: parallel and digit-serial adder
graphs, shared and per-channel requantisers, threshold comparators, MAC accumulators.
The inputs below are drawn over the whole code range, so most accumulators wrap.
"""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from conftest import built_network, write_mlp
from make_conv_net import vgg1d
from test_backend import _codes, _single_layer_model, simulate

from hwgen import golden
from hwgen.build import ArithmeticOptions, build
from hwgen.cli import main
from hwgen.errors import TwnError
from hwgen.ir import Network
from hwgen.ir.widths import signed_bits_for_range, wrap_range, wrap_signed
from hwgen.passes import run_passes
from hwgen.passes.schedule import ScheduleDigitWidths
from hwgen.passes.words import ChooseWordWidths, exact_word_bits, parse_words
from hwgen.plan.dense import LayerPlan
from hwgen.verify import verify


def test_a_wrapped_value_is_what_a_register_of_that_width_keeps():
    for bits in (2, 3, 5, 8):
        for v in range(-70, 70):
            reg = v & ((1 << bits) - 1)  # the register's bits
            want = reg - (1 << bits) if reg >> (bits - 1) else reg
            assert wrap_signed(v, bits) == want
    big = np.array([2**40 + 5, -(2**40) - 3], dtype=object)
    assert list(wrap_signed(big, 16)) == [5, -3]
    assert wrap_range(-8, 7, 4) == (-8, 7) and wrap_range(-9, 0, 4) == (-8, 7) and wrap_range(0, 3, 4) == (0, 3)


def test_signed_bits_for_range_is_the_smallest_twos_complement_width():
    # The closed form (the scheduler asks it millions of times) against the definition.
    for lo in range(-70, 70):
        for hi in range(lo, 70):
            bits = signed_bits_for_range(lo, hi)
            assert -(1 << (bits - 1)) <= lo and hi < 1 << (bits - 1)
            assert bits == 1 or not (-(1 << (bits - 2)) <= lo and hi < 1 << (bits - 2))
    assert signed_bits_for_range(-(2**70), 2**70 - 1) == 71
    assert signed_bits_for_range(np.int64(-5), np.int64(7)) == 4
    with pytest.raises(ValueError, match="empty range"):
        signed_bits_for_range(1, 0)


def test_parse_words_accepts_the_modes_and_widths_and_nothing_else():
    assert parse_words("exact") == "exact" and parse_words("calibrated") == "calibrated"
    assert parse_words("16") == 16 and parse_words(12) == 12
    for bad in ("3", "65", "wide", "-4"):
        with pytest.raises(TwnError, match="--words"):
            parse_words(bad)


def test_a_width_wraps_only_the_layers_whose_worst_case_is_wider(tmp_path):
    path = write_mlp(tmp_path / "m.onnx", [16, 8, 4], seed=3)
    exact = built_network(path)
    fmt = exact.input_format
    widths = []
    layer_fmt = fmt
    for layer in exact.linear_layers:
        widths.append(exact_word_bits(layer, layer_fmt))
        layer_fmt = layer.requant.out
    bits = sorted(widths)[1]  # narrower than some layers' worst case, not all
    net = built_network(path, words=bits)
    assert [la.wrap_bits for la in net.linear_layers] == [bits if w > bits else 0 for w in widths]
    assert all(la.wrap_bits == 0 for la in exact.linear_layers)
    # The plan keeps every node, serial word and requantiser input within the word.
    for layer in net.linear_layers:
        if layer.wrap_bits:
            lp = LayerPlan(layer, fmt.lo, fmt.hi, fmt.bits)
            n = lp.graph.n_inputs
            assert max(lp.value_bits[n:]) <= layer.wrap_bits
            assert all(lp.requant_input_bits(i) <= layer.wrap_bits for i, o in enumerate(lp.graph.outputs) if o)
        break  # the first layer's input format is the network's


def test_calibrated_words_hold_the_calibration_batch_without_a_wrap(tmp_path):
    path = write_mlp(tmp_path / "m.onnx", [32, 16, 6], seed=5)
    batch = np.random.default_rng(1).standard_normal((200, 32))
    exact = built_network(path)
    net = run_passes(exact, (ChooseWordWidths("calibrated", batch, headroom=1.0),))
    assert any(la.wrap_bits for la in net.linear_layers)  # calibrated is narrower than the worst case
    q = golden.quantize_input(net, batch)
    wraps = golden.word_wraps(net, q)
    assert wraps is not None and wraps["samples_changed"] == 0
    assert all(la["samples_wrapped"] == 0 for la in wraps["layers"])
    # Each calibrated word is the narrowest that holds the batch's accumulators (headroom 1).
    x = q
    for layer in net.layers:
        acc = layer.accumulate(x)
        if layer.wrap_bits:
            need = signed_bits_for_range(min(int(acc.min()), 0), max(int(acc.max()), 0))
            assert layer.wrap_bits == max(need, 4)
        x = layer.integer_forward(x)
    with pytest.raises(ValueError, match="batch"):
        ChooseWordWidths("calibrated").apply(exact)


def test_the_golden_model_requantises_the_wrapped_accumulator(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [16, 8, 4], seed=3), words=8)
    layer = net.linear_layers[0]
    q = _codes(net, 20, seed=2)
    acc = layer.accumulate(q)
    assert (acc != wrap_signed(acc, 8)).any()
    assert np.array_equal(layer.integer_forward(q), layer.requant.apply(wrap_signed(acc, 8)))


def test_negated_outputs_at_the_words_most_negative_value(tmp_path):
    """An all-negative row's graph computes the sum and negates it: an accumulator of +2**(w-1)
    wraps to -2**(w-1), which a negation folded into the multiplier would get wrong."""
    w = np.array([[-0.5] * 4, [0, -0.5, 0, 0], [0.5, -0.5, 0.5, 0], [0.5, 0.5, 0, 0.5]])
    net = built_network(_single_layer_model(tmp_path / "m.onnx", w, np.array([0.1, -0.2, 0.3, 0.0])), words=8)
    layer = net.linear_layers[0]
    fmt = net.input_format
    lp = LayerPlan(layer, fmt.lo, fmt.hi, fmt.bits)
    assert layer.wrap_bits == 8 and lp.negated_wraps >= 2
    edge = [[-128, 0, 0, 0], [128, 0, 0, 0], [0, -128, 0, 0], [0, 128, 0, 0], [-64, -64, 0, 0], [-256, 128, 0, 0]]
    codes = np.concatenate([np.array(edge), _codes(net, 30, seed=4)])
    assert {128, -128} <= set(layer.accumulate(codes)[:, 0].tolist())
    _, outputs, _, _ = simulate(net, codes, stall=0.3, seed=2)
    assert outputs == golden.run_integer(net, codes).tolist()


@pytest.mark.parametrize("cycles", [1, 4])
def test_wrapping_words_in_parallel_serial_and_shared_layers(tmp_path, cycles):
    net = built_network(write_mlp(tmp_path / "m.onnx", [24, 12, 5], seed=8), words=9)
    net = run_passes(net, (ScheduleDigitWidths(cycles, share_requantisers=True),))
    assert all(la.wrap_bits == 9 for la in net.linear_layers)
    if cycles > 1:
        assert any(la.digit_bits for la in net.linear_layers)
        assert all(la.word_bits <= 9 for la in net.linear_layers if la.digit_bits)
        assert any(la.requant_units for la in net.linear_layers)
    codes = _codes(net, 24, seed=6)
    assert golden.word_wraps(net, codes)["samples_changed"] > 0
    _, outputs, _, _ = simulate(net, codes, stall=0.3, seed=3)
    assert outputs == golden.run_integer(net, codes).tolist()


@pytest.fixture(scope="module")
def wrapped_frames(tmp_path_factory):
    """A small classifier with 12-bit words: digit-serial convolutions with shared requantisers,
    graph quantisers (thresholds at 2 bits, one multiply at 8 and 16), MAC dense layers."""
    root = tmp_path_factory.mktemp("words")
    model = root / "vgg.onnx"
    onnx.save(vgg1d(channels=8, length=64, convs=3, dense=(32,), classes=4, seed=18, act_bits=(2, 8, 16)), str(model))
    out = build(model, "zcu111", root / "build", options=ArithmeticOptions(words=12), input_rate=0.25)
    return model, out.outdir


def test_wrapped_frame_network_reports_its_words(wrapped_frames):
    _, outdir = wrapped_frames
    report = json.loads((outdir / "report.json").read_text())
    assert report["options"]["words"] == 12
    network = Network.from_json((outdir / "network.json").read_text())
    wrapping = [la for la in network.linear_layers if la.wrap_bits]
    assert wrapping and all(la.wrap_bits == 12 for la in wrapping)
    kinds = {type(la.requant).__name__ for la in wrapping}
    assert kinds == {"Requant", "ThresholdRequant"}
    assert {la.realisation for la in wrapping} == {"graph", "mac"}
    ww = report["word_wraps"]
    assert [la["name"] for la in ww["layers"]] == [la.name for la in wrapping]
    assert all(row["acc_bits"] <= 12 for row in report["layers"] if row["name"] in {la.name for la in wrapping})
    assert 0 <= ww["samples_changed"] <= ww["samples"]
    assert "Accumulator words that wrap (--words 12)" in (outdir / "report.md").read_text()


# Icarus in `make test` (4-state: a wrapped word that reads X fails there first); both in `make bench`.
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.bench)])
def test_wrapped_frame_network_is_bit_exact(wrapped_frames, simulator):
    _, outdir = wrapped_frames
    vectors = 3 if simulator == "icarus" else 8
    r = verify(outdir, simulator, vectors=vectors, seed=4, stall=0.3)
    assert (r.passed, r.failed, r.extra_outputs) == (vectors, 0, 0), r.mismatches
    assert r.measured_latency_cycles == r.expected_latency_cycles


def test_word_wraps_count_the_samples_a_wrap_changes(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [16, 8, 4], seed=3), words=9)
    q = _codes(net, 40, seed=9)
    ww = golden.word_wraps(net, q)
    exact = net.with_layers(tuple(replace(la, wrap_bits=0) for la in net.layers))
    changed = (golden.run_integer(net, q) != golden.run_integer(exact, q)).any(axis=1)
    assert ww["samples_changed"] == int(changed.sum()) > 0
    first = net.linear_layers[0]
    acc = first.accumulate(q)
    assert ww["layers"][0]["samples_wrapped"] == int((acc != wrap_signed(acc, 9)).any(axis=1).sum())


def test_words_on_the_command_line(tmp_path, capsys):
    model = write_mlp(tmp_path / "m.onnx", [16, 8, 4], seed=3)
    for bad in ("3", "wide"):
        with pytest.raises(SystemExit) as e:
            main([str(model), "--board", "zcu111", "-o", str(tmp_path / "x"), "--words", bad])
        assert e.value.code == 2
        assert "--words" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main([str(model), "--board", "zcu111", "-o", str(tmp_path / "b"), "--words", "8", "-q"]) == 0
    err = capsys.readouterr().err
    assert "--words exact" in err  # the accuracy guard names the wrapped words
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["word_wraps"]["samples_changed"] > 0
    # verify and golden take the build's words from the folder; a different one is refused.
    assert main(["verify", str(tmp_path / "b"), "--words", "10", "--simulator", "icarus", "--vectors", "2"]) == 2
    assert "--words 10 differs from the build" in capsys.readouterr().err
