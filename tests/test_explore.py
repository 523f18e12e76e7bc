"""twngen explore (hwgen.explore): a small sweep of the bundled MLP on local processes and on a
real two-worker Dask LocalCluster, its table checked against each point's report.json, a point
that fails with its reason, and an interrupted sweep that keeps what finished."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import PROGRESS_LINE, REPO

from hwgen.cli import main
from hwgen.errors import TwnError
from hwgen.explore import COLUMNS, Reference, explore, grid, pareto_front, replot

MODEL = REPO / "examples" / "mlp_ternary.onnx"
# Rate 1000 elements a cycle is beyond the 64-input MLP's one vector a cycle: "rate not met".
SWEEP = ["--board", "zcu111", "--rates", "4,16,1000", "--keep", "-o", "sweep"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("build_s", "stage_s")} for row in rows]


def _check_plot(out: Path) -> None:
    assert (out / "explore.png").read_bytes().startswith(PNG_SIGNATURE)
    assert ET.parse(out / "explore.svg").getroot().tag.endswith("svg")


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("local")
    run = subprocess.run(
        [sys.executable, "-m", "hwgen.cli", "explore", str(MODEL), *SWEEP, "--jobs", "2"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return cwd / "sweep", run


def test_rows_are_the_reports_numbers(local_sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = local_sweep
    doc = json.loads((out / "explore.json").read_text())
    assert doc["complete"] is True and doc["points"] == doc["finished"] == 3
    rows = doc["rows"]
    assert [r["input_rate"] for r in rows] == [4.0, 16.0, 1000.0]
    for row in rows:
        report = json.loads((out.parent / row["build_dir"] / "report.json").read_text())
        util = report["utilisation"]
        assert row["ii_cycles"] == report["initiation_interval_cycles"]
        assert row["frames_per_s"] == report["throughput_per_s"]
        assert row["latency_cycles"] == report["latency_cycles"]
        assert row["latency_us"] == report["latency_us"]
        assert {k: row[k] for k in ("lut", "ff", "bram", "dsp")} == report["resources"]
        assert {k: row[f"{k}_utilisation"] for k in util} == {k: v["fraction"] for k, v in util.items()}
        assert row["fits"] == report["fits"]
        assert row["top1_agreement"] == report["accuracy"]["top1_agreement"]
        assert row["max_abs_error"] == report["accuracy"]["max_abs_error"]
        assert {"merging adder graphs", "accuracy check against onnxruntime"} <= set(row["stage_s"])
        # The row's command is the one the point's build recorded: it rebuilds that folder.
        assert row["command"] == report["command"]
        args = shlex.split(row["command"])
        assert args[args.index("--input-rate") + 1] == f"{row['input_rate']:g}"
        assert args[args.index("-o") + 1] == row["build_dir"]
    ok, fast, too_fast = rows
    assert (ok["status"], fast["status"], too_fast["status"]) == ("ok", "ok", "rate not met")
    assert too_fast["ii_cycles"] == 1 and too_fast["reason"].startswith("asked for")
    assert too_fast["requested_frames_per_s"] > too_fast["frames_per_s"]
    assert [r["pareto"] for r in rows] == [True, True, False]


def test_csv_holds_the_json_rows(local_sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = local_sweep
    rows = json.loads((out / "explore.json").read_text())["rows"]
    with open(out / "explore.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS)
    assert len(table) == len(rows)
    for line, row in zip(table, rows, strict=True):
        for key in COLUMNS:
            value = row[key]
            if value is None:
                assert line[key] == ""
            elif isinstance(value, bool):
                assert line[key] == str(value)
            elif isinstance(value, (int, float)):
                assert float(line[key]) == value, key
            else:
                assert line[key] == value


def test_markdown_plot_and_progress(local_sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, run = local_sweep
    _check_plot(out)
    md = (out / "explore.md").read_text()
    assert "![frames/s against LUTs](explore.png)" in md
    for label in ("zcu111 rate 4 fixed", "zcu111 rate 16 fixed", "zcu111 rate 1000 fixed (rate not met)"):
        assert label in md
    lines = run.stderr.splitlines()
    assert lines and all(PROGRESS_LINE.match(line) for line in lines)
    assert any("zcu111 rate 16 fixed: II 4" in line for line in lines)
    assert "3/3 points, 2 ok, 1 rate not met" in lines[-1]
    assert "explored 3 points" in run.stdout


def test_dask_cluster_gives_the_same_rows(
    local_sweep: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    local, _ = local_sweep
    monkeypatch.chdir(tmp_path)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert main(["explore", str(MODEL), *SWEEP, "-q", "--scheduler", cluster.scheduler_address]) == 0
    doc = json.loads((tmp_path / "sweep" / "explore.json").read_text())
    assert doc["executor"].startswith(f"Dask at {cluster.scheduler_address} (2 worker thread(s))")
    expected = json.loads((local / "explore.json").read_text())["rows"]
    assert _without_times(doc["rows"]) == _without_times(expected)
    _check_plot(tmp_path / "sweep")


def test_failed_points_are_rows_and_an_interrupt_keeps_what_finished(tmp_path: Path) -> None:
    # On the iCE40UP5K even the slowest schedule needs more flip-flops than it has; 1e12 frames/s
    # is beyond any schedule at its 12 MHz.
    seen: list[dict[str, object]] = []

    def interrupt_after_two(row: dict[str, object]) -> None:
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore(
            MODEL,
            "icebreaker",
            target_fps=[1e5, 1e12, 2e5],
            outdir=tmp_path / "sweep",
            jobs=1,
            references=["published=4000@2e5"],
            on_row=interrupt_after_two,
        )
    doc = json.loads((tmp_path / "sweep" / "explore.json").read_text())
    assert doc["complete"] is False and doc["state"] == "interrupted"
    assert (doc["points"], doc["finished"]) == (3, 2)
    slow, impossible = doc["rows"]
    assert slow["status"] == "does not fit" and slow["fits"] is False
    assert slow["reason"].startswith("does not fit icebreaker") and "FF" in slow["reason"]
    assert impossible["status"] == "failed" and impossible["lut"] is None
    assert "above what any schedule reaches" in impossible["reason"]
    assert "\n" not in impossible["reason"]
    assert not any(r["pareto"] for r in doc["rows"])
    assert doc["references"] == [{"name": "published", "lut": 4000.0, "frames_per_s": 2e5}]
    with open(tmp_path / "sweep" / "explore.csv", newline="") as f:
        assert [r["point"] for r in csv.DictReader(f)] == [slow["point"], impossible["point"]]
    assert "interrupted" in (tmp_path / "sweep" / "explore.md").read_text()
    _check_plot(tmp_path / "sweep")
    # Redrawn from explore.json alone, as after a change to the drawing.
    (tmp_path / "sweep" / "explore.png").unlink()
    replot(tmp_path / "sweep")
    _check_plot(tmp_path / "sweep")


def test_grid_and_options_refused_up_front(tmp_path: Path) -> None:
    points = grid(["zcu111", "pynq-z2"], ["fixed", "incremental"], rates=[0.5, 2, 0.5])
    assert [p.ident for p in points[:4]] == [
        "zcu111-rate0.5-fixed",
        "zcu111-rate0.5-incremental",
        "zcu111-rate2-fixed",
        "zcu111-rate2-incremental",
    ]
    assert len(points) == 8
    with pytest.raises(TwnError, match="not both"):
        grid(["zcu111"], rates=[1], target_fps=[1e6])
    with pytest.raises(TwnError, match="--precision must be among"):
        grid(["zcu111"], ["exact"])
    with pytest.raises(TwnError, match="--rates must be positive"):
        grid(["zcu111"], rates=[0])
    with pytest.raises(TwnError, match="NAME=LUT@FPS"):
        Reference.parse("published:4000")
    with pytest.raises(TwnError, match="no-such-board"):
        explore(MODEL, "no-such-board", outdir=tmp_path / "x")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(TwnError):
        explore(bad, "zcu111", outdir=tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_cli_refusals_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["explore", str(MODEL), "--board", "zcu111", "--rates", "1", "--reference", "x", "-o", str(tmp_path)]) == 2
    )
    assert "--reference must be NAME=LUT@FPS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explore", str(MODEL), "--board", "zcu111", "--rates", "a,b"])


def test_pareto_front_weighs_speed_area_and_accuracy() -> None:
    def row(fps: float, lut: int, top1: float, status: str = "ok") -> dict[str, object]:
        return {"frames_per_s": fps, "lut": lut, "top1_agreement": top1, "status": status}

    rows = [
        row(1e6, 1000, 1.0),
        row(1e6, 800, 0.9),  # smaller but less accurate: both stay
        row(1e6, 1200, 1.0),  # dominated by the first
        row(2e6, 5000, 1.0),
        row(9e9, 10, 1.0, "does not fit"),  # not a candidate
    ]
    assert pareto_front(rows) == [0, 1, 3]
