"""twngen as a user installs it (pipx, or pip from a wheel): the wheel built from the
repository carries the board presets, RTL templates and testbenches, and the installed
command builds and verifies the bundled example from a folder outside the repository.

Nothing is downloaded: the wheel is built without build isolation and installed with
``--no-deps --no-index`` into a fresh venv that sees this environment's dependencies
through a ``.pth`` file (which, unlike this environment, does not load the editable
install's import hook, so the repository is not on the path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

# What the wheel has to carry: every module, and the data folders mapped into the package.
DATA_FOLDERS = {"boards": "*.toml", "rtl_templates": "*", "sim": "*.py"}


def _expected_wheel_files() -> set[str]:
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "hwgen").rglob("*.py")}
    data = {
        f"hwgen/_data/{folder}/{p.name}"
        for folder, pattern in DATA_FOLDERS.items()
        for p in (REPO / folder).glob(pattern)
        if p.is_file()
    }
    return modules | data


def _run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: an in-tree build leaves build/ and *.egg-info behind in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("hwgen", *DATA_FOLDERS):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", source, "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out], cwd=out)
    (built,) = out.glob("twngen-*-py3-none-any.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin/ folder."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    python = venv / "bin" / "python"
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([python, "-c", probe], cwd=venv).stdout.strip())
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "twngen-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
    _run([*pip, "install", "--no-deps", "--no-index", "-q", wheel], cwd=venv)
    return venv / "bin"


def _user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TWNGEN_BOARDS", "VIRTUAL_ENV")}


def test_wheel_carries_modules_and_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = _expected_wheel_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert "hwgen/_data/boards/zcu111.toml" in names and "hwgen/_data/sim/tb_twn_top.py" in names


def test_installed_package_reads_its_own_data(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import hwgen, hwgen.paths as p; "
        "print(hwgen.__file__); print(p.BOARDS_DIR); print(p.RTL_TEMPLATES_DIR); print(p.SIM_DIR)"
    )
    lines = _run([installed / "python", "-c", probe], cwd=tmp_path, env=_user_env()).stdout.split()
    venv = installed.parent.resolve()
    for line in lines:
        assert Path(line).resolve().is_relative_to(venv), f"{line} is not inside the fresh venv {venv}"
    assert all(Path(line).exists() for line in lines)


def test_installed_boards_and_override(installed: Path, tmp_path: Path) -> None:
    env = _user_env()
    listing = _run([installed / "twngen", "boards"], cwd=tmp_path, env=env).stdout
    for board in ("zcu111", "icebreaker", "ulx3s-85f"):
        assert board in listing
    own = tmp_path / "my_boards"
    own.mkdir()
    text = (REPO / "boards" / "zcu111.toml").read_text().replace('name = "zcu111"', 'name = "myboard"')
    (own / "myboard.toml").write_text(text)
    listing = _run([installed / "twngen", "boards"], cwd=tmp_path, env={**env, "TWNGEN_BOARDS": str(own)}).stdout
    assert "myboard" in listing and "zcu111" not in listing


def test_installed_build_and_verify(installed: Path, tmp_path: Path) -> None:
    env = _user_env()
    model = shutil.copy2(REPO / "examples" / "mlp_ternary.onnx", tmp_path / "mlp_ternary.onnx")
    _run([installed / "twngen", model, "--board", "zcu111", "-o", "out"], cwd=tmp_path, env=env)
    for name in ("rtl/twn_top.v", "vivado/build.tcl", "report.md"):
        assert (tmp_path / "out" / name).is_file(), name
    assert "zcu111" in (tmp_path / "out" / "report.md").read_text()
    result = _run(
        [installed / "twngen", "verify", "out", "--simulator", "icarus", "--vectors", "5"], cwd=tmp_path, env=env
    )
    assert "5 passed, 0 failed" in result.stdout
