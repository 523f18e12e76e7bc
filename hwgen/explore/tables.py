"""The rows of a sweep and the files they go to: explore.json, explore.csv, explore.md.

A row is one point of the grid: its options, what its build reported (II, frames/s,
latency, resources and utilisation, fits, accuracy against the source model), how
long it took, its status and, for a point that is not ``ok``, the one-line reason.
Every number comes from the point's report.json (:func:`row_from_report`); nothing
is computed here but the Pareto front.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import TwnError

__all__ = [
    "COLUMNS",
    "STATUSES",
    "Reference",
    "failed_row",
    "pareto_front",
    "render_csv",
    "render_json",
    "render_markdown",
    "row_from_report",
]

#: What a point can end as. Only ``ok`` points compete for the Pareto front.
STATUSES = ("ok", "does not fit", "rate not met", "failed")

#: explore.csv's columns, in order (explore.json's rows have the same keys).
COLUMNS = (
    "point",
    "board",
    "input_rate",
    "target_fps",
    "precision",
    "status",
    "reason",
    "ii_cycles",
    "frames_per_s",
    "requested_frames_per_s",
    "latency_cycles",
    "latency_us",
    "lut",
    "ff",
    "bram",
    "dsp",
    "lut_utilisation",
    "ff_utilisation",
    "bram_utilisation",
    "dsp_utilisation",
    "fits",
    "top1_agreement",
    "max_abs_error",
    "accuracy_samples",
    "act_bits",
    "synth_lut",
    "synth_ff",
    "synth_dsp",
    "build_s",
    "pareto",
    "build_dir",
    "command",
)

#: Relative slack when comparing the achieved rate with the requested one (float noise only).
_RATE_SLACK = 1e-9


@dataclass(frozen=True)
class Reference:
    """A published design to plot beside the sweep: ``NAME=LUT@FPS`` (``--reference``)."""

    name: str
    lut: float
    frames_per_s: float

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, sep, rest = text.rpartition("=")
        lut, at, fps = rest.partition("@")
        try:
            value = cls(name.strip(), float(lut), float(fps))
        except ValueError:
            value = None
        if not sep or not at or value is None or not value.name:
            raise TwnError(f"--reference must be NAME=LUT@FPS (e.g. TW-INCRA=12000@1e6), not {text!r}")
        if not all(math.isfinite(v) and v > 0 for v in (value.lut, value.frames_per_s)):
            raise TwnError(f"--reference {text!r}: LUT and FPS must be positive numbers")
        return value

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "lut": self.lut, "frames_per_s": self.frames_per_s}


def _blank_row(point: dict[str, object], command: str, build_dir: str) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(COLUMNS)
    row.update(point)
    row.update(command=command, build_dir=build_dir, pareto=False, reason="")
    return row


def failed_row(point: dict[str, object], reason: str, build_s: float, command: str) -> dict[str, object]:
    """The row of a point whose build stopped: no numbers, the error as its reason."""
    row = _blank_row(point, command, "")
    row.update(status="failed", reason=" ".join(reason.split()), build_s=round(build_s, 3))
    return row


def row_from_report(
    point: dict[str, object],
    report: dict,  # type: ignore[type-arg]
    requested_fps: float | None,
    build_s: float,
    command: str,
    build_dir: str,
) -> dict[str, object]:
    """A row from a point's report.json: the numbers as the build reported them, the status
    (``does not fit`` the board, ``rate not met``: fewer frames/s than asked for) and why."""
    row = _blank_row(point, command, build_dir)
    res = report["resources"]
    util = report["utilisation"]
    acc = report["accuracy"]
    options = report["options"]
    layer_bits = options.get("layer_act_bits") or {}
    row.update(
        ii_cycles=report["initiation_interval_cycles"],
        frames_per_s=report["throughput_per_s"],
        requested_frames_per_s=requested_fps,
        latency_cycles=report["latency_cycles"],
        latency_us=report["latency_us"],
        **{k: res[k] for k in ("lut", "ff", "bram", "dsp")},
        **{f"{k}_utilisation": util[k]["fraction"] for k in ("lut", "ff", "bram", "dsp")},
        fits=report["fits"],
        top1_agreement=acc["top1_agreement"],
        max_abs_error=acc["max_abs_error"],
        accuracy_samples=acc["samples"],
        act_bits=" ".join(str(b) for b in layer_bits.values()) if layer_bits else str(options["act_bits"]),
        build_s=round(build_s, 3),
    )
    if "synthesis" in report:
        syn = report["synthesis"]
        row.update(synth_lut=syn.get("lut"), synth_ff=syn.get("ff"), synth_dsp=syn.get("dsp"))
    reasons = []
    if not report["fits"]:
        over = ", ".join(
            f"{k.upper()} {v['used']:,} of {v['available']:,}"
            for k, v in util.items()
            if v["used"] > v["available"] and v.get("checked", True)
        )
        reasons.append(f"does not fit {report['board']} ({report['part']}): {over}")
    if requested_fps is not None and report["throughput_per_s"] < requested_fps * (1 - _RATE_SLACK):
        reasons.append(
            f"asked for {requested_fps:,.6g} frames/s, the fastest schedule takes a frame every "
            f"{report['initiation_interval_cycles']} cycle(s): {report['throughput_per_s']:,.6g} frames/s"
        )
    row["status"] = "ok" if not reasons else ("does not fit" if not report["fits"] else "rate not met")
    row["reason"] = "; ".join(reasons)
    return row


def _dominates(a: dict[str, object], b: dict[str, object]) -> bool:
    """``a`` is at least as fast, as small and as accurate as ``b``, and better in one."""
    ka = (a["frames_per_s"], -a["lut"], a["top1_agreement"])  # type: ignore[operator]
    kb = (b["frames_per_s"], -b["lut"], b["top1_agreement"])  # type: ignore[operator]
    return all(x >= y for x, y in zip(ka, kb, strict=True)) and ka != kb  # type: ignore[operator]


def pareto_front(rows: Sequence[dict[str, object]]) -> list[int]:
    """Indices of the ``ok`` rows no other ``ok`` row dominates in (frames/s up, LUTs down,
    top-1 agreement up): the designs worth choosing between."""
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    return [i for i in ok if not any(_dominates(rows[j], rows[i]) for j in ok if j != i)]


def render_json(summary: dict[str, object], rows: Sequence[dict[str, object]]) -> str:
    return json.dumps({**summary, "rows": list(rows)}, indent=2) + "\n"


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # exact: the CSV reads back to the report's numbers
    return value


def render_csv(rows: Sequence[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in COLUMNS])
    return out.getvalue()


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(summary: dict[str, object], rows: Sequence[dict[str, object]], plot: str | None) -> str:
    """explore.md: what was swept, the plot, one table row a point, and why points failed."""
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    state = {
        "complete": "complete",
        "running": "still running: the points finished so far",
        "interrupted": "interrupted: the points that finished",
    }[str(summary.get("state") or ("complete" if summary.get("complete") else "interrupted"))]
    lines = [
        f"# twngen explore: {summary['model']}",
        "",
        f"`{summary['command']}`" if summary.get("command") else "",
        "",
        f"{len(rows)} of {summary['points']} points ({state}); "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f". Ran on {summary['executor']} in {summary['elapsed_s']:.1f}s. "
        "Resources are twngen's estimate (`--synth-estimate` adds Yosys counts); accuracy is the "
        "golden model against onnxruntime on the build's check batch. "
        "Pareto-optimal: no other point is as fast, as small and as accurate and better in one.",
        "",
    ]
    if plot:
        lines += [f"![frames/s against LUTs]({plot})", ""]
    lines += [
        "| point | status | II | frames/s | latency (cycles) | LUT | FF | BRAM | DSP | LUT % | top-1 | "
        "max error | act bits | build (s) | Pareto |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|",
    ]
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"| {_md_cell(r['point'])} | failed | | | | | | | | | | | | {r['build_s']} | |")
            continue
        lines.append(
            f"| {_md_cell(r['point'])} | {r['status']} | {r['ii_cycles']} | {_si(r['frames_per_s'])} | "  # type: ignore[arg-type]
            f"{r['latency_cycles']} | {r['lut']:,} | {r['ff']:,} | {r['bram']} | {r['dsp']} | "
            f"{100 * r['lut_utilisation']:.1f} | {100 * r['top1_agreement']:.1f}% | "  # type: ignore[operator]
            f"{r['max_abs_error']:.3g} | {_md_cell(r['act_bits'])} | {r['build_s']} | "
            f"{'yes' if r['pareto'] else ''} |"
        )
    stages: dict[str, float] = {}
    for r in rows:
        for name, seconds in (r.get("stage_s") or {}).items():  # type: ignore[attr-defined]
            stages[name] = stages.get(name, 0.0) + seconds
    total = sum(stages.values())
    if total > 0:
        lines += [
            "",
            "Build time by stage, summed over the points: "
            + ", ".join(
                f"{name} {seconds:.1f}s ({100 * seconds / total:.0f}%)"
                for name, seconds in sorted(stages.items(), key=lambda kv: -kv[1])
                if seconds >= 0.01 * total
            )
            + ".",
        ]
    refs = summary.get("references") or []
    if refs:
        lines += ["", "Published designs plotted for comparison:", ""]
        lines += [f"- {ref['name']}: {ref['lut']:,.0f} LUT at {_si(ref['frames_per_s'])} frames/s" for ref in refs]  # type: ignore[attr-defined]
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        lines += ["", "## Points that are not ok", ""]
        lines += [f"- {r['point']} ({r['status']}): {r['reason']}" for r in bad]
    lines += [
        "",
        "## Rebuilding a point",
        "",
        "Each row's `command` (explore.csv, explore.json) builds that point in full, RTL included, "
        "into the folder `--keep` keeps it in:",
        "",
        "```",
        *(str(r["command"]) for r in rows[:3]),
        *(["..."] if len(rows) > 3 else []),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a sweep interrupted while writing leaves the previous file."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)
