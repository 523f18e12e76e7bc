"""``twngen cse``: merge one weight matrix from a file and report its adders.

Thin glue over :func:`hwgen.passes.merge_pairs.merged_adder_graph`: read a
``.csv`` or ``.npy`` matrix (rows are outputs, columns inputs; ``--transpose``
for input-by-output files), build the merged adder graph and print the naive
adder count, the merged count, the graph depth and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np

from hwgen.errors import TwnError
from hwgen.passes.merge_pairs import EFFORTS, merged_adder_graph, merged_adder_graph_cached
from hwgen.passes.naive_tree import naive_adder_count

__all__ = ["cse_main", "load_matrix"]

#: Weights must fit in 8-bit two's complement.
_LOW, _HIGH = -128, 127


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TwnError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="twngen cse",
        description="Merge common signed subexpressions of a constant weight matrix into an adder graph.",
    )
    p.add_argument("matrix", type=Path, help="weights as .csv or .npy; rows are outputs, columns inputs")
    p.add_argument("--transpose", action="store_true", help="the file is laid out inputs x outputs")
    p.add_argument("--max-depth", type=int, default=None, metavar="D", help="adder depth limit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the merge cache")
    p.add_argument(
        "--merge-effort",
        choices=EFFORTS,
        default="default",
        help="high: about ten times the search time for fewer adders, never more (default %(default)s)",
    )
    p.add_argument(
        "--merge-memory",
        type=_gigabytes,
        default=None,
        metavar="GB",
        help="memory the merge may use; a matrix needing more is merged in blocks of inputs "
        "(default: half the memory available)",
    )
    return p


def _gigabytes(text: str) -> int:
    """``--merge-memory GB`` in bytes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of gigabytes, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of gigabytes, not {text!r}")
    return int(value * (1 << 30))


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise TwnError(f"{path}:{number}: not a number in {line.strip()[:40]!r}") from None
        if len(rows[-1]) != len(rows[0]):
            raise TwnError(f"{path}:{number}: {len(rows[-1])} values, but the first row has {len(rows[0])}")
    if not rows:
        raise TwnError(f"{path}: no rows")
    return np.array(rows, dtype=np.float64)


def load_matrix(path: Path, transpose: bool = False) -> np.ndarray:
    """Read an integer weight matrix (outputs x inputs) that fits in 8 bits."""
    if not path.is_file():
        raise TwnError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise TwnError(f"{path}: not a readable .npy file ({str(e).splitlines()[0]})") from None
    elif suffix == ".csv":
        try:
            raw = _read_csv(path)
        except UnicodeDecodeError:
            raise TwnError(f"{path}: not a text file") from None
    else:
        raise TwnError(f"{path}: the matrix must be a .csv or .npy file, not {suffix or 'no suffix'!r}")
    w = np.asarray(raw)
    if w.ndim != 2:
        raise TwnError(f"{path}: the matrix must be 2-D, not {w.ndim}-D with shape {w.shape}")
    if w.dtype == np.bool_:
        w = w.astype(np.int64)
    elif np.issubdtype(w.dtype, np.floating):
        if not np.all(np.isfinite(w)):
            raise TwnError(f"{path}: the matrix has non-finite values")
        if not np.all(w == np.rint(w)):
            raise TwnError(f"{path}: the matrix has non-integer values; scale weights to integers first")
    elif not np.issubdtype(w.dtype, np.integer):
        raise TwnError(f"{path}: the matrix must hold numbers, not {w.dtype}")
    if w.size and (w.min() < _LOW or w.max() > _HIGH):
        worst = w.min() if w.min() < _LOW else w.max()
        raise TwnError(f"{path}: weights must fit in 8 bits ({_LOW}..{_HIGH}), not {worst:g}")
    w = w.astype(np.int64)
    return np.ascontiguousarray(w.T) if transpose else w


def cse_main(argv: list[str]) -> int:
    """Run ``twngen cse``; returns the exit status (2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except TwnError as e:
        print(f"twngen: error: {e}", file=sys.stderr)
        return 2
    try:
        w = load_matrix(args.matrix, args.transpose)
        start = time.perf_counter()
        options = {"effort": args.merge_effort, "memory_budget": args.merge_memory, "name": args.matrix.name}
        if args.no_cache:
            graph = merged_adder_graph(w, max_depth=args.max_depth, **options)
        else:
            graph = merged_adder_graph_cached(w, max_depth=args.max_depth, **options)
        seconds = time.perf_counter() - start
    except TwnError as e:
        print(f"twngen: error: {e}", file=sys.stderr)
        return 2
    naive = naive_adder_count(w)
    if args.json:
        print(json.dumps({"naive": naive, "adders": graph.adders, "depth": graph.depth, "seconds": round(seconds, 3)}))
    else:
        saved = f" ({100 * (naive - graph.adders) / naive:.1f}% fewer)" if naive else ""
        print(f"matrix        : {w.shape[0]} outputs x {w.shape[1]} inputs")
        print(f"naive adders  : {naive}")
        print(f"merged adders : {graph.adders}{saved}")
        print(f"depth         : {graph.depth}")
        print(f"seconds       : {seconds:.2f}")
    return 0
