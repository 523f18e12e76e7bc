"""Common-subexpression merging: exact graphs, depth limits, determinism, cache, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwgen.cse_tool import cse_main
from hwgen.errors import TwnError
from hwgen.ir.adder_graph import AdderGraph
from hwgen.passes import merge_pairs
from hwgen.passes.merge_pairs import (
    default_max_depth,
    merged_adder_graph,
    merged_adder_graph_cached,
    min_depth,
)
from hwgen.passes.naive_tree import naive_adder_count

REPO = Path(__file__).resolve().parent.parent

VALUE_SETS = {
    "ternary": [-1, 0, 1],
    "binary": [-1, 1],
    "unsigned-binary": [0, 1],
    "int4": list(range(-8, 8)),
    "int8": list(range(-128, 128)),
    "zero": [0],
}


def check_graph(graph: AdderGraph, w: np.ndarray, max_depth: int | None = None) -> None:
    """The graph computes w exactly, within the depth limit, never worse than naive."""
    w = np.asarray(w, dtype=np.int64)
    assert graph.n_inputs == w.shape[1]
    assert len(graph.outputs) == w.shape[0]
    assert np.array_equal(graph.coefficients(), w)
    x = np.random.default_rng(7).integers(-(2**20), 2**20, size=(4, w.shape[1]))
    assert np.array_equal(graph.evaluate(x).astype(np.int64).reshape(4, w.shape[0]), x @ w.T)
    limit = default_max_depth(w) if max_depth is None else max_depth
    assert graph.depth <= limit
    assert graph.adders <= naive_adder_count(w)
    for k, node in enumerate(graph.nodes):  # at most one operand negated
        assert not (node.a.negate and node.b.negate), k


def random_matrix(shape: tuple[int, int], values: list[int], seed: int, zeros: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.choice(values, size=shape).astype(np.int64)
    if zeros:
        w[rng.random(shape) < zeros] = 0
    return w


SHAPES = [(0, 0), (0, 4), (4, 0), (1, 1), (1, 9), (9, 1), (5, 7), (16, 12), (12, 33)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("values", list(VALUE_SETS), ids=str)
def test_exact_on_random_matrices(shape: tuple[int, int], values: str) -> None:
    w = random_matrix(shape, VALUE_SETS[values], seed=shape[0] * 100 + shape[1])
    check_graph(merged_adder_graph(w), w)


@pytest.mark.parametrize("zeros", [0.25, 0.5, 0.75])
def test_exact_on_sparse_ternary(zeros: float) -> None:
    w = random_matrix((24, 40), [-1, 1], seed=3, zeros=zeros)
    check_graph(merged_adder_graph(w), w)


def test_dense_binary_merges_well() -> None:
    w = random_matrix((32, 48), [-1, 1], seed=4)
    graph = merged_adder_graph(w)
    check_graph(graph, w)
    assert graph.adders < 0.45 * naive_adder_count(w)


def test_special_rows() -> None:
    w = np.zeros((6, 8), np.int64)
    w[1, 3] = 1  # a single +1: the output is the input itself
    w[2, 5] = -1  # a single -1: the output is the negated input
    w[3] = [1, -1, 0, 1, 1, 0, -1, 1]
    w[4] = -w[3]  # the same sum negated: shared entirely
    w[5] = w[3]
    graph = merged_adder_graph(w)
    check_graph(graph, w)
    assert graph.outputs[0] is None
    assert graph.outputs[1] is not None and (graph.outputs[1].value, graph.outputs[1].negate) == (3, False)
    assert graph.outputs[2] is not None and (graph.outputs[2].value, graph.outputs[2].negate) == (5, True)
    assert graph.adders == 5  # one tree of six terms serves rows 3, 4 and 5
    assert graph.outputs[3] is not None and graph.outputs[4] is not None
    assert graph.outputs[3].value == graph.outputs[4].value == graph.outputs[5].value  # type: ignore[union-attr]


def test_low_bit_integers_use_shifts() -> None:
    w = np.array([[3, 6, 0, -12], [6, 12, 5, 0], [-3, -6, 5, 7], [127, -128, 64, 1]], np.int64)
    graph = merged_adder_graph(w)
    check_graph(graph, w)
    assert any(op.shift for node in graph.nodes for op in (node.a, node.b))


def test_integral_floats_and_bools_are_accepted() -> None:
    w = random_matrix((6, 9), [-1, 0, 1], seed=5)
    check_graph(merged_adder_graph(w.astype(np.float32)), w)
    check_graph(merged_adder_graph(w != 0), (w != 0).astype(np.int64))


@pytest.mark.parametrize(
    "bad", [np.zeros(3), np.full((2, 2), 0.5), np.array([[np.nan, 1.0]]), np.array([["a"]])], ids=str
)
def test_bad_weights_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(TwnError):
        merged_adder_graph(bad)


def test_merging_beats_naive_on_a_sparse_ternary_layer() -> None:
    w = random_matrix((64, 64), [-1, 1], seed=6, zeros=0.5)
    graph = merged_adder_graph(w)
    check_graph(graph, w)
    assert graph.adders < naive_adder_count(w)
    assert graph.adders < 0.6 * naive_adder_count(w)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(0, 10),
    cols=st.integers(0, 14),
    values=st.sampled_from(["ternary", "binary", "unsigned-binary", "int4"]),
    zeros=st.sampled_from([0.0, 0.3, 0.6, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_property_exact_within_depth(rows: int, cols: int, values: str, zeros: float, seed: int) -> None:
    w = random_matrix((rows, cols), VALUE_SETS[values], seed, zeros)
    check_graph(merged_adder_graph(w), w)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 10),
    cols=st.integers(1, 16),
    extra=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_property_explicit_depth_limit(rows: int, cols: int, extra: int, seed: int) -> None:
    w = random_matrix((rows, cols), [-1, 0, 1], seed)
    limit = min_depth(w) + extra
    check_graph(merged_adder_graph(w, max_depth=limit), w, max_depth=limit)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    values=st.sampled_from(["ternary", "binary", "int4"]),
    extra=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_property_transposed_search_keeps_depth(rows: int, cols: int, values: str, extra: int, seed: int) -> None:
    """The search on W.T bounds the depth of its transpose by construction (no rejection needed)."""
    w = random_matrix((rows, cols), VALUE_SETS[values], seed, zeros=0.3)
    limit = min_depth(w) + extra
    terms = merge_pairs._expand(np.ascontiguousarray(w.T))
    uses = np.count_nonzero(terms.matrix, axis=0).tolist()
    tracker = merge_pairs._TransposeDepth(uses, terms.slot_input, rows, limit)
    ext = merge_pairs._Extraction(terms.matrix, 40, seed, 3, transpose_depth=tracker).run()
    graph = merge_pairs._transposed_graph(ext, terms, cols, rows)
    check_graph(graph, w, max_depth=limit)


def test_default_depth_limit() -> None:
    w = random_matrix((48, 96), [-1, 1], seed=8, zeros=0.5)
    most = int(np.count_nonzero(w, axis=1).max())
    assert default_max_depth(w) == int(np.ceil(np.log2(most))) + 2
    check_graph(merged_adder_graph(w), w)


def test_tightest_depth_limit() -> None:
    w = random_matrix((48, 96), [-1, 1], seed=8, zeros=0.5)
    tight = min_depth(w)
    graph = merged_adder_graph(w, max_depth=tight)
    check_graph(graph, w, max_depth=tight)
    assert graph.adders < naive_adder_count(w)


def test_depth_below_the_minimum_is_refused() -> None:
    w = random_matrix((4, 16), [-1, 1], seed=9)
    with pytest.raises(TwnError, match="max_depth must be at least 4"):
        merged_adder_graph(w, max_depth=3)


def test_deterministic() -> None:
    w = random_matrix((40, 60), [-1, 1], seed=10, zeros=0.5)
    assert merged_adder_graph(w).to_json() == merged_adder_graph(w).to_json()
    assert merged_adder_graph(w, seed=3).to_json() == merged_adder_graph(w, seed=3).to_json()
    check_graph(merged_adder_graph(w, seed=-7), w)


def test_independent_of_hash_seed(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", random_matrix((30, 50), [-1, 1], seed=11, zeros=0.5))
    code = (
        "import json, sys, numpy as np; from hwgen.passes.merge_pairs import merged_adder_graph; "
        f"print(json.dumps(merged_adder_graph(np.load({str(tmp_path / 'w.npy')!r})).to_json()))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hs, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hs in ("1", "2")
    }
    assert len(outs) == 1


# --------------------------------------------------------------------------
# Cache


def test_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = random_matrix((20, 30), [-1, 1], seed=12, zeros=0.5)
    first = merged_adder_graph_cached(w, cache_dir=tmp_path)
    entries = list(tmp_path.glob("*.json"))
    assert len(entries) == 1
    assert not list(tmp_path.glob(".merge-*"))  # no temporary file left behind

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed despite a valid cache entry")

    monkeypatch.setattr(merge_pairs, "merged_adder_graph", refuse)
    assert merged_adder_graph_cached(w, cache_dir=tmp_path).to_json() == first.to_json()


def test_cache_keys_differ_by_depth_and_weights(tmp_path: Path) -> None:
    w = random_matrix((20, 30), [-1, 1], seed=12, zeros=0.5)
    merged_adder_graph_cached(w, cache_dir=tmp_path)
    merged_adder_graph_cached(w, max_depth=min_depth(w), cache_dir=tmp_path)
    w2 = w.copy()
    w2[0, 0] = 1 - w2[0, 0]
    merged_adder_graph_cached(w2, cache_dir=tmp_path)
    merged_adder_graph_cached(w.reshape(30, 20), cache_dir=tmp_path)  # same bytes, other shape
    assert len(list(tmp_path.glob("*.json"))) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-matrix", "empty"])
def test_corrupt_cache_entry_is_recomputed(tmp_path: Path, damage: str) -> None:
    w = random_matrix((20, 30), [-1, 1], seed=13, zeros=0.5)
    good = merged_adder_graph_cached(w, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.json")
    text = entry.read_text()
    if damage == "garbage":
        entry.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif damage == "other-matrix":
        other = merged_adder_graph(random_matrix((20, 30), [-1, 1], seed=14, zeros=0.5))
        entry.write_text(json.dumps(other.to_json()))
    else:
        entry.write_text("")
    again = merged_adder_graph_cached(w, cache_dir=tmp_path)
    check_graph(again, w)
    assert again.to_json() == good.to_json()
    assert json.loads(entry.read_text()) == good.to_json()  # the entry was repaired


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWNGEN_CACHE", str(tmp_path / "env-cache"))
    w = random_matrix((8, 12), [-1, 0, 1], seed=15)
    merged_adder_graph_cached(w)
    assert len(list((tmp_path / "env-cache").glob("*.json"))) == 1


def test_unwritable_cache_is_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    w = random_matrix((8, 12), [-1, 0, 1], seed=16)
    check_graph(merged_adder_graph_cached(w, cache_dir=blocker / "cache"), w)


# --------------------------------------------------------------------------
# twngen cse


def run_cse(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cse_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cse_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = random_matrix((16, 24), [-1, 1], seed=17, zeros=0.5)
    np.savetxt(tmp_path / "w.csv", w, fmt="%d", delimiter=",")
    status, out, err = run_cse(capsys, str(tmp_path / "w.csv"), "--json", "--no-cache")
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {"naive", "adders", "depth", "seconds"}
    assert report["naive"] == naive_adder_count(w)
    assert report["adders"] == merged_adder_graph(w).adders
    assert report["depth"] <= default_max_depth(w)


def test_cse_text_transpose_and_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = random_matrix((16, 24), [-1, 1], seed=18, zeros=0.5)
    np.save(tmp_path / "w.npy", w.T)  # inputs x outputs on disk
    tight = min_depth(w)
    status, out, err = run_cse(capsys, str(tmp_path / "w.npy"), "--transpose", "--max-depth", str(tight), "--no-cache")
    assert status == 0, err
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["naive adders"] == str(naive_adder_count(w))
    assert int(fields["merged adders"].split()[0]) == merged_adder_graph(w, max_depth=tight).adders
    assert int(fields["depth"]) <= tight
    assert float(fields["seconds"]) >= 0


def test_cse_uses_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWNGEN_CACHE", str(tmp_path / "cache"))
    np.save(tmp_path / "w.npy", random_matrix((8, 12), [-1, 0, 1], seed=19))
    assert run_cse(capsys, str(tmp_path / "w.npy"), "--json")[0] == 0
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.csv", None),
        ("frac.csv", "1,0.5\n0,1\n"),
        ("nan.csv", "1,nan\n0,1\n"),
        ("inf.npy", np.array([[1.0, np.inf]])),
        ("word.csv", "1,x\n"),
        ("ragged.csv", "1,0,1\n0,1\n"),
        ("empty.csv", ""),
        ("cube.npy", np.zeros((2, 2, 2))),
        ("vector.npy", np.zeros(3)),
        ("big.csv", "1,200\n"),
        ("small.npy", np.array([[-129, 0]])),
        ("strings.npy", np.array([["a", "b"]])),
        ("matrix.txt", "1,0\n"),
        ("broken.npy", "not numpy"),
    ],
)
def test_cse_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: object) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    status, out, err = run_cse(capsys, str(path), "--no-cache")
    assert status == 2
    assert out == ""
    assert err.startswith("twngen: error:")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--max-depth", "1"], ["--max-depth", "x"], ["--frobnicate"], []])
def test_cse_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    np.save(tmp_path / "w.npy", random_matrix((4, 16), [-1, 1], seed=20))
    args = [str(tmp_path / "w.npy"), "--no-cache", *argv] if argv else []
    status, _, err = run_cse(capsys, *args)
    assert status == 2
    assert err.startswith("twngen: error:")
    assert err.count("\n") == 1


def test_cse_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cse(capsys, "--help")
    assert status == 0
    assert "--max-depth" in out


# --------------------------------------------------------------------------
# Scale: the memory budget, the bounded strategy, effort, parallel runs

MODELS = REPO / "tests" / "fixtures" / "models"


def model_matrices() -> dict[str, np.ndarray]:
    """The weight matrices of the shared trained models (quantised, no adder graphs)."""
    from hwgen.build import ArithmeticOptions, quantized_network
    from hwgen.ir import LinearLayer

    out = {}
    for file in ("tfc_2w2a_qonnx.onnx", "bnn_cnn_mnist_plain.onnx"):
        network, _ = quantized_network(MODELS / file, ArithmeticOptions())
        for layer in network.layers:
            if isinstance(layer, LinearLayer):
                out[f"{Path(file).stem}:{layer.name}"] = np.asarray(layer.weights, np.int64)
    return out


@pytest.fixture(scope="module")
def trained() -> dict[str, np.ndarray]:
    return model_matrices()


@pytest.mark.parametrize("layer", ["tfc_2w2a_qonnx:MatMul_32", "bnn_cnn_mnist_plain:Conv_14"])
@pytest.mark.parametrize("orientation", ["direct", "transposed"])
def test_memory_estimate_covers_the_measured_peak(trained: dict[str, np.ndarray], layer: str, orientation: str) -> None:
    """One search run never allocates more than the model the budget is checked against."""
    import tracemalloc

    w = trained[layer]
    search = merge_pairs._Search(
        merge_pairs._expand(w), merge_pairs._expand(np.ascontiguousarray(w.T)), default_max_depth(w), 0, w.shape
    )
    terms = search.direct if orientation == "direct" else search.transposed
    tracemalloc.start()
    try:
        graph = search.run(orientation, 0, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert graph is not None
    check_graph(graph, w)
    assert peak <= merge_pairs._search_bytes(terms.matrix)
    assert merge_pairs._search_bytes(terms.matrix) <= merge_pairs.merge_memory_estimate(w)


def test_candidate_pair_estimate_is_close_to_the_count() -> None:
    w = random_matrix((64, 300), [-1, 1], seed=21, zeros=0.75)
    f = w.astype(np.float32)
    both, agree = np.abs(f).T @ np.abs(f), f.T @ f
    exact = sum(int(np.count_nonzero(np.triu(np.rint(c / 2), 1) >= 2)) for c in (both + agree, both - agree))
    assert abs(merge_pairs._candidate_pairs(w) - exact) <= 0.05 * exact


def test_over_budget_layer_is_merged_in_blocks_and_says_so(trained: dict[str, np.ndarray]) -> None:
    w = trained["bnn_cnn_mnist_plain:Conv_14"]
    budget = merge_pairs.merge_memory_estimate(w) - 1
    said: list[str] = []
    graph = merged_adder_graph(w, memory_budget=budget, name="layer Conv_14", notice=said.append)
    check_graph(graph, w)
    assert len(said) == 1
    assert "layer Conv_14, a 32 x 288 weight matrix" in said[0]
    assert "in 2 blocks of about 144 inputs" in said[0] and "--merge-memory" in said[0]
    # Whole again once the budget allows.
    assert merge_pairs._merge_plan(w, budget + 1, None).spans == [(0, 288)]


def test_blocks_keep_an_explicit_depth_limit() -> None:
    w = random_matrix((24, 160), [-1, 1], seed=22, zeros=0.5)
    limit = min_depth(w) + 1
    budget = merge_pairs.merge_memory_estimate(w[:, :40]) + 1  # four blocks of 40 inputs
    said: list[str] = []
    graph = merged_adder_graph(w, max_depth=limit, memory_budget=budget, notice=said.append)
    check_graph(graph, w, max_depth=limit)
    assert "in 4 blocks" in said[0]


def test_budget_too_small_for_any_block_is_a_twn_error() -> None:
    w = random_matrix((20, 64), [-1, 1], seed=23, zeros=0.5)
    with pytest.raises(TwnError, match=r"layer fc9, a 20 x 64 weight matrix .*--merge-memory \d"):
        merged_adder_graph(w, memory_budget=1 << 20, name="layer fc9")
    with pytest.raises(TwnError, match="--adder-graph naive"):
        merged_adder_graph_cached(w, memory_budget=1 << 20)


def test_high_effort_never_has_more_adders(trained: dict[str, np.ndarray]) -> None:
    w = trained["bnn_cnn_mnist_plain:Conv_6"]
    default = merged_adder_graph(w)
    high = merged_adder_graph(w, effort="high")
    check_graph(high, w)
    assert high.adders <= default.adders


HIGH_EFFORT_MATRICES = {
    "ternary 40x20": (random_matrix((40, 20), [-1, 1], seed=40, zeros=0.5), None),
    "binary 12x30": (random_matrix((12, 30), [-1, 1], seed=41), None),
    "ternary 24x16, least depth": (random_matrix((24, 16), [-1, 1], seed=42, zeros=0.4), "least"),
    "int4 8x10": (random_matrix((8, 10), list(range(-8, 8)), seed=43), None),
}


@pytest.mark.parametrize("name", sorted(HIGH_EFFORT_MATRICES))
def test_high_effort_is_exact_deterministic_and_never_worse(name: str) -> None:
    w, depth = HIGH_EFFORT_MATRICES[name]
    limit = min_depth(w) if depth == "least" else None
    default = merged_adder_graph(w, max_depth=limit)
    high = merged_adder_graph(w, max_depth=limit, effort="high")
    check_graph(high, w, max_depth=limit)
    assert high.adders <= default.adders
    assert merged_adder_graph(w, max_depth=limit, effort="high").to_json() == high.to_json()


def test_ruin_and_recreate_finds_the_sharing_a_naive_graph_lacks() -> None:
    from hwgen.passes.naive_tree import naive_adder_graph

    w = random_matrix((40, 30), [-1, 1], seed=44, zeros=0.5)
    naive = naive_adder_graph(w)
    improved = merge_pairs._remerged(naive, default_max_depth(w), 0, 40)
    check_graph(improved, w)
    assert improved.adders < naive.adders - 20


@pytest.mark.parametrize("orientation", ["direct", "transposed"])
def test_shared_sums_rebuild_the_same_graph(orientation: str) -> None:
    w = random_matrix((24, 36), [-1, 1], seed=45, zeros=0.5)
    search = merge_pairs._Search(
        merge_pairs._expand(w), merge_pairs._expand(np.ascontiguousarray(w.T)), default_max_depth(w), 0, w.shape
    )
    graph = search.run(orientation, 0, 3)
    assert graph is not None
    sums = merge_pairs._sums_of(graph)
    assert sums is not None
    assert sums.adders == graph.adders
    rebuilt = sums.compact().graph()
    check_graph(rebuilt, w)
    assert rebuilt.adders == graph.adders


def test_unknown_effort_is_refused() -> None:
    with pytest.raises(TwnError, match="merge effort must be one of default, high, not 'max'"):
        merged_adder_graph(np.eye(3, dtype=np.int64), effort="max")


def test_default_cache_key_is_unchanged_and_effort_is_part_of_it(tmp_path: Path) -> None:
    import hashlib

    w = random_matrix((10, 14), [-1, 1], seed=25, zeros=0.5)
    old = hashlib.sha256(f"twngen-merge-v1|{w.shape}|None|".encode() + w.astype("<i8").tobytes()).hexdigest()
    assert merge_pairs._cache_key(w, None) == old  # existing caches stay valid
    merged_adder_graph_cached(w, cache_dir=tmp_path)
    merged_adder_graph_cached(w, cache_dir=tmp_path, effort="high")
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted([old, merge_pairs._cache_key(w, None, "high")])


def test_parallel_runs_give_the_same_graphs() -> None:
    w = random_matrix((30, 50), [-1, 1], seed=26, zeros=0.5)
    search = merge_pairs._Search(
        merge_pairs._expand(w), merge_pairs._expand(np.ascontiguousarray(w.T)), default_max_depth(w), 0, w.shape
    )
    attempts = [("direct", 0, 3), ("transposed", 0, 3), ("direct", 1, 4)]
    one = list(merge_pairs._run_all(search, attempts, 1))
    two = list(merge_pairs._run_all(search, attempts, 2))
    assert [g.to_json() for g in one if g] == [g.to_json() for g in two if g]


def test_cse_effort_and_memory_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = random_matrix((20, 120), [-1, 1], seed=27, zeros=0.5)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "small.npy", random_matrix((16, 24), [-1, 1], seed=30, zeros=0.4))
    status, out, err = run_cse(capsys, str(tmp_path / "small.npy"), "--json", "--merge-effort", "high")
    assert status == 0, err
    assert json.loads(out)["adders"] == 122  # the default finds 127
    gb = (merge_pairs.merge_memory_estimate(w) - 1) / (1 << 30)
    status, out, err = run_cse(capsys, str(tmp_path / "w.npy"), "--json", "--no-cache", "--merge-memory", f"{gb:.9f}")
    assert status == 0, err
    assert err.startswith("twngen: w.npy, a 20 x 120 weight matrix") and "blocks" in err
    blocks = merged_adder_graph(w, memory_budget=int(gb * (1 << 30)), notice=lambda _: None)
    assert json.loads(out)["adders"] == blocks.adders
    status, out, err = run_cse(capsys, str(tmp_path / "w.npy"), "--no-cache", "--merge-memory", "0.001")
    assert status == 2 and out == ""
    assert err.startswith("twngen: error: w.npy, a 20 x 120 weight matrix") and "--merge-memory" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--merge-effort", "max"], ["--merge-memory", "0"], ["--merge-memory", "lots"]])
def test_cse_bad_scale_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    np.save(tmp_path / "w.npy", random_matrix((4, 16), [-1, 1], seed=28))
    status, _, err = run_cse(capsys, str(tmp_path / "w.npy"), "--no-cache", *argv)
    assert status == 2
    assert err.startswith("twngen: error:") and err.count("\n") == 1


def test_the_merge_plan_does_not_depend_on_the_memory_free_now(monkeypatch):
    """Same options, same graph: the default budget is a constant; the memory free now only limits
    what runs side by side, and a merge that cannot fit it is refused, never planned otherwise."""
    w = np.random.default_rng(8).choice([-1, 0, 1], size=(48, 160), p=[0.3, 0.4, 0.3])
    assert merge_pairs.default_memory_budget() == merge_pairs.DEFAULT_MERGE_MEMORY
    graphs = []
    for free in (64 << 30, 2 * merge_pairs.merge_memory_estimate(w)):
        monkeypatch.setattr(merge_pairs, "available_memory", lambda free=free: free)
        assert merge_pairs._merge_plan(w, None, None).spans == [(0, 160)]
        graphs.append(merged_adder_graph(w))
    assert graphs[0].adders == graphs[1].adders and graphs[0].nodes == graphs[1].nodes
    monkeypatch.setattr(merge_pairs, "available_memory", lambda: 1 << 20)
    with pytest.raises(TwnError, match=r"layer fc3, a 48 x 160 .* is available now: give --merge-memory"):
        merged_adder_graph(w, name="layer fc3")
