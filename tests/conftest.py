"""Shared helpers: small ONNX models written with onnx.helper, built networks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from make_ternary_mlp import make_mlp  # noqa: E402

from hwgen.build import ArithmeticOptions, prepare_network  # noqa: E402
from hwgen.ir import Network  # noqa: E402

#: A progress line of the CLI on a non-terminal stderr (hwgen.console.progress.PlainProgress).
PROGRESS_LINE = re.compile(r"twngen: \[ *\d+\.\ds\] \S")


def stderr_without_progress(stderr: str) -> str:
    """What the CLI wrote on stderr besides its progress lines (an error, a warning)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not PROGRESS_LINE.match(line))


def write_mlp(path: Path, sizes: list[int], **kwargs: object) -> Path:
    onnx.save(make_mlp(sizes, **kwargs), str(path))  # type: ignore[arg-type]
    return path


def built_network(path: Path, **options: object) -> Network:
    network, _ = prepare_network(path, ArithmeticOptions(**options))  # type: ignore[arg-type]
    return network


@pytest.fixture(autouse=True, scope="session")
def _shared_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The merging pass's on-disk cache and the compiled simulators live in the test session's
    temp folder, shared by the pytest-xdist workers (both are written atomically or under a
    lock): a design that several tests simulate is compiled once per simulator."""
    import os

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # every worker's basetemp is a child of the session's
    for var, name in (("TWNGEN_CACHE", "merge-cache"), ("TWNGEN_SIM_CACHE", "sim-cache")):
        (base / name).mkdir(exist_ok=True)
        os.environ[var] = str(base / name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def example_model() -> Path:
    return REPO / "examples" / "mlp_ternary.onnx"
