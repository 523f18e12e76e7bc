"""The sweep's plot: frames/s against LUTs, one marker a point, accuracy as colour.

Drawn with matplotlib's object API on a bare :class:`~matplotlib.figure.Figure` (Agg for
PNG, the SVG backend for SVG), so it needs no display and leaves pyplot's global state
alone. Axes are logarithmic where the values span more than two octaves. Markers: the
precision mode (circle fixed, square incremental); the rate is written beside each
point. Pareto-optimal points are ringed and the frames/s-against-LUT front is drawn as a
staircase; points that do not fit or miss their rate are grey crosses; published designs
(``--reference``) are black stars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hwgen.explore.tables import Reference

__all__ = ["plot_sweep"]

_MARKERS = {"fixed": "o", "incremental": "s"}


def _rate_label(row: dict[str, object]) -> str:
    if row.get("input_rate") is not None:
        return f"{row['input_rate']:g}"
    return f"{row['target_fps']:.3g}/s"


def _luts(rows: Sequence[dict[str, object]]) -> list[float]:
    return [float(r["lut"]) for r in rows]  # type: ignore[arg-type]


def _fps(rows: Sequence[dict[str, object]]) -> list[float]:
    return [float(r["frames_per_s"]) for r in rows]  # type: ignore[arg-type]


#: An axis is logarithmic when its values span more than this factor (two octaves): rates
#: double from point to point, and a log axis spaces them evenly.
LOG_SPAN = 4.0


def _log_if_wide(values: Sequence[float]) -> str:
    positive = [v for v in values if v > 0]
    wide = positive and len(positive) == len(values) and max(positive) > LOG_SPAN * min(positive)
    return "log" if wide else "linear"


#: The staircase joins the designs within this much top-1 agreement of the sweep's best: the
#: speed-area front of the designs that keep the accuracy (the rings mark the full Pareto set).
FRONT_ACCURACY_SLACK = 0.01


def _front_2d(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The accurate ok points no other accurate one is as fast and as small as (and better in one), by LUTs."""
    ok = [r for r in rows if r["status"] == "ok"]
    best = max((float(r["top1_agreement"]) for r in ok), default=1.0)  # type: ignore[arg-type]
    ok = [r for r in ok if float(r["top1_agreement"]) >= best - FRONT_ACCURACY_SLACK]  # type: ignore[arg-type]

    def dominated(r: dict[str, object]) -> bool:
        return any(
            o["frames_per_s"] >= r["frames_per_s"]  # type: ignore[operator]
            and o["lut"] <= r["lut"]  # type: ignore[operator]
            and (o["frames_per_s"], o["lut"]) != (r["frames_per_s"], r["lut"])
            for o in ok
        )

    return sorted((r for r in ok if not dominated(r)), key=lambda r: (r["lut"], r["frames_per_s"]))  # type: ignore[arg-type,return-value]


def plot_sweep(
    rows: Sequence[dict[str, object]],
    references: Sequence[Reference],
    title: str,
    paths: Sequence[Path],
) -> None:
    """Draw the sweep and save it to each of ``paths`` (the format from the suffix)."""
    from matplotlib import rc_context
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    measured = [r for r in rows if r.get("lut") is not None]
    ok = [r for r in measured if r["status"] == "ok"]
    other = [r for r in measured if r["status"] != "ok"]
    failed = len(rows) - len(measured)

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    accuracy = [100 * float(r["top1_agreement"]) for r in ok]  # type: ignore[arg-type]
    high = max(accuracy, default=100.0)
    low = min(accuracy, default=high)
    norm = Normalize(vmin=min(low, high - 1.0), vmax=high)
    cmap = "viridis"
    mappable = None
    for mode in sorted({str(r["precision"]) for r in ok}):
        group = [r for r in ok if r["precision"] == mode]
        mappable = ax.scatter(
            _luts(group),
            _fps(group),
            c=[100 * float(r["top1_agreement"]) for r in group],  # type: ignore[arg-type]
            cmap=cmap,
            norm=norm,
            marker=_MARKERS.get(mode, "D"),
            s=60,
            edgecolors="none",
            zorder=3,
            label=mode,
        )
    pareto = [r for r in ok if r["pareto"]]
    if pareto:
        ax.scatter(
            _luts(pareto),
            _fps(pareto),
            s=160,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            zorder=4,
            label="Pareto-optimal (frames/s, LUT, accuracy)",
        )
    front = _front_2d(ok)
    if len(front) > 1:
        floor = 100 * (max(float(r["top1_agreement"]) for r in ok) - FRONT_ACCURACY_SLACK)  # type: ignore[arg-type]
        ax.step(
            _luts(front),
            _fps(front),
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            zorder=2,
            label=f"frames/s-LUT front, top-1 \u2265 {floor:.0f}%",
        )
    if other:
        ax.scatter(
            _luts(other),
            _fps(other),
            marker="x",
            color="0.55",
            s=50,
            zorder=3,
            label="does not fit / rate not met",
        )
    for r in measured:
        # Below the marker for incremental points: fixed and incremental often share a place.
        ax.annotate(
            _rate_label(r),
            (r["lut"], r["frames_per_s"]),  # type: ignore[arg-type]
            textcoords="offset points",
            xytext=(6, 4) if r["precision"] == "fixed" else (6, -11),
            fontsize=7,
            color="0.25",
        )
    if references:
        ax.scatter(
            [ref.lut for ref in references],
            [ref.frames_per_s for ref in references],
            marker="*",
            s=180,
            color="black",
            zorder=5,
            label="published designs",
        )
        for ref in references:
            ax.annotate(ref.name, (ref.lut, ref.frames_per_s), textcoords="offset points", xytext=(7, -10), fontsize=8)
    xs = _luts(measured) + [ref.lut for ref in references]
    ys = _fps(measured) + [ref.frames_per_s for ref in references]
    for axis, values, set_scale in ((ax.xaxis, xs, ax.set_xscale), (ax.yaxis, ys, ax.set_yscale)):
        scale = _log_if_wide(values)
        set_scale(scale)
        # 200k, 1M rather than 2x10^5; on a log axis of less than a decade or two, label the
        # minor ticks too (else two labels at most).
        axis.set_major_formatter(EngFormatter(sep=""))
        if scale == "log" and max(values) < 30 * min(values):
            axis.set_minor_formatter(EngFormatter(sep=""))
        axis.set_tick_params(which="both", labelsize=8)
    ax.set_xlabel("LUTs (twngen estimate); numbers: the input rate (--input-rate) or target")
    ax.set_ylabel("frames/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", linewidth=0.5, alpha=0.5)
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label="top-1 agreement with the source model (%)")
    handles, labels = ax.get_legend_handles_labels()
    # The precision markers in the legend in a neutral colour: the colour is the accuracy.
    for i, label in enumerate(labels):
        if label in _MARKERS or label in {str(r["precision"]) for r in ok}:
            handles[i] = Line2D([], [], marker=_MARKERS.get(label, "D"), linestyle="", color="0.35", markersize=7)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="lower right")  # the dominated corner: usually empty
    notes = []
    if failed:
        notes.append(f"{failed} point(s) failed to build (explore.md says why)")
    if not measured and not references:
        notes.append("no point finished")
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=8, color="0.3")
    # Deterministic SVG: fixed ids, no date.
    with rc_context({"svg.hashsalt": "twngen-explore"}):
        for path in paths:
            tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
            metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
            fig.savefig(tmp, dpi=150, metadata=metadata)
            tmp.replace(path)
