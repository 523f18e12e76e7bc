"""Code rules the suite enforces: ruff everywhere, types and no Amaranth in the pure layers."""

import subprocess
import sys

from conftest import REPO

PURE = [
    "hwgen/ir",
    "hwgen/passes",
    "hwgen/frontend",
    "hwgen/golden.py",
    "hwgen/plan",
    "hwgen/estimate.py",
    "hwgen/flow/synth.py",
]


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff():
    dirs = [d for d in ("hwgen", "sim", "tests", "examples", "bench") if (REPO / d).is_dir()]
    r = _run("ruff", "check", *dirs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_on_the_pure_layers():
    r = _run("mypy", "--ignore-missing-imports", "--no-error-summary", *PURE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ir_and_passes_do_not_import_amaranth():
    code = (
        "import sys, hwgen.ir, hwgen.passes.quantize, hwgen.passes.adder_graphs, hwgen.frontend, "
        "hwgen.golden, hwgen.plan, hwgen.estimate, hwgen.flow.synth; "
        "print(sorted(m for m in sys.modules if m.startswith('amaranth')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
