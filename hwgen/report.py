"""report.json and report.md: every number computed from the plan and estimate."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any

from hwgen import __version__
from hwgen.estimate import PARTS, Estimate, Resources, total_of
from hwgen.flow.boards import Board
from hwgen.golden import AccuracyReport
from hwgen.ir import FixedFormat, LaneWindowPoolLayer, LinearLayer, Network, PoolLayer
from hwgen.paths import RTL_TEMPLATES_DIR, file_sha256
from hwgen.plan.dense import LayerPlan, NetworkPlan
from hwgen.plan.frames import MAC_LATENCY, DenseStage, FramePlan, LanePoolStage, MacStage, WindowStage
from hwgen.plan.window_schedule import WindowGeometry

__all__ = ["make_report", "overflow_summary", "render_markdown"]


def overflow_summary(report: dict[str, Any], checked: tuple[str, ...], largest: int = 3) -> str:
    """What does not fit, for a report whose ``fits`` is false: each checked resource over the
    board's capacity (used, available, percent) and the ``largest`` layers by that resource."""
    over = [k for k, v in report["utilisation"].items() if k in checked and v["used"] > v["available"]]
    parts = []
    for k in over:
        u = report["utilisation"][k]
        top = sorted(report["layers"], key=lambda la: -float(la.get(k, 0)))[:largest]
        layers = ", ".join(f"{la['name']} {float(la.get(k, 0)):,.0f} ({la['arithmetic']})" for la in top)
        parts.append(
            f"{k} {u['used']:,} of {u['available']:,} ({100 * u['used'] / u['available']:.0f}%; largest: {layers})"
        )
    return "; ".join(parts)


def _fmt_json(f: FixedFormat) -> dict[str, int]:
    return {"bits": f.bits, "frac": f.frac, "min_code": f.lo, "max_code": f.hi}


def _arithmetic(lp: LayerPlan) -> str:
    if lp.serial:
        text = f"digit-serial, {lp.layer.digit_bits}-bit digits"
    else:
        three = lp.graph.three_input_adders
        text = f"parallel, {three:,} of {len(lp.graph.nodes):,} adders three-input" if three else "parallel"
    return text + (f", {_shared_text(lp)}" if lp.shared_units else "")


def _lanes_text(layer: LinearLayer | PoolLayer) -> str:
    """What a layer folded into lanes (:mod:`hwgen.passes.fold_lanes`) takes and gives per beat."""
    lanes_in, lanes_out = layer.fold_lanes
    if (lanes_in, lanes_out) == (1, 1):
        return ""
    if isinstance(layer, LinearLayer) and not layer.is_conv:
        return f"; reads the frame collected {lanes_in} positions a beat (weight columns in the folded order)"
    what = "pixels of a row" if len(layer.in_shape) == 3 else "positions"
    return f"; {lanes_in} {what} in, {lanes_out} out per beat (folded lanes)"


def _stream_packing(network: Network) -> str:
    """How a streamed input's beat is laid out (folded into lanes or not)."""
    p = network.input_lanes
    if p == 1:
        return "; the input streams one position per beat (element j = channel j), raster order"
    c = network.stream_shape[0] // p
    along = "of its row" if len(network.stream_shape) == 3 else ""
    return (
        f"; the input streams {p} consecutive positions {along} per beat (element lane * {c} + c = channel c "
        f"of position {p} * t + lane), raster order".replace("  ", " ")
    )


def _lanes_json(layer: LinearLayer | PoolLayer | None) -> dict[str, int]:
    lanes_in, lanes_out = layer.fold_lanes if layer is not None else (1, 1)
    return {"in": lanes_in, "out": lanes_out}


def _shared_text(lp: LayerPlan) -> str:
    return f"{len(lp.shared_units)} requantiser(s) shared by up to {lp.requant_slots} channels each"


def _requant_text(lp: LayerPlan) -> str:
    if lp.thresholds is not None:
        return "thresholds"
    # A graph quantiser whose steps are affine in the accumulator (hwgen.passes.code_ladder).
    text = "multiply, shift" + (" for the graph quantiser's steps" if lp.layer.quantizer is not None else "")
    return f"{text} ({_shared_text(lp)})" if lp.shared_units else text


def make_report(
    *,
    model: Path,
    network: Network,
    plan: NetworkPlan | FramePlan,
    board: Board,
    clock_mhz: float,
    estimate: Estimate,
    accuracy: AccuracyReport,
    options: object,
    command: str | None,
    schedule: dict[str, object] | None = None,
    precision_choice: dict[str, object] | None = None,
    warnings: list[str] | None = None,
    word_wraps: dict[str, object] | None = None,
) -> dict[str, object]:
    layers: list[dict[str, object]] = []
    in_shape = list(network.input_shape)
    for unit, parts in zip(report_units(plan), estimate.layers, strict=True):
        row = _row(unit, total_of(parts), plan, in_shape)
        row["parts"] = {name: parts[name].to_json() for name in PARTS if name in parts}
        layers.append(row)
        in_shape = list(row["out_shape"])  # type: ignore[call-overload]
    total = estimate.total
    ii = plan.initiation_interval
    avail = {"lut": board.lut, "ff": board.ff, "bram": board.bram36, "dsp": board.dsp}
    used = total.to_json()
    utilisation = {
        k: {
            "used": used[k],
            "available": avail[k],
            "fraction": round(used[k] / avail[k], 6),
            **({} if k in board.checked_resources else {"checked": False}),
        }
        for k in ("lut", "ff", "bram", "dsp")
    }
    assert network.input_format is not None
    out_fmt = network.linear_layers[-1].requant.out  # type: ignore[union-attr]
    return {
        "twngen_version": __version__,
        "model": model.name,
        "model_sha256": file_sha256(model),
        "board": board.name,
        "part": board.part,
        "clock_mhz": clock_mhz,
        "command": command,
        "options": options.to_json(),  # type: ignore[attr-defined]
        "schedule": {**(schedule or {}), "initiation_interval_cycles": plan.initiation_interval},
        "input": {
            "name": network.input_name,
            "shape": list(network.input_shape),
            "format": _fmt_json(network.input_format),
        },
        "output": {
            "name": network.output_name,
            "shape": list(network.output_shape),
            "format": _fmt_json(out_fmt),
            "hardware_emits": "class index (argmax)" if network.argmax_output else "output codes",
        },
        "layers": layers,
        "adders": sum(int(layer["adders"]) for layer in layers),  # type: ignore[call-overload]
        "naive_adders": sum(int(layer["naive_adders"]) for layer in layers),  # type: ignore[call-overload]
        "latency_cycles": plan.latency,
        "latency_us": plan.latency / clock_mhz,
        "initiation_interval_cycles": ii,
        "throughput_per_s": clock_mhz * 1e6 / ii,
        "resources": used,
        "resources_by_part": {name: res.to_json() for name, res in estimate.by_part.items()},
        "resources_outside_layers": {name: res.to_json() for name, res in estimate.outside.items()},
        "resource_parts": dict(PARTS),
        "resource_estimate_model": "first-order LUT/FF/DSP model (hwgen.estimate), not synthesis"
        + (
            f"; it counts Xilinx LUT6s, so against the LUT{board.lut_inputs}s of {board.part} it is optimistic "
            "(--synth-estimate and --pnr give the device's own counts)"
            if board.lut_inputs != 6
            else ""
        )
        + (
            f"; DSPs not checked: multiplies go to LUTs on {board.name}" if "dsp" not in board.checked_resources else ""
        ),
        "utilisation": utilisation,
        "fits": all(used[k] <= avail[k] for k in board.checked_resources),
        "accuracy": accuracy.to_json(),
        "precision_choice": precision_choice,
        "warnings": list(warnings or []),
        "weight_rounding": _weight_rounding(network, accuracy),
        "word_wraps": word_wraps,
        "interface": {
            "top": "twn_top",
            "input_element_bits": plan.in_bits,
            "output_element_bits": plan.out_bits,
            "input_elements_per_beat": plan.beat_elements,
            "beats_per_frame": plan.beats,
            "output_elements": plan.out_elements,
            "packing": (
                "element j of a vector occupies payload bits [j*bits, (j+1)*bits)"
                + (_stream_packing(network) if plan.beats > 1 else "")
            ),
            "fifo_depth": plan.fifo_depth,
        },
    }


def _row(unit: object, res: Resources, plan: NetworkPlan | FramePlan, in_shape: list[int]) -> dict[str, object]:
    """A layer's row of report.json (linear layer, MAC layer, pool or lane pool)."""
    if isinstance(unit, LanePoolStage):
        return _lane_pool_row(unit, res)
    if isinstance(unit, MacStage):
        return _mac_row(unit, res, plan.initiation_interval)
    if isinstance(unit, WindowStage) and unit.lp is None:
        return _pool_row(unit, res)
    lp = unit.lp if isinstance(unit, (WindowStage, DenseStage)) else unit
    assert isinstance(lp, LayerPlan)
    positions, budget = (
        (unit.geometry.out_positions, unit.out_spacing)
        if isinstance(unit, WindowStage)
        else (1, unit.spacing if isinstance(unit, DenseStage) else plan.initiation_interval)
    )
    layer = lp.layer
    rq = layer.requant
    graph = lp.graph
    assert rq is not None
    return {
        "name": layer.name,
        "op": layer.op,
        "source_nodes": list(layer.source_nodes),
        "in_shape": list(layer.in_shape) if layer.is_conv else in_shape,
        "out_shape": list(layer.out_shape),
        "weight_kind": layer.weight_kind,
        "weight_rounding": layer.weight_rounding.to_json() if layer.weight_rounding else None,
        "weights_total": int(layer.weights.size),
        "weights_nonzero": layer.weights_nonzero,
        "sparsity": round(1 - layer.weights_nonzero / max(layer.weights.size, 1), 6),
        "adders": graph.adders,
        "naive_adders": layer.naive_adders,
        "three_input_adders": graph.three_input_adders,
        "adder_depth": graph.depth,
        "in_bits": lp.in_bits,
        "acc_bits": lp.accumulator_bits,
        "act_bits": rq.out.bits,
        "out_frac": rq.out.frac,
        "relu": layer.relu,
        "quantizer": layer.quantizer.kind if layer.quantizer is not None else None,
        "requant": _requant_text(lp),
        "requant_units": len(lp.shared_units),
        "requant_cycles": lp.requant_slots,
        "out_format": _fmt_json(rq.out),
        "latency_cycles": lp.latency,
        "digit_bits": lp.layer.digit_bits or lp.accumulator_bits,
        "arithmetic": _arithmetic(lp) + _lanes_text(layer),
        "lanes": _lanes_json(layer),
        "word_bits": lp.layer.word_bits,
        "positions_per_frame": positions,
        "cycles_per_position": lp.digits,
        "cycles_available": budget,
        "utilisation": round(lp.digits * positions / plan.initiation_interval, 6),
        **res.to_json(),
    }


def _weight_rounding(network: Network, accuracy: AccuracyReport) -> dict[str, object] | None:
    """The layers ``--quantize-weights`` rounded, with their weight errors, and what that did to the
    outputs: the accuracy check compares the golden model (rounded weights) with the source model."""
    rounded = [layer for layer in network.linear_layers if layer.weight_rounding is not None]
    if not rounded:
        return None
    acc = accuracy.to_json()
    return {
        "layers": [
            {"name": layer.name, "source_node": layer.source_nodes[0], **layer.weight_rounding.to_json()}  # type: ignore[union-attr]
            for layer in rounded
        ],
        "method": "symmetric, one scale per output channel (its largest |w| / (2^(bits-1) - 1)), "
        "round half away from zero",
        "golden_vs_source": {k: acc[k] for k in ("batch", "samples", "max_abs_error", "top1_agreement")},
    }


def _verdict_text(r: dict) -> str:  # type: ignore[type-arg]
    """Whether the golden model meets the accuracy budget, and the build's warnings."""
    acc = r["accuracy"]
    if "budget_met" not in acc:
        return ""
    limit = (
        f"--accuracy-budget {acc['budget']:g}: at least {100 * acc['required_agreement']:.1f}%"
        if acc["budget"] is not None
        else f"no --accuracy-budget: at least {100 * acc['required_agreement']:.0f}%"
    )
    text = (
        f"Judged by {acc['criterion']}: {100 * acc['agreement']:.1f}% ({limit}): "
        + ("**met**." if acc["budget_met"] else "**NOT MET**.")
        + "\n"
    )
    for warning in r.get("warnings") or []:
        lines = warning.rstrip("\n").splitlines()
        text += "\n> **Warning.** " + "\n> ".join(line if line.startswith("  - ") else line + "  " for line in lines)
        text += "\n"
    return text


def _precision_choice_text(r: dict) -> str:  # type: ignore[type-arg]
    """The activation widths ``--precision auto`` chose, and the search that chose them."""
    pc = r.get("precision_choice")
    if not pc:
        return ""
    rows = "\n".join(f"| {name} | {bits} |" for name, bits in pc["layer_act_bits"].items())
    steps = "; ".join(f"{s['layer']} → {s['bits']} bits ({100 * s['agreement']:.1f}%)" for s in pc["steps"])
    widest = pc["widest"]
    return (
        "\n## Activation widths (--precision auto)\n"
        f"Least estimated area with {pc['criterion']} of at least {100 * pc['required_agreement']:.1f}% on the "
        f"{pc['batch']} ({pc['search']}; {pc['evaluations']} golden-model runs).\n\n"
        "| layer | activation bits |\n|---|---:|\n"
        f"{rows}\n\n"
        f"Area figure ({pc['area_score_model']}): {pc['area_score']:,.0f}, against {widest['area_score']:,.0f} with "
        f"every activation at its widest; agreement {100 * pc['agreement']:.1f}% (widest: "
        f"{100 * widest['agreement']:.1f}%). Narrowings kept: {steps or 'none'}.\n"
    )


def _word_wraps_text(r: dict) -> str:  # type: ignore[type-arg]
    """The accumulator words that wrap (``--words``), and what a wrap did on the batch."""
    ww = r.get("word_wraps")
    if not ww:
        return ""
    rows = "\n".join(f"| {lay['name']} | {lay['word_bits']} | {lay['samples_wrapped']:,} |" for lay in ww["layers"])
    top1 = (
        f", of which {ww['samples_top1_changed']:,} changed their top-1 class" if "samples_top1_changed" in ww else ""
    )
    return (
        f"\n## Accumulator words that wrap (--words {r['options']['words']})\n"
        "Accumulators are kept modulo 2^word (two's complement) in these layers; the golden model wraps the "
        f"same. On the accuracy batch ({ww['samples']:,} samples), {ww['samples_changed']:,} outputs differ from "
        f"exact words{top1}.\n\n"
        "| layer | word bits | samples with a wrap |\n|---|---:|---:|\n"
        f"{rows}\n"
    )


def _weight_rounding_text(r: dict) -> str:  # type: ignore[type-arg]
    wr = r.get("weight_rounding")
    if not wr:
        return ""
    rows = "\n".join(
        f"| {lay['name']} | {lay['source_node']} | {lay['bits']} | {lay['max_rel_error']:.3g} "
        f"| {lay['rms_rel_error']:.3g} |"
        for lay in wr["layers"]
    )
    acc = wr["golden_vs_source"]
    return (
        "\n## Rounded weights (--quantize-weights)\n"
        f"{wr['method']}; max error relative to the channel's largest weight, RMS relative to the layer's "
        "weight norm.\n\n"
        "| layer | node | bits | max rel. error | RMS rel. error |\n|---|---|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"Effect on the outputs (golden model with the rounded weights against the source model, "
        f"{acc['batch']}): max |error| {acc['max_abs_error']:.3g}, top-1 agreement "
        f"{100 * acc['top1_agreement']:.1f}%.\n"
    )


def report_units(plan: NetworkPlan | FramePlan) -> list[object]:
    """What gets a row in the layer table: linear layers, and pools in a frame network."""
    if isinstance(plan, FramePlan):
        return [s for s in plan.stages if isinstance(s, (WindowStage, DenseStage, LanePoolStage, MacStage))]
    return list(plan.layers)


def _mac_arithmetic(stage: MacStage) -> str:
    """What a MAC layer's arithmetic is, and why it takes more than one element a cycle."""
    layer = stage.layer
    if stage.lanes == 1 and stage.out_lanes == 1:
        return (
            f"weights in memory ({stage.weight_bits}-bit), one input element per cycle into "
            f"{layer.out_features} accumulators" + ("" if stage.ternary else ", a multiplier (DSP) each")
        )
    each = "an adder tree" if stage.ternary else f"{stage.lanes} multipliers (DSP) and an adder tree"
    widest = max(layer.in_features, layer.out_features)
    return (
        f"weights in memory ({stage.weight_bits}-bit), {stage.lanes} input element(s) per cycle into "
        f"{layer.out_features} accumulators ({each} each), {stage.out_lanes} output(s) per cycle through "
        f"{stage.out_lanes} requantiser(s): one element per cycle would need {widest} cycles a frame, "
        f"{stage.spacing} available"
    )


def _mac_row(stage: MacStage, res: Resources, ii: int) -> dict[str, object]:
    layer = stage.layer
    rq = stage.requant
    return {
        "name": layer.name,
        "op": layer.op,
        "source_nodes": list(layer.source_nodes),
        "in_shape": [layer.in_features],
        "out_shape": [layer.out_features],
        "weight_kind": layer.weight_kind,
        "weight_rounding": layer.weight_rounding.to_json() if layer.weight_rounding else None,
        "weights_total": int(layer.weights.size),
        "weights_nonzero": layer.weights_nonzero,
        "sparsity": round(1 - layer.weights_nonzero / max(layer.weights.size, 1), 6),
        "adders": layer.out_features * stage.lanes,
        "naive_adders": layer.naive_adders,
        "adder_depth": 1,
        "in_bits": stage.in_bits,
        "acc_bits": max(stage.acc_bits),
        "act_bits": rq.out.bits,
        "out_frac": rq.out.frac,
        "relu": layer.relu,
        "quantizer": layer.quantizer.kind if layer.quantizer is not None else None,
        "requant": (
            "multiply, shift (one shared unit)"
            if stage.out_lanes == 1
            else f"multiply, shift ({stage.out_lanes} shared units)"
        ),
        "out_format": _fmt_json(rq.out),
        "latency_cycles": stage.in_beats + MAC_LATENCY + stage.out_beats,
        "digit_bits": max(stage.acc_bits),
        "arithmetic": _mac_arithmetic(stage),
        "lanes": _lanes_json(None),
        "word_bits": max(stage.acc_bits),
        "positions_per_frame": 1,
        "cycles_per_position": max(stage.in_beats, stage.out_beats),
        "cycles_available": stage.spacing,
        "utilisation": round(max(layer.in_features, layer.out_features) / ii, 6),
        **res.to_json(),
    }


def _lane_pool_row(stage: LanePoolStage, res: Resources) -> dict[str, object]:
    pool = stage.layer
    return _pool_fields(
        pool,
        stage.bits,
        stage.latency,
        f"{'min/max' if any(pool.minimum) else 'max'} across {pool.group} of {pool.lanes} lanes",
        pool.out_shape[1],
        stage.spacing,
        res,
    )


def _pool_row(stage: WindowStage, res: Resources) -> dict[str, object]:
    pool = stage.layer
    assert isinstance(pool, PoolLayer)
    g = stage.geometry
    folded = ""
    if isinstance(pool, LaneWindowPoolLayer):
        folded = f" of a {'x'.join(map(str, _window_kernel(g)))} folded window"
    return _pool_fields(
        pool,
        stage.in_bits,
        stage.latency,
        f"{'min/max' if any(pool.minimum) else 'max'} over {stage.pool_taps} taps{folded}",
        g.out_positions,
        stage.out_spacing,
        res,
    )


def _window_kernel(g: WindowGeometry) -> tuple[int, ...]:
    return (g.k_w,) if g.height == 1 else (g.k_h, g.k_w)


def _pool_fields(
    pool: PoolLayer, bits: int, latency: int, arithmetic: str, positions: int, budget: int, res: Resources
) -> dict[str, object]:
    return {
        "name": pool.name,
        "op": pool.op,
        "source_nodes": list(pool.source_nodes),
        "in_shape": list(pool.in_shape),
        "out_shape": list(pool.out_shape),
        "weight_kind": "-",
        "weights_total": 0,
        "weights_nonzero": 0,
        "sparsity": 0.0,
        "adders": 0,
        "naive_adders": 0,
        "adder_depth": 0,
        "in_bits": bits,
        "acc_bits": bits,
        "act_bits": bits,
        "out_frac": 0,
        "relu": False,
        "quantizer": None,
        "requant": None,
        "latency_cycles": latency,
        "digit_bits": bits,
        "arithmetic": arithmetic + _lanes_text(pool),
        "lanes": _lanes_json(pool),
        "word_bits": bits,
        "positions_per_frame": positions,
        "cycles_per_position": 1,
        "cycles_available": budget,
        "utilisation": 0.0,
        **res.to_json(),
    }


def _ii_detail(r: dict) -> str:  # type: ignore[type-arg]
    """How the input arrives in one initiation interval."""
    iface = r["interface"]
    ii = r["initiation_interval_cycles"]
    beats = iface.get("beats_per_frame", 1)
    if beats == 1:
        return f"one input vector per {ii} cycle(s)"
    lanes = r["schedule"].get("lanes", 1) or 1
    per_beat = f"{lanes} positions" if lanes > 1 else "one position"
    return f"one frame of {beats} beats ({per_beat} each) per {ii} cycles"


def _fmt_text(d: dict[str, int]) -> str:
    return f"signed {d['bits']} bits, {d['frac']} fraction bits, codes {d['min_code']}..{d['max_code']}"


#: Width of the text bars in report.md.
BAR_CELLS = 20


def _bar(fraction: float) -> str:
    """A text bar: any use shows at least one cell, and only a full device fills every cell."""
    filled = min(BAR_CELLS, max(1 if fraction > 0 else 0, round(BAR_CELLS * fraction)))
    if fraction < 1 and filled == BAR_CELLS:
        filled -= 1
    return "`" + "█" * filled + "·" * (BAR_CELLS - filled) + "`" + (" over!" if fraction > 1 else "")


def _utilisation_rows(rows: dict) -> str:  # type: ignore[type-arg]
    return "\n".join(
        f"| {v.get('cell', k.upper())} | {v['used']:,} | {v['available']:,} | {100 * v['fraction']:.2f}% "
        f"| {_bar(v['fraction']) if v.get('checked', True) else 'not checked'} |"
        for k, v in rows.items()
    )


def _synthesis_text(r: dict) -> str:  # type: ignore[type-arg]
    if "synthesis" not in r:
        return ""
    syn = r["synthesis"]
    if syn.get("lut_kind") == "LUT4":
        return (
            f"\nYosys ({syn['tool']}): {syn['lut']:,} LUT4, {syn['ff']:,} FF, {syn['carry']:,} carry "
            f"({syn['carry_kind']}), {syn['lutram']:,} LUT RAM, {syn['bram']:,} block RAM ({syn['bram_kind']}), "
            f"{syn['dsp']} DSP.\n"
        )
    text = (
        f"\nYosys ({syn['tool']}): {syn['lut_sites']:,} LUT sites "
        f"({syn['lut']:,} LUT, {syn['srl']:,} SRL, {syn['lutram']:,} LUTRAM), "
        f"{syn['ff']:,} FF, {syn['carry']:,} CARRY4, {syn['dsp']} DSP, "
        f"{syn['bram']:g} BRAM36.\n"
    )
    if syn.get("stages"):
        estimates = {lay["name"]: lay for lay in r["layers"]}
        rows = []
        for st in syn["stages"]:
            est = estimates.get(st["what"])
            e = f"{est['lut']:,} | {est['ff']:,}" if est else "| "
            rows.append(f"| {st['what']} | {st['lut_sites']:,} | {st['ff']:,} | {st['dsp']} | {e} |")
        text += (
            f"Synthesised {syn['method']}:\n\n| stage | Yosys LUT sites | Yosys FF | Yosys DSP | estimate LUT "
            "| estimate FF |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
        )
    return text


def _backend_text(r: dict) -> str:  # type: ignore[type-arg]
    """The vendor project or open-toolchain section, with nextpnr's results when it ran."""
    vp = r.get("vendor_project")
    if vp is None:
        return ""
    if vp["tool"] == "vivado":
        return (
            f"\n## Vivado project\n`{vp['script']}` creates a project for {r['part']}, adds the RTL with "
            f"`{vp['top']}` as top (out of context) and the clock constraint at {r['clock_mhz']:g} MHz, "
            f"synthesises, implements and writes utilisation and timing reports: `{vp['run']}`.\n"
        )
    text = (
        f"\n## Bitstream ({vp['tool']})\n`{vp['script']}` builds a bitstream for {r['part']} with the top "
        f"`{vp['top']}` (the core between an LFSR and one LED pin); `--pnr` runs it.\n"
    )
    pr = r.get("pnr")
    if pr is None:
        return text
    met = "met" if pr["timing_met"] else "**not met**"
    return text + (
        f"\nPlaced and routed ({pr['tool']}, seed {pr['seed']}): maximum frequency **{pr['fmax_mhz']} MHz** "
        f"(target {pr['target_mhz']:g} MHz, {met}; at the maximum, "
        f"{pr['fmax_mhz'] * 1e6 / r['initiation_interval_cycles']:,.0f} inferences/s); "
        f"bitstream `{pr['bitstream']}` ({pr['bitstream_bytes']:,} "
        "bytes). Utilisation, including the LFSR and shift register that feed the core:\n\n"
        "| resource | used | available | utilisation | |\n|---|---:|---:|---:|---|\n"
        + _utilisation_rows(pr["utilisation"])
        + "\n"
    )


def _interface_text(r: dict) -> str:  # type: ignore[type-arg]
    iface = r["interface"]
    n_in, b_in = iface["input_elements_per_beat"], iface["input_element_bits"]
    n_out, b_out = iface["output_elements"], iface["output_element_bits"]
    beats = iface.get("beats_per_frame", 1)
    return (
        f"- `{iface['top']}` (valid/ready; `twn_axis`: the same as AXI4-Stream): clock `clk`, "
        "synchronous active-high reset `rst`\n"
        f"- input `x__payload`: {n_in} element(s) x {b_in} bits = {n_in * b_in} bits per beat"
        + (f", {beats} beats a frame" if beats > 1 else "")
        + f"\n- output `y__payload`: {n_out} element(s) x {b_out} bits = {n_out * b_out} bits; "
        f"{iface['packing']}\n- output FIFO depth {iface['fifo_depth']}"
    )


#: Column heads of the breakdown table in report.md.
PART_HEADS = {
    "adder_graph": "adder graph",
    "serial_converters": "serial converters",
    "window_buffer": "window buffer",
    "pooling": "pooling",
    "requantiser": "requantiser",
    "accumulators": "accumulators",
    "weight_memory": "weight memory",
    "output_select": "output select",
    "control": "control",
    "collector": "collector",
    "serializer": "serializer",
    "argmax": "argmax",
    "io": "I/O, FIFO",
}


def _part_cell(res: dict[str, int] | None) -> str:
    if res is None:
        return ""
    extra = [f"{res[k]:,} {label}" for k, label in (("dsp", "DSP"), ("bram", "BRAM")) if res[k]]
    if res["lut"] or res["ff"] or not extra:
        extra.insert(0, f"{res['lut']:,} / {res['ff']:,}")
    return " + ".join(extra)


def _breakdown_text(r: dict) -> str:  # type: ignore[type-arg]
    """Layers x parts: where the estimate's LUTs, FFs, DSPs and BRAMs go (rows sum to the layer's total)."""
    names = list(r["resources_by_part"])
    rows = [(lay["name"], lay["parts"], lay) for lay in r["layers"]]
    outside = r["resources_outside_layers"]
    rows.append(("outside the layers", outside, {k: sum(v[k] for v in outside.values()) for k in _RES}))
    rows.append(("**total**", r["resources_by_part"], r["resources"]))
    head = "| layer | " + " | ".join(PART_HEADS[n] for n in names) + " | total |"
    rule = "|---|" + "---:|" * (len(names) + 1)
    body = [
        f"| {name} | " + " | ".join(_part_cell(parts.get(n)) for n in names) + f" | {_part_cell(total)} |"
        for name, parts, total in rows
    ]
    return "\n".join([head, rule, *body])


_RES = ("lut", "ff", "bram", "dsp")


def render_markdown(report: dict[str, object]) -> str:
    r: dict = report  # type: ignore[type-arg]
    tmpl = Template((RTL_TEMPLATES_DIR / "report.md.tmpl").read_text())
    resource_rows = _utilisation_rows(r["utilisation"])
    layer_rows = "\n".join(
        f"| {lay['name']} | {lay['op']} | {lay['in_shape']} → {lay['out_shape']} | {lay['weight_kind']} "
        f"| {lay['weights_nonzero']:,} of {lay['weights_total']:,} | {lay['adders']:,} ({lay['naive_adders']:,}) "
        f"| {lay['adder_depth']} | {lay['arithmetic']}, {lay['cycles_per_position']} cycle(s), "
        f"{100 * lay['utilisation']:.0f}% busy | {lay['acc_bits']} | s{lay['act_bits']}.{lay['out_frac']}"
        f"{' ReLU' if lay['relu'] else ''} | {lay['latency_cycles']} | {lay['lut']:,} | {lay['ff']:,} | {lay['dsp']} |"
        for lay in r["layers"]
    )
    acc = r["accuracy"]
    return tmpl.substitute(
        model=r["model"],
        board=r["board"],
        part=r["part"],
        clock_mhz=f"{r['clock_mhz']:g}",
        command=r["command"] or "the Python API",
        ii=r["initiation_interval_cycles"],
        ii_detail=_ii_detail(r),
        throughput=f"{r['throughput_per_s']:,.0f}",
        latency=r["latency_cycles"],
        latency_us=f"{r['latency_us']:.3f}",
        resource_rows=resource_rows,
        fits="yes" if r["fits"] else "NO",
        estimate_model=r["resource_estimate_model"],
        layer_rows=layer_rows,
        breakdown=_breakdown_text(r),
        input_name=r["input"]["name"],
        input_format=_fmt_text(r["input"]["format"]),
        output_name=r["output"]["name"],
        output_format=_fmt_text(r["output"]["format"]),
        options=json.dumps(r["options"], sort_keys=True),
        acc_batch=acc["batch"],
        acc_samples=acc["samples"],
        max_err=f"{acc['max_abs_error']:.3g}",
        out_peak=f"{acc['output_peak']:.3g}",
        mean_err=f"{acc['mean_abs_error']:.3g}",
        top1=f"{100 * acc['top1_agreement']:.1f}%",
        accuracy_verdict=_verdict_text(r),
        precision_choice=_precision_choice_text(r),
        reference=acc["reference"],
        synthesis=_synthesis_text(r),
        backend=_backend_text(r),
        interface=_interface_text(r),
        version=r["twngen_version"],
        weight_rounding=_weight_rounding_text(r) + _word_wraps_text(r),
    )
