"""Benchmark of common-subexpression merging against the anchors, side by side.

For every matrix: the naive adder count (pruned trees), the greedy pair
extraction of the published ternary generator (re-implemented here as a
reference, with a time budget), da4ml (when importable, run in a subprocess
with a time budget) and twngen's :func:`merged_adder_graph`; ratios and
seconds. Every graph is checked to compute its matrix exactly.

Matrices are named inputs x outputs (as the issue does): ``576x128`` is a
layer with 576 inputs and 128 outputs, i.e. a 128 x 576 weight matrix.

    .venv/bin/python bench/cse.py            # everything (tens of minutes)
    .venv/bin/python bench/cse.py --quick    # small matrices only
    .venv/bin/python bench/cse.py --no-da4ml
    .venv/bin/python bench/cse.py --scale    # image-network layer sizes: time, peak memory, effort
    .venv/bin/python bench/cse.py --bound    # small layers against the exact (ILP) optimum; needs scipy

``--scale`` merges trained-like layers of 1152 to 4608 inputs (and the two
speed-target matrices) each in a child process, at the default and the high
effort, and records wall and CPU seconds, the peak resident memory (the
child's ``ru_maxrss`` and that of its largest forked worker) and the adders,
with the greedy anchor (and da4ml where it finishes) beside them; results go
to ``bench/results/cse_scale.json`` and the table to ``bench/results/cse_scale.md``.

``--bound`` runs small layers (random ternary 8x8 to 16x16, the smallest
trained ones) through :func:`hwgen.passes.merge_bound.cancellation_free_bound`
and puts every tool's adders beside the optimum of cancellation-free graphs
(or HiGHS' lower bound when the time limit stops it): ``bench/results/cse_bound.{json,md}``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand  # noqa: E402
from hwgen.passes.merge_pairs import default_max_depth, merge_memory_estimate, merged_adder_graph  # noqa: E402
from hwgen.passes.naive_tree import naive_adder_count  # noqa: E402

MODELS = Path("/work/shared/models")
RANDOM_SHAPES = [(27, 64), (192, 64), (576, 128), (512, 512)]  # inputs x outputs
QUICK_SHAPES = [(27, 64), (192, 64)]
ZEROS = [0.25, 0.5, 0.75]


# --------------------------------------------------------------------------
# Matrices


def random_ternary(inputs: int, outputs: int, zeros: float, seed: int = 0) -> np.ndarray:
    """Seeded random ternary matrix, outputs x inputs, with the given fraction of zeros."""
    rng = np.random.default_rng(seed)
    p = (1 - zeros) / 2
    return rng.choice([-1, 0, 1], size=(outputs, inputs), p=[p, zeros, p]).astype(np.int64)


def _ternarize(x: np.ndarray, zeros: float) -> np.ndarray:
    t = np.quantile(np.abs(x), zeros)
    return (np.sign(x) * (np.abs(x) > t)).astype(np.int64)


def structured_ternary(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Synthetic stand-ins for trained layers: correlated rows and columns.

    Low-rank: the ternarised sign of a rank-r matrix plus noise (70% zeros).
    Prototypes: every filter is one of 8 random prototypes with 15% of its
    weights redrawn (filters that nearly repeat).
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray]] = []
    for outputs, inputs in [(64, 27), (64, 192), (128, 384)]:
        for rank in (4, 16):
            x = rng.normal(size=(outputs, rank)) @ rng.normal(size=(rank, inputs))
            x += 0.5 * rng.normal(size=(outputs, inputs))
            out.append((f"rank-{rank} {inputs}x{outputs}", _ternarize(x, 0.7)))
        protos = rng.choice([-1, 0, 1], size=(8, inputs), p=[0.15, 0.7, 0.15])
        w = protos[rng.integers(0, 8, size=outputs)].copy()
        redraw = rng.random((outputs, inputs)) < 0.15
        w[redraw] = rng.choice([-1, 0, 1], size=int(redraw.sum()), p=[0.15, 0.7, 0.15])
        out.append((f"8-prototype {inputs}x{outputs}", w.astype(np.int64)))
    return out


def trained_like(inputs: int, outputs: int, zeros: float, seed: int = 0, taps: int = 9) -> np.ndarray:
    """A stand-in for a trained ternary 3x3 convolution (outputs x inputs, inputs = channels x 9).

    Filters share structure (a rank-16 component), input channels differ in
    importance (a log-normal gain per channel, the same for its 9 taps), and
    the smallest magnitudes become zeros, as threshold ternarisation does.
    """
    rng = np.random.default_rng(seed)
    channels = -(-inputs // taps)
    x = rng.normal(size=(outputs, 16)) @ rng.normal(size=(16, inputs)) / 4.0
    x += rng.normal(size=(outputs, inputs))
    x *= np.repeat(rng.lognormal(0.0, 0.5, size=channels), taps)[:inputs][None, :]
    return _ternarize(x, zeros)


def _integer_levels(w: np.ndarray) -> np.ndarray | None:
    """w / scale as integers (per tensor, else per output channel) if they fit in 8 bits."""
    w = w.astype(np.float64)

    def try_scale(x: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
        q = x / scale
        r = np.rint(q)
        if np.all(np.abs(q - r) < 1e-4) and np.abs(r).max(initial=0) <= 127:
            return r.astype(np.int64) + 0  # +0 turns -0 into 0
        return None

    nz = np.abs(w[w != 0])
    if nz.size == 0:
        return np.zeros(w.shape, np.int64)
    per_tensor = try_scale(w, np.array(nz.min()))
    if per_tensor is not None:
        return per_tensor
    scales = np.array([np.abs(row[row != 0]).min() if np.any(row) else 1.0 for row in w])[:, None]
    return try_scale(w, scales)


def _consumer_layout(model: object, name: str) -> tuple[str, bool] | None:
    """Follow an initializer through Quant/Transpose/Identity to the op using it.

    Returns (op type, whether the tensor ends up transposed) or None.
    """
    nodes = list(model.graph.node)  # type: ignore[attr-defined]
    tensor, transposed = name, False
    for _ in range(8):
        users = [n for n in nodes if tensor in n.input]
        if len(users) != 1:
            return None
        node = users[0]
        if node.op_type in ("Quant", "Identity", "Cast", "BipolarQuant") and node.input[0] == tensor:
            tensor = node.output[0]
            continue
        if node.op_type == "Transpose":
            tensor, transposed = node.output[0], not transposed
            continue
        if node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            return ("Gemm", transposed != trans_b)
        return (node.op_type, transposed)
    return None


def model_layers(skipped: list[str]) -> list[tuple[str, np.ndarray]]:
    """Weight matrices (outputs x inputs) of the shared real models that are low-bit."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        skipped.append("models: onnx is not installed")
        return []
    layers: list[tuple[str, np.ndarray]] = []
    for file in ("tfc_2w2a_qonnx.onnx", "bnn_cnn_mnist_plain.onnx"):
        path = MODELS / file
        if not path.is_file():
            skipped.append(f"{file}: not found in {MODELS}")
            continue
        model = onnx.load(str(path))
        vectors = 0
        for init in model.graph.initializer:
            a = numpy_helper.to_array(init)
            label = f"{path.stem}:{init.name}"
            if a.ndim < 2:
                vectors += a.size > 1
                continue
            use = _consumer_layout(model, init.name)
            if use is None:
                skipped.append(f"{label} {list(a.shape)}: not the weight of one MatMul/Gemm/Conv")
                continue
            op, transposed = use
            if op == "Conv":
                w = a.reshape(a.shape[0], -1)  # O x (I*kh*kw)
            elif op in ("MatMul", "Gemm") and a.ndim == 2:
                # MatMul computes x @ B: B is inputs x outputs unless transposed on the way.
                w = a if transposed else a.T
            else:
                skipped.append(f"{label} {list(a.shape)}: used by {op}")
                continue
            q = _integer_levels(w)
            if q is None:
                skipped.append(f"{label} {list(a.shape)}: not low-bit after a per-tensor or per-channel scale")
                continue
            layers.append((f"{label} ({w.shape[1]}x{w.shape[0]})", q))
        if vectors:
            skipped.append(f"{path.stem}: {vectors} one-dimensional tensors (biases, batch-norm parameters)")
    return layers


# --------------------------------------------------------------------------
# The greedy anchor: Hartley's most-frequent signed pair, as in the
# published ternary generator


def greedy_pairs(w: np.ndarray, budget: float) -> AdderGraph | None:
    """Greedy pair extraction; None past ``budget`` seconds.

    Counts, for every pair of columns, the rows where both are nonzero with
    the same and with opposite signs; repeatedly makes the most frequent
    signed pair a new column (ties: lowest column indices), substitutes it in
    every row holding it or its negation, updates the counts of the pairs
    touching the changed columns, and stops when the best pair occurs once.
    The remaining terms of each row are then summed by a balanced tree.
    Lazy: a heap holds counts that can only be too high, re-checked on pop.
    """
    start = time.perf_counter()
    if w.size and np.abs(w).max() > 1:
        return None  # the anchor handles ternary matrices only
    n = w.shape[1]
    rows: list[dict[int, int]] = [
        {int(j): int(v) for j, v in zip(np.flatnonzero(r), r[r != 0], strict=True)} for r in w
    ]
    cols: list[set[int]] = [set(np.flatnonzero(w[:, j]).tolist()) for j in range(n)]
    heap: list[tuple[int, int, int, int]] = []
    f = w.astype(np.float32)
    both, agree = np.abs(f).T @ np.abs(f), f.T @ f
    for rel, counts in ((1, (both + agree) / 2), (-1, (both - agree) / 2)):
        a, b = np.nonzero(np.triu(counts, 1) >= 2)
        heap.extend((-round(float(counts[i, j])), int(i), int(j), rel) for i, j in zip(a, b, strict=True))
    heapq.heapify(heap)
    pairs: list[tuple[int, int, int]] = []
    while heap:
        if time.perf_counter() - start > budget:
            return None
        neg, a, b, rel = heapq.heappop(heap)
        hits = [r for r in cols[a] & cols[b] if rows[r][a] * rows[r][b] == rel]
        if len(hits) < 2:
            continue
        if len(hits) < -neg:
            heapq.heappush(heap, (-len(hits), a, b, rel))
            continue
        c = n + len(pairs)
        pairs.append((a, b, rel))
        cols.append(set())
        fresh: dict[tuple[int, int], int] = {}
        for r in hits:
            row = rows[r]
            sign = row.pop(a)
            del row[b]
            cols[a].discard(r)
            cols[b].discard(r)
            for k, v in row.items():
                key = (k, 1 if v == sign else -1)
                fresh[key] = fresh.get(key, 0) + 1
            row[c] = sign
            cols[c].add(r)
        for (k, r2), count in fresh.items():
            if count >= 2:
                heapq.heappush(heap, (-count, k, c, r2))
    # Build the graph: pairs in order, then one balanced tree per row.
    nodes: list[AddNode] = []
    handle = [Operand(j) for j in range(n)]
    for a, b, rel in pairs:
        nodes.append(AddNode(handle[a], Operand(handle[b].value, rel < 0)))
        handle.append(Operand(n + len(nodes) - 1))
    outputs: list[Operand | None] = []
    for row in rows:
        level = [Operand(handle[k].value, v < 0) for k, v in sorted(row.items())]
        if not level:
            outputs.append(None)
            continue
        while len(level) > 1:
            nxt = []
            for x, y in zip(level[0::2], level[1::2], strict=False):
                negate = x.negate and y.negate
                if negate:
                    x, y = Operand(x.value), Operand(y.value)
                elif x.negate:
                    x, y = y, x
                nodes.append(AddNode(x, y))
                nxt.append(Operand(n + len(nodes) - 1, negate))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        outputs.append(level[0])
    return AdderGraph(n, tuple(nodes), tuple(outputs))


# --------------------------------------------------------------------------
# da4ml, in a subprocess so that a time budget can stop it

_DA4ML = r"""
import json, sys, time
import numpy as np
from da4ml.cmvm import solve
w = np.load(sys.argv[1])
start = time.perf_counter()
# da4ml computes x @ K with K laid out inputs x outputs; it must be C-contiguous.
pipe = solve(np.ascontiguousarray(w.T, dtype=np.float32), search_all_decompose_dc=False)
seconds = time.perf_counter() - start
adders = sum(1 for s in pipe.solutions for op in s.ops if op.opcode in (0, 1))
exact = bool(np.array_equal(np.asarray(pipe.kernel), w.T))
print(json.dumps({"adders": adders, "seconds": seconds, "exact": exact}))
"""


def da4ml_available() -> bool:
    try:
        import da4ml  # noqa: F401
    except ImportError:
        return False
    return True


def run_da4ml(w: np.ndarray, budget: float) -> dict[str, object] | str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.npy"
        np.save(path, w)
        try:
            r = subprocess.run(
                [sys.executable, "-c", _DA4ML, str(path)], capture_output=True, text=True, timeout=budget, check=False
            )
        except subprocess.TimeoutExpired:
            return "timeout"
    if r.returncode != 0:
        return "error: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    result: dict[str, object] = json.loads(r.stdout)
    return result


# --------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    naive: int
    greedy: int | str
    greedy_s: float | None
    da4ml: int | str
    da4ml_s: float | None
    ours: int
    ours_depth: int
    ours_s: float
    limit: int | None = None


def _ratio(a: int, b: int | str) -> str:
    return f"{a / b:.3f}" if isinstance(b, int) and b else "-"


def _secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f}"


def bench_one(name: str, w: np.ndarray, args: argparse.Namespace) -> Row:
    naive = naive_adder_count(w)
    t = time.perf_counter()
    greedy = greedy_pairs(w, args.greedy_budget)
    greedy_s = time.perf_counter() - t
    if greedy is None:
        g_count: int | str = "timeout" if greedy_s > args.greedy_budget else "n/a"
        g_secs: float | None = None
    else:
        assert np.array_equal(greedy.coefficients(), w), f"greedy graph wrong on {name}"
        g_count, g_secs = greedy.adders, greedy_s
    d_count: int | str = "n/a"
    d_secs: float | None = None
    if args.da4ml:
        res = run_da4ml(w, args.da4ml_budget)
        if isinstance(res, dict):
            assert res["exact"], f"da4ml kernel wrong on {name}"
            d_count, d_secs = int(res["adders"]), float(res["seconds"])  # type: ignore[call-overload, arg-type]
        else:
            d_count = res
    t = time.perf_counter()
    ours = merged_adder_graph(w)
    ours_s = time.perf_counter() - t
    assert np.array_equal(ours.coefficients(), w), f"merged graph wrong on {name}"
    row = Row(name, naive, g_count, g_secs, d_count, d_secs, ours.adders, ours.depth, ours_s)
    print(
        f"  {name}: naive {naive}, greedy {g_count}, da4ml {d_count}, ours {ours.adders} "
        f"(depth {ours.depth}, {ours_s:.2f} s)",
        file=sys.stderr,
        flush=True,
    )
    return row


def table(rows: list[Row]) -> str:
    out = [
        "| matrix (in x out) | naive | greedy | da4ml | ours | ours/greedy | ours/da4ml | depth (limit) "
        "| greedy s | da4ml s | ours s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.name} | {r.naive} | {r.greedy} | {r.da4ml} | {r.ours} | {_ratio(r.ours, r.greedy)} "
            f"| {_ratio(r.ours, r.da4ml)} | {r.ours_depth} ({r.limit}) | {_secs(r.greedy_s)} | {_secs(r.da4ml_s)} "
            f"| {r.ours_s:.2f} |"
        )
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    lines = []
    g = [(r, r.greedy) for r in rows if isinstance(r.greedy, int)]
    d = [(r, r.da4ml) for r in rows if isinstance(r.da4ml, int)]
    if g:
        lines.append(
            f"- fewer adders than greedy on {sum(r.ours < x for r, x in g)} of {len(g)} matrices; "
            f"total ours/greedy {sum(r.ours for r, _ in g) / sum(x for _, x in g):.3f}"
        )
        low = [r.name for r, x in g if r.ours <= 0.85 * x]
        lines.append(
            f"- at or below 0.85x greedy on {len(low)} of {len(g)} matrices" + (f": {', '.join(low)}" if low else "")
        )
    if d:
        lines.append(
            f"- fewer adders than da4ml on {sum(r.ours < x for r, x in d)} of {len(d)} matrices "
            f"where it finished; total ours/da4ml {sum(r.ours for r, _ in d) / sum(x for _, x in d):.3f}"
        )
    lines.append(
        f"- greedy timeouts: {sum(r.greedy == 'timeout' for r in rows)}, "
        f"da4ml timeouts: {sum(r.da4ml == 'timeout' for r in rows)}"
    )
    within = all(r.limit is None or r.ours_depth <= r.limit for r in rows)
    lines.append(f"- every graph within its depth limit: {'yes' if within else 'no'}")
    for name, target in (("random 576x128, 50% zeros", 10.0), ("random 512x512, 50% zeros", 30.0)):
        for r in rows:
            if r.name == name:
                lines.append(
                    f"- {name}: {r.ours_s:.2f} s (target < {target:g} s: {'met' if r.ours_s < target else 'missed'})"
                )
    return "\n".join(lines)


def ablations(skipped: list[str]) -> str:
    """What each heuristic is worth: one search run with one switch changed."""
    from hwgen.passes.merge_pairs import _direct_graph, _expand, _Extraction, _transposed_graph, _TransposeDepth

    layers = dict(model_layers(skipped))
    structured = dict(structured_ternary())
    mats = [
        ("random 192x64, 50% zeros", random_ternary(192, 64, 0.5)),
        ("random 576x128, 75% zeros", random_ternary(576, 128, 0.75)),
        ("random 27x64, 50% zeros", random_ternary(27, 64, 0.5)),
        ("8-prototype 192x64", structured["8-prototype 192x64"]),
    ] + [(n, w) for n, w in layers.items() if "conv2" in n]

    def one(
        w: np.ndarray,
        transposed: bool = False,
        block_level: int = 3,
        ablate: frozenset[str] = frozenset(),
        bound: bool = True,
    ) -> str:
        if transposed:
            t = _expand(np.ascontiguousarray(w.T))
            uses = np.count_nonzero(t.matrix, axis=0).tolist()
            tracker = _TransposeDepth(uses, t.slot_input, w.shape[0], default_max_depth(w)) if bound else None
            ext = _Extraction(t.matrix, 40, 0, block_level, transpose_depth=tracker, ablate=ablate).run()
            graph = _transposed_graph(ext, t, w.shape[1], w.shape[0])
        else:
            t = _expand(w)
            ext = _Extraction(t.matrix, default_max_depth(w), 0, block_level, ablate=ablate).run()
            graph = _direct_graph(ext, t, w.shape[1])
        assert np.array_equal(graph.coefficients(), w)
        over = graph.depth > default_max_depth(w)
        return f"{graph.adders}" + (f" (depth {graph.depth} > {default_max_depth(w)})" if over else "")

    variants = [
        ("shipped portfolio", lambda w: str(merged_adder_graph(w).adders)),
        ("one run, direct", lambda w: one(w)),
        ("one run, transposed", lambda w: one(w, transposed=True)),
        ("one run, transposed, depth not bounded", lambda w: one(w, transposed=True, bound=False)),
        ("one run, direct, no blocks (pairs to the end)", lambda w: one(w, block_level=1)),
        ("one run, direct, blocks from count 2 only", lambda w: one(w, block_level=2)),
        ("one run, direct, ties in random order", lambda w: one(w, ablate=frozenset({"random-ties"}))),
        ("one run, direct, blocks in random order", lambda w: one(w, ablate=frozenset({"random-blocks"}))),
        ("greedy anchor (bench reference)", lambda w: str(greedy_pairs(w, 600).adders)),  # type: ignore[union-attr]
    ]
    head = "| variant | " + " | ".join(n for n, _ in mats) + " |"
    lines = [head, "|---|" + "---:|" * len(mats)]
    for label, fn in variants:
        counts = []
        for name, w in mats:
            counts.append(fn(w))
            print(f"  {label}: {name} {counts[-1]}", file=sys.stderr, flush=True)
        lines.append(f"| {label} | " + " | ".join(counts) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# --scale: layers of image networks, each merged in a child process

#: (name, maker, efforts[, merge memory GB]); inputs x outputs as everywhere in this file.
SCALE: list[tuple] = [  # type: ignore[type-arg]
    ("random 576x128, 50% zeros", lambda: random_ternary(576, 128, 0.5), ("default", "high")),
    ("trained-like 512x512, 50% zeros", lambda: trained_like(512, 512, 0.5), ("default", "high")),
    ("trained-like 1152x128, 75% zeros", lambda: trained_like(1152, 128, 0.75), ("default", "high")),
    ("trained-like 1152x256, 75% zeros", lambda: trained_like(1152, 256, 0.75), ("default",)),
    ("trained-like 2304x256, 75% zeros", lambda: trained_like(2304, 256, 0.75), ("default", "high")),
    ("trained-like 4608x512, 75% zeros", lambda: trained_like(4608, 512, 0.75), ("default",)),
    # The bounded strategy: the 1152x128 layer with a budget below its estimate.
    ("trained-like 1152x128, 75% zeros, --merge-memory 0.1", lambda: trained_like(1152, 128, 0.75), ("default",), 0.1),
]

_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from hwgen.passes.merge_pairs import merged_adder_graph
w = np.load(sys.argv[1])
kwargs = {"effort": sys.argv[2]}
if len(sys.argv) > 4:
    kwargs["memory_budget"] = int(float(sys.argv[4]) * (1 << 30))
start, cpu = time.perf_counter(), time.process_time()
graph = merged_adder_graph(w, **kwargs)
wall = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "adders": graph.adders, "depth": graph.depth, "seconds": wall,
    "cpu_seconds": time.process_time() - cpu + kids.ru_utime + kids.ru_stime,
    "peak_mb": own.ru_maxrss / 1024, "worker_peak_mb": kids.ru_maxrss / 1024,
}))
"""


def run_child(w: np.ndarray, effort: str, memory_gb: float | None) -> dict[str, object]:
    """Merge in a fresh process: its peak memory is the merge's alone (plus the interpreter)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.npy"
        np.save(path, w)
        argv = [sys.executable, "-c", _CHILD, str(path), effort, str(REPO)]
        if memory_gb is not None:
            argv.append(str(memory_gb))
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    result: dict[str, object] = json.loads(r.stdout)
    result["stderr"] = r.stderr.strip()
    return result


def scale(args: argparse.Namespace) -> int:
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "cse_scale.json"
    done: dict[str, dict[str, object]] = {}
    if args.resume is not None and args.resume.is_file():
        done = json.loads(args.resume.read_text())
    models = [(n, (lambda w=w: w), ("default", "high")) for n, w in model_layers([])] if args.models else []
    work = [*SCALE, *models]
    for name, make, efforts, *memory in work:
        if args.only and args.only not in name:
            continue
        memory_gb = memory[0] if memory else args.merge_memory
        w = make()
        row = done.get(name, {})
        row.update({"naive": naive_adder_count(w), "nonzeros": int(np.count_nonzero(w))})
        row["estimate_mb"] = merge_memory_estimate(w) / (1 << 20)  # what the budget is checked against
        for effort in efforts:
            if effort in row and "error" not in row[effort]:  # type: ignore[operator]
                continue
            print(f"  {name}: {effort} ...", file=sys.stderr, flush=True)
            row[effort] = run_child(w, effort, memory_gb)
            print(f"  {name}: {effort} {row[effort]}", file=sys.stderr, flush=True)
        twin = name.split(", --merge-memory")[0]
        for anchor in ("greedy", "greedy_s", "da4ml"):
            if anchor not in row and anchor in done.get(twin, {}):
                row[anchor] = done[twin][anchor]  # the same matrix as another row
        if "greedy" not in row and w.shape[1] > 2304:
            row["greedy"] = "not run"  # its dense pair counts and heap would need gigabytes
        if "greedy" not in row:
            t = time.perf_counter()
            g = greedy_pairs(w, args.greedy_budget)
            row["greedy"] = g.adders if g is not None else "timeout"
            row["greedy_s"] = time.perf_counter() - t
        if args.da4ml and "da4ml" not in row and w.shape[1] > 1152:
            row["da4ml"] = "not run"  # more than 300 s already at 512x512
        if args.da4ml and "da4ml" not in row:
            res = run_da4ml(w, args.da4ml_budget)
            row["da4ml"] = int(res["adders"]) if isinstance(res, dict) else res  # type: ignore[call-overload]
        done[name] = row
        if args.resume is not None:
            args.resume.write_text(json.dumps(done, indent=1))
    json_path.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    order = [entry[0] for entry in work]
    table_text = scale_table(done, args, order) + "\n\n" + scale_summary(done)
    (out_dir / "cse_scale.md").write_text(table_text + "\n")
    print(table_text)
    if args.docs:
        update_docs(table_text)
    return 0


_DOCS = REPO / "docs" / "cse.md"
_BEGIN, _END = "<!-- bench/cse.py --scale: begin -->", "<!-- bench/cse.py --scale: end -->"


def update_docs(text: str) -> None:
    """Put the generated table between the markers in docs/cse.md (numbers are never typed in)."""
    from _common import replace_between

    lines = text.splitlines()
    replace_between(_DOCS, _BEGIN, _END, f"\n\n```\n{lines[0]}\n```\n\n{chr(10).join(lines[2:])}\n\n")


def scale_summary(rows: dict[str, dict[str, object]]) -> str:
    """The issue's targets, read off the rows."""

    def get(name: str, effort: str) -> dict[str, float] | None:
        r = rows.get(name, {}).get(effort)
        return r if isinstance(r, dict) and "error" not in r else None  # type: ignore[return-value]

    def met(ok: bool) -> str:
        return "met" if ok else "missed"

    out = []
    for name, limit_s in (("random 576x128, 50% zeros", 5.0), ("trained-like 512x512, 50% zeros", 10.0)):
        d = get(name, "default")
        if d:
            out.append(
                f"- {name}, default: {d['seconds']:.1f} s wall, {d['cpu_seconds']:.1f} s CPU on "
                f"{os.cpu_count()} cores (target < {limit_s:g} s: {met(d['seconds'] < limit_s)} on this shared "
                f"machine; {met(d['cpu_seconds'] / 2 < limit_s)} for CPU time over two idle cores)"
            )
    d = get("trained-like 2304x256, 75% zeros", "default")
    if d:
        peak = d["peak_mb"] + d["worker_peak_mb"]
        out.append(
            f"- trained-like 2304x256, default: {peak:.0f} MB peak (process and worker added up; target < 6 GB: "
            f"{met(peak < 6144)}), {d['seconds']:.0f} s (target < 3 minutes: {met(d['seconds'] < 180)})"
        )
    d = get("trained-like 4608x512, 75% zeros", "default")
    if d:
        blocks = rows["trained-like 4608x512, 75% zeros"]["default"].get("stderr")  # type: ignore[union-attr]
        out.append(
            f"- trained-like 4608x512, default: {'in blocks' if blocks else 'whole'}, "
            f"{d['peak_mb'] + d['worker_peak_mb']:.0f} MB peak, {d['seconds']:.0f} s"
        )
    high = [(n, get(n, "default"), get(n, "high")) for n in rows]
    pairs = [(n, d, h) for n, d, h in high if d and h]
    if pairs:
        worse = [n for n, d, h in pairs if h["adders"] > d["adders"]]
        out.append(f"- high effort at or below default on {len(pairs) - len(worse)} of {len(pairs)} matrices")
        ratios = [
            (n, h["adders"] / rows[n]["greedy"])  # type: ignore[operator]
            for n, _, h in pairs
            if isinstance(rows[n].get("greedy"), int)
        ]
        if ratios:
            out.append(
                "- high / greedy: "
                + ", ".join(f"{n} {r:.3f}" for n, r in ratios)
                + f"; at or below 0.92: {sum(r <= 0.92 for _, r in ratios)} of {len(ratios)}"
            )
        times = [h["seconds"] / d["seconds"] for _, d, h in pairs]
        cpu = [h["cpu_seconds"] / d["cpu_seconds"] for _, d, h in pairs]
        out.append(
            f"- high effort took {min(times):.1f}x to {max(times):.1f}x the default's wall time, "
            f"{min(cpu):.1f}x to {max(cpu):.1f}x its CPU time"
        )
    da = [
        (n, get(n, "default"), rows[n]["da4ml"])
        for n in rows
        if isinstance(rows[n].get("da4ml"), int) and get(n, "default")
    ]
    if da:
        out.append(
            "- default against da4ml (adders): "
            + ", ".join(f"{n} {d['adders']} vs {x}" for n, d, x in da)  # type: ignore[index]
        )
    return "\n".join(out)


def scale_table(rows: dict[str, dict[str, object]], args: argparse.Namespace, order: list[str]) -> str:
    def eff(row: dict[str, object], effort: str, key: str, fmt: str) -> str:
        r = row.get(effort)
        if not isinstance(r, dict):
            return "-"
        if "error" in r:
            return "error"
        return fmt.format(r[key])

    def ratio(a: object, b: object) -> str:
        return f"{a / b:.3f}" if isinstance(a, int) and isinstance(b, int) and b else "-"  # type: ignore[operator]

    head = (
        "| matrix (in x out) | naive | greedy | da4ml | default | high | high/default | high/greedy "
        "| default s (CPU s) | high s (CPU s) | estimate MB | default peak MB (worker) | high peak MB (worker) |"
    )
    lines = [
        f"twngen bench/cse.py --scale: Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"budgets: greedy {args.greedy_budget:g} s, da4ml {args.da4ml_budget:g} s per matrix",
        "",
        head,
        "|---|" + "---:|" * 12,
    ]
    for name in order:
        row = rows.get(name)
        if row is None:
            continue
        d = row.get("default", {})
        h = row.get("high", {})
        da, ha = (x.get("adders") if isinstance(x, dict) else None for x in (d, h))
        lines.append(
            f"| {name} | {row['naive']} | {row.get('greedy', '-')} | {row.get('da4ml', '-')} "
            f"| {eff(row, 'default', 'adders', '{}')} | {eff(row, 'high', 'adders', '{}')} | {ratio(ha, da)} "
            f"| {ratio(ha, row.get('greedy'))} "
            f"| {eff(row, 'default', 'seconds', '{:.1f}')} ({eff(row, 'default', 'cpu_seconds', '{:.1f}')}) "
            f"| {eff(row, 'high', 'seconds', '{:.1f}')} ({eff(row, 'high', 'cpu_seconds', '{:.1f}')}) "
            f"| {row.get('estimate_mb', 0):.0f} "
            f"| {eff(row, 'default', 'peak_mb', '{:.0f}')} ({eff(row, 'default', 'worker_peak_mb', '{:.0f}')}) "
            f"| {eff(row, 'high', 'peak_mb', '{:.0f}')} ({eff(row, 'high', 'worker_peak_mb', '{:.0f}')}) |"
        )
    notes = [
        name
        for name in order
        for effort in ("default", "high")
        if isinstance(rows.get(name, {}).get(effort), dict) and rows[name][effort].get("stderr")  # type: ignore[union-attr]
    ]
    if notes:
        lines += ["", "Merged in blocks (stderr of the merge):"]
        for name in dict.fromkeys(notes):
            for effort in ("default", "high"):
                r = rows[name].get(effort)
                if isinstance(r, dict) and r.get("stderr"):
                    lines.append(f"- {name}, {effort}: {r['stderr']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# --bound: small layers against the exact model (hwgen.passes.merge_bound)

BOUND_SHAPES = [(8, 8), (12, 12), (16, 16)]  # inputs x outputs


def bound_matrices() -> list[tuple[str, np.ndarray]]:
    """Random ternary layers of 8 to 16 inputs and the trained layers small enough for the model."""
    work = [
        (f"random {i}x{o}, {z:.0%} zeros", random_ternary(i, o, z)) for i, o in BOUND_SHAPES for z in ZEROS
    ]
    work += [(n, w) for n, w in model_layers([]) if "conv1" in n or "out.weight" in n]
    return work


def bound(args: argparse.Namespace) -> int:
    """Adders of greedy, da4ml, default and high against the exact model's optimum (or lower bound)."""
    from hwgen.errors import TwnError
    from hwgen.passes.merge_bound import cancellation_free_bound

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, object]] = {}
    if args.resume is not None and args.resume.is_file():
        rows = json.loads(args.resume.read_text())
    work = bound_matrices()
    for name, w in work:
        if args.only and args.only not in name:
            continue
        row = rows.get(name, {})
        if "high" not in row:
            g = greedy_pairs(w, args.greedy_budget)
            row["naive"] = naive_adder_count(w)
            row["greedy"] = g.adders if g is not None else "timeout"
            if args.da4ml:
                res = run_da4ml(w, args.da4ml_budget)
                row["da4ml"] = int(res["adders"]) if isinstance(res, dict) else res  # type: ignore[call-overload]
            for effort in ("default", "high"):
                t = time.perf_counter()
                graph = merged_adder_graph(w, effort=effort)
                assert np.array_equal(graph.coefficients(), w), f"{effort} graph wrong on {name}"
                row[effort], row[f"{effort}_s"] = graph.adders, time.perf_counter() - t
        if "lower" not in row:
            try:
                b = cancellation_free_bound(w, time_limit=args.bound_time)
            except TwnError as e:
                row["refused"] = str(e)
            else:
                row.update(
                    lower=b.lower, optimum=b.optimum, lp=b.lp, variables=b.variables, bound_s=b.seconds
                )
                for key in ("greedy", "default", "high"):
                    if isinstance(row[key], int):
                        assert b.lower <= row[key], f"bound above the {key} graph on {name}"  # type: ignore[operator]
        rows[name] = row
        print(f"  {name}: {row}", file=sys.stderr, flush=True)
        if args.resume is not None:
            args.resume.write_text(json.dumps(rows, indent=1))
    (out_dir / "cse_bound.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    text = bound_table(rows, [n for n, _ in work], args)
    (out_dir / "cse_bound.md").write_text(text + "\n")
    print(text)
    if args.docs:
        from _common import replace_between

        lines = text.splitlines()
        replace_between(_DOCS, _BOUND_BEGIN, _BOUND_END, f"\n\n```\n{lines[0]}\n```\n\n{chr(10).join(lines[2:])}\n\n")
    return 0


_BOUND_BEGIN, _BOUND_END = "<!-- bench/cse.py --bound: begin -->", "<!-- bench/cse.py --bound: end -->"


def bound_table(rows: dict[str, dict[str, object]], order: list[str], args: argparse.Namespace) -> str:
    def ratio(a: object, b: object) -> str:
        return f"{a / b:.3f}" if isinstance(a, int) and isinstance(b, int) and b else "-"  # type: ignore[operator]

    lines = [
        f"twngen bench/cse.py --bound: Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"HiGHS time limit {args.bound_time:g} s per matrix",
        "",
        "| matrix (in x out) | naive | greedy | da4ml | default | high | bound | optimal | LP | greedy/bound "
        "| default/bound | high/bound | default s | high s | ILP s | ILP variables |",
        "|---|" + "---:|" * 15,
    ]
    for name in order:
        r = rows.get(name)
        if r is None:
            continue
        lower = r.get("lower")
        refused = "refused" in r
        shown = "too large" if refused else (lower or "none in time")
        optimal = "yes" if r.get("optimum") is not None else "no"
        lines.append(
            f"| {name} | {r['naive']} | {r['greedy']} | {r.get('da4ml', '-')} | {r['default']} | {r['high']} "
            f"| {shown} | {'-' if refused else optimal} "
            f"| {r.get('lp', '-')} | {ratio(r['greedy'], lower)} | {ratio(r['default'], lower)} "
            f"| {ratio(r['high'], lower)} | {r['default_s']:.2f} | {r['high_s']:.2f} "
            f"| {'-' if refused else format(r['bound_s'], '.1f')} | {r.get('variables', '-')} |"
        )
    solved = [r for r in rows.values() if r.get("optimum") is not None]
    bounded = [r for r in rows.values() if r.get("lower")]
    if bounded:
        lines += [
            "",
            f"- optimum proved on {len(solved)} of {len(bounded)} matrices with a bound (else HiGHS' dual bound "
            "or the LP at the time limit)",
        ]
        if solved:
            lines.append(
                "- total over the matrices with a proved optimum: greedy/optimum "
                f"{sum(r['greedy'] for r in solved) / sum(r['lower'] for r in solved):.3f}, "  # type: ignore[misc]
                f"default/optimum {sum(r['default'] for r in solved) / sum(r['lower'] for r in solved):.3f}, "  # type: ignore[misc]
                f"high/optimum {sum(r['high'] for r in solved) / sum(r['lower'] for r in solved):.3f}; "  # type: ignore[misc]
                f"optimum/greedy {sum(r['lower'] for r in solved) / sum(r['greedy'] for r in solved):.3f}"  # type: ignore[misc]
            )
            at = sum(r["high"] == r["optimum"] for r in solved)
            lines.append(f"- high effort at the proved optimum on {at} of {len(solved)}")
    refused_rows = [(n, r["refused"]) for n, r in rows.items() if "refused" in r]
    for n, why in refused_rows:
        lines.append(f"- {n}: not modelled ({why})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small random matrices and the model layers only")
    p.add_argument("--no-da4ml", dest="da4ml", action="store_false", help="skip da4ml")
    p.add_argument("--greedy-budget", type=float, default=300.0, help="seconds per matrix (default 300)")
    p.add_argument("--da4ml-budget", type=float, default=300.0, help="seconds per matrix (default 300)")
    p.add_argument("--only", default=None, help="run only matrices whose name contains this")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON lines of finished matrices: reuse them, append new ones (to run the bench in pieces)",
    )
    p.add_argument("--ablations", action="store_true", help="only the table of what each heuristic is worth")
    p.add_argument("--scale", action="store_true", help="image-network layer sizes: time, peak memory, effort")
    p.add_argument("--merge-memory", type=float, default=None, metavar="GB", help="--scale: the merge's budget")
    p.add_argument("--docs", action="store_true", help="--scale: also put the table into docs/cse.md")
    p.add_argument("--models", action="store_true", help="--scale: also the shared models' layers")
    p.add_argument("--bound", action="store_true", help="small layers against the exact model (needs scipy)")
    p.add_argument("--bound-time", type=float, default=120.0, metavar="S", help="--bound: HiGHS time limit")
    args = p.parse_args(argv)
    if args.bound:
        if args.da4ml and not da4ml_available():
            args.da4ml = False
        return bound(args)
    if args.scale:
        if args.da4ml and not da4ml_available():
            args.da4ml = False
        return scale(args)
    if args.ablations:
        print(f"twngen bench/cse.py --ablations: Python {platform.python_version()}, {os.cpu_count()} CPUs")
        print()
        print(ablations([]))
        return 0
    if args.da4ml and not da4ml_available():
        print("da4ml is not importable: its column shows n/a (pip install da4ml)", file=sys.stderr)
        args.da4ml = False
    skipped: list[str] = []
    work: list[tuple[str, np.ndarray]] = []
    for inputs, outputs in QUICK_SHAPES if args.quick else RANDOM_SHAPES:
        for zeros in ZEROS:
            work.append((f"random {inputs}x{outputs}, {zeros:.0%} zeros", random_ternary(inputs, outputs, zeros)))
    work.extend(structured_ternary())
    work.extend(model_layers(skipped))
    if args.only:
        work = [(n, w) for n, w in work if args.only in n]
    done: dict[str, Row] = {}
    if args.resume is not None and args.resume.is_file():
        for line in args.resume.read_text().splitlines():
            if line.strip():
                row = Row(**json.loads(line))
                done[row.name] = row
    rows = []
    for name, w in work:
        if name in done:
            rows.append(done[name])
        else:
            rows.append(bench_one(name, w, args))
            if args.resume is not None:
                with args.resume.open("a") as f:
                    f.write(json.dumps(asdict(rows[-1])) + "\n")
        rows[-1].limit = default_max_depth(w)
        assert rows[-1].ours_depth <= rows[-1].limit, f"depth limit broken on {name}"
    cpu = platform.processor() or platform.machine()
    print(
        f"twngen bench/cse.py{' --quick' if args.quick else ''}{'' if args.da4ml else ' --no-da4ml'}: "
        f"Python {platform.python_version()}, {cpu}, {os.cpu_count()} CPUs; "
        f"budgets: greedy {args.greedy_budget:g} s, da4ml {args.da4ml_budget:g} s per matrix"
    )
    print()
    print(table(rows))
    print()
    print(summary(rows))
    if skipped:
        print()
        print("Skipped tensors:")
        for s in skipped:
            print(f"- {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
