"""A build writes only OUTDIR and the merge cache; an interrupted or failing build keeps the previous OUTDIR."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, write_mlp

#: The one thing a dependency writes outside OUTDIR and $TWNGEN_CACHE: wasmtime's compile cache of
#: Amaranth's bundled Yosys ($XDG_CACHE_HOME or ~/.cache/wasmtime; a cold compile costs ~7 s per build).
WASMTIME_CACHE = (".cache", "wasmtime")


def _sandbox(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp", "cache", "models", "outparent")}
    for d in dirs.values():
        d.mkdir()
    return dirs


def _env(dirs: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "TWNGEN_"))}
    env.update(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]), TWNGEN_CACHE=str(dirs["cache"]))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the interpreter's .pyc files are not the build's output
    return env


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (folders as '/')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


_WRITE = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")


def _written_paths(trace: str, cwd: Path) -> set[Path]:
    """Paths the traced processes created, opened for writing, renamed or removed (successful calls)."""
    paths: set[Path] = set()
    for line in trace.splitlines():
        m = _WRITE.match(line)
        if not m or m.group(3).startswith("-"):
            continue
        call, args = m.group(1), m.group(2)
        names = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        if call in ("open", "openat", "openat2") and not re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", args):
            continue
        for name in names:
            p = Path(name)
            paths.add(p if p.is_absolute() else cwd / p)
    return paths


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see every file a build writes")
def test_a_build_writes_only_outdir_and_the_cache(tmp_path):
    """Every file the build (and every process it starts) creates, opens for writing, renames or removes."""
    dirs = _sandbox(tmp_path)
    model = write_mlp(dirs["models"] / "m.onnx", [12, 8, 5])
    out = dirs["outparent"] / "OUT"
    calls = "open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,link,linkat,symlink,"
    calls += "symlinkat,truncate"
    cmd = ["strace", "-f", "-qq", "-e", f"trace={calls}", "-o", str(tmp_path / "trace.txt"),
           sys.executable, "-m", "hwgen.cli", str(model), "--board", "zcu111", "-o", str(out)]  # fmt: skip
    r = subprocess.run(cmd, cwd=dirs["cwd"], env=_env(dirs), capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    written = _written_paths((tmp_path / "trace.txt").read_text(errors="replace"), dirs["cwd"])
    wasmtime = dirs["home"].joinpath(*WASMTIME_CACHE)

    partial = re.compile(rf"{re.escape(str(dirs['outparent']))}/(OUT|\.OUT\.(partial|old)-\w+)(/|$)")

    def allowed(p: Path) -> bool:
        if str(p).startswith(("/dev/", "/proc/")) or p in (dirs["outparent"], dirs["home"] / ".cache"):
            return True
        if partial.match(str(p)):  # OUTDIR, or the temporary siblings it is swapped in from
            return True
        return any(p == u or u in p.parents for u in (dirs["cache"], wasmtime))

    outside = sorted(str(p) for p in written if not allowed(p))
    assert outside == [], f"the build wrote outside OUTDIR and the cache: {outside[:20]}"
    assert any(out == p or out in p.parents or ".OUT.partial-" in str(p) for p in written)  # the trace saw it
    # And afterwards: the folders hold exactly OUTDIR, the cache, wasmtime's cache; no temporary leftovers.
    assert [p.name for p in dirs["outparent"].iterdir()] == ["OUT"]
    for name in ("cwd", "tmp"):
        assert list(dirs[name].iterdir()) == [], name
    assert [str(p.relative_to(dirs["home"])) for p in dirs["home"].rglob("*") if wasmtime not in p.parents] in (
        [], [".cache", ".cache/wasmtime"], [".cache"]
    )  # fmt: skip
    assert sorted(p.name for p in dirs["models"].iterdir()) == ["m.onnx"]


def _default_sigint() -> None:
    # A suite started in the background of a non-interactive shell (`make test &`) runs with
    # SIGINT ignored, and a child inherits that: give the build the Ctrl-C a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _build_cli(model: Path, out: Path, dirs: dict[str, Path], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hwgen.cli", str(model), "--board", "zcu111", "-o", str(out)],
        cwd=dirs["cwd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _wait_for_stage(fifo: Path, proc: subprocess.Popen[str], stage: str) -> None:
    """Block until the build announces ``stage`` on the pipe (hwgen.build.hold_for_test), however
    long that takes on a loaded machine; fail if the build ends first."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got = b""
    try:
        deadline = time.monotonic() + 900
        while not got.endswith(b"\n"):
            with contextlib.suppress(BlockingIOError):
                got += os.read(fd, 64)
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the build ended (exit {proc.returncode}) before reaching {stage!r}: {err[-2000:]}")
            assert time.monotonic() < deadline, f"the build never reached {stage!r}"
            time.sleep(0.01)
    finally:
        os.close(fd)
    assert got.decode() == f"{stage}\n"


@pytest.mark.parametrize("stage", ["planned", "writing"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_build_leaves_the_previous_outdir_intact(tmp_path, sig, stage):
    """Killed mid-build (SIGKILL: no clean-up at all; SIGINT: Ctrl-C), OUTDIR is the previous build,
    byte for byte. The build is held at a known stage (after scheduling; with the new folder half
    written) by a test-only pipe, so the signal never races the build's end."""
    from hwgen.build import build

    dirs = _sandbox(tmp_path)
    first = write_mlp(dirs["models"] / "first.onnx", [6, 4, 3], seed=1)
    out = dirs["outparent"] / "OUT"
    build(first, "zcu111", out)
    before = _tree(out)
    second = write_mlp(dirs["models"] / "second.onnx", [24, 16, 10], seed=2)  # different output
    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    env = {**_env(dirs), "TWNGEN_TEST_HOLD": f"{stage}:{fifo}"}
    proc = _build_cli(second, out, dirs, env)
    try:
        _wait_for_stage(fifo, proc, stage)
        partial = [p.name for p in dirs["outparent"].iterdir() if p.name.startswith(".OUT.partial-")]
        assert len(partial) == (1 if stage == "writing" else 0)  # held where the test means to interrupt
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "Traceback" not in err
    assert _tree(out) == before
    leftovers = [p.name for p in dirs["outparent"].iterdir() if p.name != "OUT"]
    if sig == signal.SIGINT:
        assert leftovers == []  # cleaned up
    else:
        assert all(re.fullmatch(r"\.OUT\.(partial|old)-\w+", n) for n in leftovers), leftovers
        assert len(leftovers) == (1 if stage == "writing" else 0)


def test_the_test_hold_is_off_without_its_variable(tmp_path, monkeypatch):
    """hold_for_test does nothing unless TWNGEN_TEST_HOLD names the stage (a normal build never blocks)."""
    from hwgen.build import hold_for_test

    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    monkeypatch.delenv("TWNGEN_TEST_HOLD", raising=False)
    hold_for_test("writing")
    monkeypatch.setenv("TWNGEN_TEST_HOLD", f"planned:{fifo}")
    hold_for_test("writing")  # another stage: returns at once (opening the pipe would block)


def test_a_failure_while_writing_leaves_the_previous_outdir_intact(tmp_path, monkeypatch):
    """Disk full half-way through writing the new folder: the old one stays, the partial one is removed."""
    import pathlib

    from hwgen.build import build

    dirs = _sandbox(tmp_path)
    out = dirs["outparent"] / "OUT"
    build(write_mlp(dirs["models"] / "a.onnx", [6, 4, 3], seed=1), "zcu111", out)
    before = _tree(out)
    real_write = pathlib.Path.write_text
    written: list[str] = []

    def failing_write(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        if ".OUT.partial-" in str(self) and self.name == "report.md":
            raise OSError(28, "No space left on device")
        written.append(self.name)
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", failing_write)
    with pytest.raises(OSError, match="No space left"):
        build(write_mlp(dirs["models"] / "b.onnx", [7, 5, 2], seed=2), "zcu111", out)
    assert "twn_top.v" in written  # the failure came after some files were written
    assert _tree(out) == before
    assert [p.name for p in dirs["outparent"].iterdir()] == ["OUT"]


def test_a_rebuild_swaps_outdir_in_one_step(tmp_path, monkeypatch):
    """Over an existing OUTDIR the new folder is exchanged with it atomically (no moment without
    OUTDIR); the previous build is gone afterwards and nothing is left beside OUTDIR."""
    import hwgen.build as build_module

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    (b / "f").write_text("b")
    if not build_module.exchange_paths(a, b):
        pytest.skip("this kernel or file system cannot exchange paths atomically")
    assert ((a / "f").read_text(), (b / "f").read_text()) == ("b", "a")

    dirs = _sandbox(tmp_path)
    out = dirs["outparent"] / "OUT"
    build_module.build(write_mlp(dirs["models"] / "a.onnx", [6, 4, 3], seed=1), "zcu111", out)
    renames: list[object] = []
    real_replace = os.replace
    monkeypatch.setattr(build_module.os, "replace", lambda *args: renames.append(args) or real_replace(*args))
    build_module.build(write_mlp(dirs["models"] / "b.onnx", [7, 5, 2], seed=2), "zcu111", out)
    outdir_renames = [r for r in renames if any(str(dirs["outparent"]) in str(a) for a in r)]  # type: ignore[attr-defined]
    assert outdir_renames == []  # the exchange, not the two-rename fallback (the merge cache renames its own files)
    assert json.loads((out / "report.json").read_text())["model"] == "b.onnx"
    assert [p.name for p in dirs["outparent"].iterdir()] == ["OUT"]
