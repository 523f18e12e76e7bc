"""Differential fuzzing, seeded set: random supported networks checked three ways (see fuzz_networks).

The long campaign is ``make fuzz`` (``bench/fuzz.py``); every case it finds
failing is kept under ``tests/fixtures/fuzz/<case>/`` (``model.onnx`` and
``case.json`` with the seed) and replayed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_networks import (
    NetworkSpec,
    build_case,
    check_golden_vs_onnxruntime,
    check_lint,
    check_merged_graphs,
    check_rtl,
    error_bound,
    network_from_seed,
    networks,
    to_onnx,
    with_rate,
)
from hypothesis import HealthCheck, given, settings

from hwgen.build import ArithmeticOptions, prepare_network
from hwgen.frontend.weights import factor_weights

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fuzz"

#: Seeds of network_from_seed simulated in `make test`, different networks on
#: each simulator: dense (low-bit, zero rows, digit-serial), 1-D and 2-D
#: convolutions with pooling and batch norm (also negative), strides and
#: asymmetric padding. On Verilator, long runs with heavy stalls on both sides
#: (the short form of bench/stall.py): (seed, vectors).
RTL_SEEDS = {"icarus": ((36, 12), (21, 12), (3, 12)), "verilator": ((47, 300), (25, 100))}


def _prepared(tmp_path: Path, spec: NetworkSpec):  # type: ignore[no-untyped-def]
    path = tmp_path / "model.onnx"
    onnx.save(to_onnx(spec), str(path))
    network, _ = prepare_network(path, ArithmeticOptions())
    return path, network


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(spec=networks())
def test_golden_matches_onnxruntime_and_graphs_match_weights(tmp_path_factory, spec):
    """Golden within the formats' error bound of onnxruntime; every merged graph computes W exactly."""
    path, network = _prepared(tmp_path_factory.mktemp("fuzz"), spec)
    result = check_golden_vs_onnxruntime(path, network)
    assert result["max_abs_error"] <= result["bound"]
    assert check_merged_graphs(network) >= 1


@pytest.mark.parametrize("seed", range(20))
def test_seeded_networks_golden_and_graphs(tmp_path, seed):
    """The campaign's own generator (seeded), the cheap checks only."""
    path, network = _prepared(tmp_path, network_from_seed(seed))
    check_golden_vs_onnxruntime(path, network)
    check_merged_graphs(network)


def test_the_error_bound_catches_a_wrong_golden_model(tmp_path):
    """The check can fail: the last requantisation's offset moved by twice the bound is caught."""
    from dataclasses import replace

    from hwgen.ir import LinearLayer

    spec = network_from_seed(11)
    path, network = _prepared(tmp_path, spec)
    last = max(i for i, la in enumerate(network.layers) if isinstance(la, LinearLayer))
    layer = network.layers[last]
    codes = int(np.ceil(2 * error_bound(network) / layer.requant.out.resolution))
    offset = tuple(o + codes * (1 << s) for o, s in zip(layer.requant.offset, layer.requant.shift, strict=True))
    wrong = replace(layer.requant, offset=offset)
    bad = replace(network, layers=(*network.layers[:last], replace(layer, requant=wrong), *network.layers[last + 1 :]))
    assert error_bound(bad) == error_bound(network)
    with pytest.raises(AssertionError, match="golden-vs-ort"):
        check_golden_vs_onnxruntime(path, bad)


def test_the_graph_check_catches_a_wrong_graph(tmp_path):
    """The check can fail: one output of a merged graph negated."""
    from dataclasses import replace

    from hwgen.ir import LinearLayer

    _, network = _prepared(tmp_path, network_from_seed(11))
    k, layer = next((k, la) for k, la in enumerate(network.layers) if isinstance(la, LinearLayer))
    graph = layer.adder_graph
    j = next(j for j, o in enumerate(graph.outputs) if o is not None)
    outputs = list(graph.outputs)
    outputs[j] = replace(outputs[j], negate=not outputs[j].negate)
    bad = replace(layer, adder_graph=replace(graph, outputs=tuple(outputs)))
    with pytest.raises(AssertionError, match="merge-coefficients"):
        check_merged_graphs(replace(network, layers=(*network.layers[:k], bad, *network.layers[k + 1 :])))


@pytest.mark.parametrize(
    "simulator, seed, vectors", [(sim, seed, n) for sim, cases in RTL_SEEDS.items() for seed, n in cases]
)  # fmt: skip
def test_seeded_networks_rtl_matches_golden(tmp_path, simulator, seed, vectors):
    """Build, check the report's stated error, simulate: every frame out once, in order, bit-exact."""
    spec = network_from_seed(seed)
    model, network, report, outdir = build_case(spec, tmp_path)
    check_golden_vs_onnxruntime(model, network, report)
    check_merged_graphs(network)
    stall = 0.5 if vectors > 12 else 0.3
    assert check_rtl(outdir, simulator, vectors=vectors, seed=seed, stall=stall)["passed"] == vectors


#: Seeds of network_from_seed linted at full rate and at a quarter of it (digit-serial layers):
#: 2-D convolutions with pooling and a dense tail (4, 7), a 1-D convolution chain (1), a dense
#: network (21).
LINT_SEEDS = (4, 7, 1, 21)


@pytest.mark.parametrize("rate", ["full", "serial"])
@pytest.mark.parametrize("seed", LINT_SEEDS)
def test_seeded_networks_rtl_is_lint_clean(tmp_path, seed, rate):
    """verilator --lint-only -Wall with only the documented waivers (tests/test_rom.py shows the
    check catching the constant table it was written for)."""
    _, _, report, outdir = build_case(with_rate(network_from_seed(seed), rate), tmp_path)
    serial = [layer["arithmetic"] for layer in report["layers"] if "serial" in layer["arithmetic"]]
    assert serial or rate == "full", [layer["arithmetic"] for layer in report["layers"]]
    assert check_lint(outdir) == {"files": 2}


#: Seeds of network_from_seed(seed, "lanes2d") (2-D networks at 2 or 4 pixels a cycle) simulated
#: in `make test`: two overlapping 3x3 pools over two lanes (6), four lanes through two 2x2 pools
#: (10), a dense layer reading a frame of four lanes (0), a network ending on an overlapping pool
#: in two lanes (186) on Verilator; on Icarus, slow on 2-D
#: designs, small ones: a 3x3 pool of stride 2 over two lanes (38), four lanes halved by a pool
#: into a dense layer reading two (3). (seed, vectors).
LANE_RTL_SEEDS = {"verilator": ((6, 20), (10, 20), (0, 20), (186, 20)), "icarus": ((38, 4), (3, 4))}
#: Of those, left to `make bench` (pytest -m bench) to keep `make test` under ten minutes (an
#: overlapping pool over lanes is also tests/test_frames.py's, on Verilator).
LANE_RTL_BENCH = {("verilator", 6), ("verilator", 10), ("verilator", 186), ("icarus", 3)}


@pytest.mark.parametrize("seed", range(12))
def test_seeded_lane_networks_fold_exactly(tmp_path, seed):
    """The 2-D lane generator's networks: the golden model within the error bound of onnxruntime,
    the build folds them into the lanes drawn (II = pixels / lanes), and the folded golden model
    computes exactly the unfolded one's integers."""
    from hwgen import golden
    from hwgen.build import scheduled_network
    from hwgen.verify import make_vectors

    spec = network_from_seed(seed, "lanes2d")
    assert spec.input_rate in (2.0, 4.0) and len(spec.in_shape) == 3
    path, network = _prepared(tmp_path, spec)
    check_golden_vs_onnxruntime(path, network)
    folded, _, _ = scheduled_network(path, ArithmeticOptions(), 250.0, input_rate=spec.input_rate)
    lanes = int(spec.input_rate)
    assert folded.input_lanes == lanes
    assert folded.initiation_interval == spec.in_shape[1] * spec.in_shape[2] // lanes
    check_merged_graphs(folded)
    codes = make_vectors(network, 16, seed=seed)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(network, codes))


@settings(max_examples=25, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=networks("lanes2d"))
def test_drawn_lane_networks_fold_exactly(tmp_path_factory, spec):
    """Hypothesis over the lane generator: every drawn network folds, and exactly."""
    from hwgen import golden
    from hwgen.passes import run_passes
    from hwgen.passes.fold_lanes import FoldLanes
    from hwgen.verify import make_vectors

    _, network = _prepared(tmp_path_factory.mktemp("lanes"), spec)
    folded = run_passes(network, (FoldLanes(int(spec.input_rate)),))
    codes = make_vectors(network, 8, seed=1)
    np.testing.assert_array_equal(golden.run_integer(folded, codes), golden.run_integer(network, codes))


@pytest.mark.parametrize(
    "simulator, seed, vectors",
    [
        pytest.param(sim, seed, n, marks=pytest.mark.bench if (sim, seed) in LANE_RTL_BENCH else ())
        for sim, cases in LANE_RTL_SEEDS.items()
        for seed, n in cases
    ],
)
def test_seeded_lane_networks_rtl_matches_golden(tmp_path, simulator, seed, vectors):
    """2-D networks at 2 or 4 pixels a cycle: bit-exact under stalls, linted."""
    spec = network_from_seed(seed, "lanes2d")
    model, network, report, outdir = build_case(spec, tmp_path)
    assert report["schedule"]["lanes"] == int(spec.input_rate)
    check_golden_vs_onnxruntime(model, network, report)
    assert check_rtl(outdir, simulator, vectors=vectors, seed=seed)["passed"] == vectors
    assert check_lint(outdir) == {"files": 2}


def test_low_bit_weights_without_a_unit_entry_factor_exactly():
    """Found by the fuzzer (tests/fixtures/fuzz/seed-1): an int4 channel holding only 5s and 7s
    was refused, because smallest/5 is not the exporter's float32 scale."""
    scale = np.float32(0.11095862)
    ints = np.array([[5, -7, 0, 7], [3, 0, -6, 0]], dtype=np.float32)
    w = ints * scale  # float32, as exporters compute it
    f = factor_weights(w, "node 'fc' (Gemm)", max_bits=4)
    assert np.array_equal((f.integers * f.scale[:, None]).astype(np.float32), w)
    assert np.array_equal(np.abs(f.integers) % 1, np.zeros_like(f.integers))
    assert f.bits <= 4


def _fixture_cases() -> list[object]:
    cases = []
    for case in sorted(FIXTURES.glob("*/case.json")):
        meta = json.loads(case.read_text())
        marks = [pytest.mark.xfail(strict=True, reason=meta["xfail"])] if meta.get("xfail") else []
        cases.append(pytest.param(case.parent, id=case.parent.name, marks=marks))
    return cases


@pytest.mark.parametrize("folder", _fixture_cases())
def test_fuzz_regressions_replay(tmp_path, folder):
    """Every case a campaign found failing: the stored model builds and passes every check again."""
    from hwgen.build import ArithmeticOptions, build

    meta = json.loads((folder / "case.json").read_text())
    spec = NetworkSpec.from_json(meta["spec"])
    if meta.get("seed") is not None:
        # The seed still reproduces the stored model (the generator has not drifted).
        generated = network_from_seed(meta["seed"], meta.get("generator", "default"))
        assert to_onnx(generated).SerializeToString() == to_onnx(spec).SerializeToString()
    model = folder / "model.onnx"
    options = ArithmeticOptions(words=meta.get("words", "exact"))
    result = build(model, "zcu111", tmp_path / "out", options, input_rate=spec.input_rate, allow_overflow=True)
    wraps = result.report.get("word_wraps")
    if not (wraps and wraps["samples_changed"]):  # wrapped words compute another function
        check_golden_vs_onnxruntime(model, result.network, result.report)
    check_merged_graphs(result.network)
    for simulator in meta.get("simulators", []):
        check_rtl(result.outdir, simulator, vectors=12)
