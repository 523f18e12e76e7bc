"""The package's shape (docs/architecture.md): no import cycles, few top-level modules,
no module name repeated across packages, and each package importing only the layers
below it. Read from the source with ``ast``, so lazy (function-level) imports count."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "hwgen"

# What each part of hwgen may import (besides itself, hwgen.errors and the package's
# __version__). Mirrors docs/architecture.md; a new edge is a design decision, made there.
ALLOWED = {
    "hwgen.ir": set(),
    "hwgen.frontend": {"hwgen.ir"},
    "hwgen.golden": {"hwgen.ir"},
    "hwgen.plan": {"hwgen.ir"},
    "hwgen.estimate": {"hwgen.ir", "hwgen.plan"},
    "hwgen.passes": {"hwgen.ir", "hwgen.plan", "hwgen.estimate"},
    "hwgen.backend": {"hwgen.ir", "hwgen.plan"},
    "hwgen.paths": set(),
    "hwgen.console": set(),
    "hwgen.flow": {"hwgen.paths"},
    "hwgen.report": {"hwgen.ir", "hwgen.plan", "hwgen.estimate", "hwgen.golden", "hwgen.flow", "hwgen.paths"},
    "hwgen.verify": {"hwgen.ir", "hwgen.plan", "hwgen.golden", "hwgen.paths", "hwgen.console"},
    "hwgen.cse_tool": {"hwgen.passes"},
}
ALWAYS = {"hwgen", "hwgen.errors"}
MAX_TOP_LEVEL_MODULES = 10


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hwgen":
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges[name].add(sub if sub in mods else node.module)
            elif isinstance(node, ast.Import):
                edges[name].update(a.name for a in node.names if a.name in mods)
    return edges


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_few_top_level_modules():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_name_repeats_across_packages():
    names = Counter(p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
    assert [n for n, k in names.items() if k > 1] == []


def test_each_part_imports_only_the_layers_below_it():
    edges = _import_graph()
    parts = {_part(m) for m in edges} - {"hwgen"}
    # Entry points (build, cli, explore) may import anything; every other part is listed.
    assert parts - set(ALLOWED) == {"hwgen.build", "hwgen.cli", "hwgen.errors", "hwgen.explore"}
    wrong = sorted(
        f"{m} imports {t}"
        for m, targets in edges.items()
        if _part(m) in ALLOWED
        for t in targets
        if _part(t) != _part(m) and _part(t) not in ALWAYS | ALLOWED[_part(m)]
    )
    assert wrong == []
