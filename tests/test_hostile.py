"""Hostile and strange inputs: refused with exit 2 and one message, or built correctly."""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import stderr_without_progress
from onnx import TensorProto, helper, numpy_helper

from hwgen.plan import plan_network
from hwgen.verify import load_build


def _model(nodes, inits, in_shape=("n", 4), out_shape=("n", 3), inputs=None):
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _w(values, name="W"):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


GEMM = [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)]
TERNARY = np.sign(np.random.default_rng(0).standard_normal((3, 4))) * 0.5


def test_all_zero_weights_build_to_constant_outputs(tmp_path):
    path = tmp_path / "zero.onnx"
    b = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "B")
    onnx.save(
        _model([helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", transB=1)], [_w(np.zeros((3, 4))), b]),
        str(path),
    )
    from hwgen.build import build

    result = build(path, "zcu111", tmp_path / "out")
    assert result.report["adders"] == 0
    network, _ = load_build(tmp_path / "out")
    assert plan_network(network).layers[0].graph.outputs == (None, None, None)


def test_names_with_verilog_syntax_never_reach_the_rtl(tmp_path):
    evil = "fc; endmodule module evil(); initial $finish; //"
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name=evil, transB=1)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [_w(TERNARY)],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    from hwgen.build import build

    build(path, "zcu111", tmp_path / "out")
    for v in (tmp_path / "out" / "rtl").glob("*.v"):
        text = v.read_text()
        assert "evil" not in text and "$finish" not in text and "fc;" not in text
        assert text.count("endmodule") == text.count("\nmodule ") + text.startswith("module ")


# -- the committed corpus (tests/fixtures/hostile, made by make_hostile.py) ---------------------

CORPUS = Path(__file__).resolve().parent / "fixtures" / "hostile"
sys.path.insert(0, str(CORPUS))
import make_hostile  # noqa: E402

#: Address space the CLI gets for a refused file: far below what an absurd declared size would need.
REFUSE_MEMORY = 3 << 30


def _sandbox(tmp_path: Path) -> dict[str, Path]:
    """A fresh cwd, HOME, TMPDIR and cache, so anything written outside OUTDIR shows up."""
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp", "cache", "models")}
    for d in dirs.values():
        d.mkdir()
    return dirs


def _env(dirs: dict[str, Path]) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "TWNGEN_"))}
    env.update(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]), TWNGEN_CACHE=str(dirs["cache"]))
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the interpreter's own .pyc files are not twngen's output
    return env


def _twngen(args: list[str], dirs: dict[str, Path], memory: int | None = None, timeout: float = 300):
    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "hwgen.cli", *args], cwd=dirs["cwd"], env=_env(dirs), capture_output=True,
        text=True, check=False, timeout=timeout, preexec_fn=limit,
    )  # fmt: skip


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_corpus_is_what_the_script_writes(tmp_path):
    """The committed files are reproducible: make_hostile.py rewrites them byte for byte."""
    r = subprocess.run([sys.executable, str(CORPUS / "make_hostile.py"), str(tmp_path)], capture_output=True,
                       text=True, check=True)  # fmt: skip
    assert "wrote" in r.stdout
    written = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert written == sorted(p.name for p in CORPUS.glob("*.onnx"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name
    readme = (CORPUS / "README.md").read_text()
    for case in (*make_hostile.REFUSE, *make_hostile.BUILD):
        assert f"`{case}.onnx`" in readme, f"README.md does not describe {case}"


@pytest.fixture
def fifo():
    """The FIFO external_fifo.onnx points at: opening it for reading would block (no writer)."""
    path = Path("/tmp/twngen-hostile-fifo")
    made = False
    if not path.exists():
        os.mkfifo(path)
        made = True
    assert path.is_fifo() if hasattr(path, "is_fifo") else True
    yield path
    if made:
        path.unlink()


@pytest.mark.parametrize("case", sorted(make_hostile.REFUSE))
def test_corpus_file_is_refused_safely(tmp_path, case, fifo):
    """Exit 2, one paragraph naming what is wrong, no traceback, nothing written, little memory."""
    dirs = _sandbox(tmp_path)
    model = dirs["models"] / f"{case}.onnx"
    shutil.copy(CORPUS / model.name, model)
    out = dirs["cwd"] / "OUT"
    # A timeout here means the FIFO (or another external path) was opened.
    r = _twngen([str(model), "--board", "zcu111", "-o", str(out)], dirs, memory=REFUSE_MEMORY, timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    msg = stderr_without_progress(r.stderr).strip()  # the stages started before the refusal
    assert r.stderr.rstrip().endswith(msg)
    assert msg.startswith("twngen: error:") and "Traceback" not in msg, msg
    assert "\n" not in msg, "one paragraph"
    assert re.search(make_hostile.REFUSE[case], msg), msg
    assert r.stdout == ""
    assert not out.exists()
    for name in ("cwd", "home", "tmp"):
        assert _files(dirs[name]) == [], f"{case} wrote into {name}: {_files(dirs[name])}"
    # A model refused only by the accuracy check has had its graphs merged: the cache may keep them.
    assert all(re.fullmatch(r"[0-9a-f]{64}\.json", f) for f in _files(dirs["cache"])), _files(dirs["cache"])
    assert _files(dirs["models"]) == [model.name]


def _rtl_identifiers_are_clean(outdir: Path) -> None:
    evil = ["$display", "$finish", "endmodule module", "`define", "\u202e", "\\slash", "pwned", "\u5168"]
    for v in (outdir / "rtl").glob("*.v"):
        text = v.read_text(encoding="utf-8")
        assert text.isascii(), f"{v.name}: non-ASCII characters in the RTL"
        for bad in evil:
            assert bad not in text, f"{v.name} contains {bad!r}"
        # Escaped identifiers are the backend's own hierarchy and Yosys names (\\twn_top.layer0_adders,
        # \\x$11[0], \\$auto$...): plain characters only, never a name from the model.
        escaped = set(re.findall(r"\\(\S+)", re.sub(r"//.*|/\*.*?\*/", "", text, flags=re.S)))
        assert all(re.fullmatch(r"[A-Za-z0-9_$.:\[\]]+", e) for e in escaped), sorted(
            e for e in escaped if not re.fullmatch(r"[A-Za-z0-9_$.:\[\]]+", e)
        )[:5]
        modules = re.findall(r"^module\s+(\S+?)\s*\(", text, flags=re.M)
        assert modules and len(modules) == len(set(modules)), modules
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*|\\[A-Za-z_][A-Za-z0-9_$.]*", m) for m in modules), modules
        assert text.count("endmodule") == len(modules)


@pytest.mark.parametrize("case", make_hostile.BUILD)
def test_corpus_file_builds_and_verifies(tmp_path, case):
    """All-zero and low-bit weights, names in other scripts or holding Verilog: build, verify, clean RTL."""
    dirs = _sandbox(tmp_path)
    model = dirs["models"] / f"{case}.onnx"
    shutil.copy(CORPUS / model.name, model)
    out = dirs["cwd"] / "OUT"
    r = _twngen([str(model), "--board", "zcu111", "-o", str(out)], dirs)
    assert r.returncode == 0, r.stderr[-3000:]
    v = _twngen(["verify", str(out), "--simulator", "icarus", "--vectors", "12"], dirs)
    assert v.returncode == 0, v.stdout[-2000:] + v.stderr[-2000:]
    assert "12 passed, 0 failed" in v.stdout
    _rtl_identifiers_are_clean(out)
    report = json.loads((out / "report.json").read_text())
    if case == "all_zero_weights":
        assert report["adders"] == 0
    if case == "lowbit_weights":
        kinds = [layer["weight_kind"] for layer in report["layers"]]
        assert kinds == ["int4", "int8"], kinds
    if case == "evil_names":
        # Seven distinct layers, named as in the model (names are report text, never RTL).
        assert len(report["layers"]) == 7
        assert report["layers"][0]["name"] == make_hostile.EVIL_NAMES[0]
