"""hwgen.console.progress: stage lines for logs, the live display on a terminal, silence by default,
and the counts the long passes report (layers merged, modules emitted)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from conftest import PROGRESS_LINE

from hwgen.console import SILENT, LiveProgress, PlainProgress, progress_for


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_name_each_stage_its_counts_and_times():
    out = io.StringIO()
    progress = PlainProgress(out)
    with progress.stage("parsing model.onnx"):
        pass
    with progress.stage("merging adder graphs", 3, "layers") as s:
        for k in range(1, 4):
            s.update(k)
    with progress.stage("simulating 12 vectors on Verilator") as s:
        s.detail = "12/12 vectors passed"
    lines = out.getvalue().splitlines()
    assert all(PROGRESS_LINE.match(line) for line in lines), lines
    text = [re.sub(r"^twngen: \[ *\d+\.\ds\] ", "", line) for line in lines]
    assert [re.sub(r"done in \d+\.\ds", "done in T", t) for t in text] == [
        "parsing model.onnx",
        "parsing model.onnx: done in T",
        "merging adder graphs: 0/3 layers",
        "merging adder graphs: 1/3 layers",
        "merging adder graphs: 2/3 layers",
        "merging adder graphs: 3/3 layers",
        "merging adder graphs: 3/3 layers, done in T",
        "simulating 12 vectors on Verilator",
        "simulating 12 vectors on Verilator: 12/12 vectors passed, done in T",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_failing_stage_leaves_the_last_word_to_the_error():
    out = io.StringIO()
    with pytest.raises(ValueError), PlainProgress(out) as progress, progress.stage("parsing bad.onnx"):
        raise ValueError("refused")
    assert out.getvalue().splitlines()[-1].endswith("parsing bad.onnx")  # started, never "done"


def test_quiet_and_the_library_default_say_nothing():
    out = _Terminal()
    for progress in (progress_for(True, out), SILENT):
        with progress, progress.stage("merging adder graphs", 2, "layers") as s:
            s.update(2)
    assert out.getvalue() == ""


def test_a_terminal_gets_the_live_display_and_a_log_plain_lines():
    assert isinstance(progress_for(False, io.StringIO()), PlainProgress)
    out = _Terminal()
    progress = progress_for(False, out)
    assert isinstance(progress, LiveProgress)
    with progress, progress.stage("emitting Verilog", unit="modules") as s:
        s.update(2, 5)
    assert "emitting Verilog" in out.getvalue() and "2/5 modules" in out.getvalue()


def _matrices(rng: np.random.Generator, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    return [rng.choice([-1, 0, 1], size=shape).astype(np.int64) for shape in shapes]


@pytest.mark.parametrize("jobs, shapes", [(1, [(6, 8), (5, 6), (3, 5)]), (2, [(150, 140), (140, 150), (4, 150)])])
def test_merging_counts_layers_in_the_parent(rng, jobs, shapes):
    """Big layers merge in worker processes: the parent counts each as it comes back; small ones in-process."""
    from hwgen.passes.adder_graphs import BuildAdderGraphs

    matrices = _matrices(rng, shapes)
    names = [f"layer{k}" for k in range(len(matrices))]
    calls: list[tuple[int, int]] = []
    graphs = BuildAdderGraphs(jobs=jobs, on_layer=lambda done, total: calls.append((done, total)))._merged_graphs(
        matrices, names
    )
    assert calls == [(k, len(shapes)) for k in range(1, len(shapes) + 1)]
    assert graphs == BuildAdderGraphs(jobs=1)._merged_graphs(matrices, names)  # the callback changes nothing
    assert BuildAdderGraphs(on_layer=print) == BuildAdderGraphs()
