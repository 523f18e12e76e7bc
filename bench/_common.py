"""What several benches share (not a bench itself: ``make bench`` skips ``bench/_*.py``)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def add_classifier_arguments(ap: argparse.ArgumentParser, calibrate: int = 256) -> None:
    """The classifier's shape and its frames: ``--channels``, ``--seed``, ``--rate``, ``--calibrate``."""
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--calibrate", type=int, default=calibrate, help="calibration frames (seed 1)")


def replace_between(doc: Path, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the marker lines ``begin`` and ``end`` of ``doc`` (generated tables:
    numbers are never typed in)."""
    text = doc.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: the markers {begin!r} and {end!r} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}{body}{end}{tail}")


def git_commit() -> str | None:
    """The checkout's short commit (None outside git), recorded beside a bench's results."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return proc.stdout.strip() or None


def report_figures(report: dict) -> dict[str, object]:
    """A build's headline figures from its report.json: adders, II, throughput, latency, estimate."""
    return {
        "adders": report["adders"],
        "naive_adders": report["naive_adders"],
        "initiation_interval_cycles": report["initiation_interval_cycles"],
        "throughput_per_s": report["throughput_per_s"],
        "latency_cycles": report["latency_cycles"],
        "latency_us": report["latency_us"],
        "estimate": report["resources"],
    }


def write_results(out: str | Path, result: dict) -> None:
    """The bench's results as indented JSON at ``out`` (folders made as needed)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
