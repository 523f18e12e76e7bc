"""Command line: thin glue over :mod:`hwgen.build`, :mod:`hwgen.golden`, :mod:`hwgen.verify`.

    twngen MODEL.onnx --board BOARD [-o OUTDIR] [--clock-mhz F] [arithmetic options]
    twngen verify OUTDIR [--simulator icarus|verilator] [--vectors N] [--inputs X.npy]
    twngen golden MODEL.onnx --inputs X.npy --outputs Y.npy [arithmetic options]
    twngen golden OUTDIR --inputs X.npy --outputs Y.npy [--compare]   (a build's own arithmetic)
    twngen inspect MODEL.onnx
    twngen boards
    twngen explore MODEL.onnx --board B[,B...] [--rates R,... | --target-fps F,...] [--precision fixed,incremental]

Bad input exits with status 2 and a one-paragraph message, never a traceback.
``build`` and ``verify`` report their stages on stderr (a live display on a
terminal, plain lines otherwise; :mod:`hwgen.console.progress`) unless
``-q/--quiet``; stdout holds the summary either way.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hwgen import __version__
from hwgen.errors import TwnError

__all__ = ["main"]

SUBCOMMANDS = ("verify", "golden", "inspect", "boards", "cse", "make-fragment", "explore")


def _add_arithmetic_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    from hwgen.build import ArithmeticOptions
    from hwgen.passes.adder_graphs import ADDER_GRAPH_METHODS
    from hwgen.passes.merge_pairs import EFFORTS
    from hwgen.passes.quantize import GRAPH_QUANTIZER_FORMS, RANGE_METHODS

    d = ArithmeticOptions()

    def dflt(v: object) -> object:
        return v if defaults else None

    g = p.add_argument_group("arithmetic (recorded in report.json; same meaning in build, golden, verify)")
    g.add_argument(
        "--act-bits", type=int, default=dflt(d.act_bits), help="activation width between layers (default %(default)s)"
    )
    g.add_argument(
        "--input-bits", type=int, default=dflt(d.input_bits), help="input quantisation width (default %(default)s)"
    )
    g.add_argument(
        "--out-bits", type=int, default=None, help="output width (default: keep the last layer's accumulator precision)"
    )
    g.add_argument(
        "--input-range",
        type=float,
        default=dflt(d.input_range),
        help="without --calibrate, inputs are coded over [-R, R) (default %(default)s)",
    )
    g.add_argument(
        "--calibrate",
        metavar="X.npy",
        default=None,
        help="calibration batch [N, *input_shape] for input and activation ranges",
    )
    g.add_argument(
        "--ranges",
        choices=RANGE_METHODS,
        default=dflt(d.ranges),
        help="activation ranges: peak on a batch times --headroom, or safe interval bounds (default %(default)s)",
    )
    g.add_argument(
        "--headroom", type=float, default=dflt(d.headroom), help="factor on sampled peaks (default %(default)s)"
    )
    g.add_argument(
        "--adder-graph",
        choices=ADDER_GRAPH_METHODS,
        default=dflt(d.adder_graph),
        help="naive pruned trees or merged common subexpressions (default %(default)s)",
    )
    g.add_argument("--max-depth", type=int, default=None, help="adder-graph depth limit for merging")
    g.add_argument(
        "--graph-quantizers",
        choices=GRAPH_QUANTIZER_FORMS,
        default=dflt(d.graph_quantizers),
        help="the model's own activation quantisers: one multiply where their steps are affine and "
        "comparators would cost more (auto), always threshold comparators, or a multiply wherever "
        "exact (affine); the codes are the same (default %(default)s)",
    )
    g.add_argument(
        "--words",
        type=_words,
        default=dflt(d.words),
        metavar="exact|calibrated|BITS",
        help="accumulator word widths: exact (the worst case, never wrapping), calibrated (the "
        "calibration batch's accumulators times --headroom) or BITS; a calibrated or BITS word "
        "wraps as two's complement, the golden model wraps the same, and the report counts the "
        "batch's samples a wrap changes (default %(default)s)",
    )
    g.add_argument(
        "--merge-effort",
        choices=EFFORTS,
        default=dflt(d.merge_effort),
        help="high: about ten times the merge time for fewer adders, never more (default %(default)s)",
    )
    g.add_argument(
        "--merge-memory",
        type=_positive_gigabytes,
        default=None,
        metavar="GB",
        help="memory the merge may use; a layer needing more is merged in blocks of inputs and a line on "
        "stderr says so (default: 8; a constant, so the graphs do not depend on the machine's load)",
    )
    g.add_argument(
        "--layer-act-bits",
        metavar="LAYER=BITS,...",
        type=_layer_bits,
        default=dflt(d.layer_act_bits),
        help="activation value bits of named layers, overriding --act-bits (a ReLU output of B bits "
        "holds 0..2**B-1); what --precision incremental chose is in report.json",
    )
    g.add_argument(
        "--max-weight-bits",
        type=int,
        default=dflt(d.max_weight_bits),
        help="widest signed integer weights accepted in hidden layers (default %(default)s; 2 = ternary/binary)",
    )
    g.add_argument(
        "--max-final-weight-bits",
        type=int,
        default=dflt(d.max_final_weight_bits),
        help="widest signed integer weights accepted in the last linear layer (default %(default)s)",
    )
    g.add_argument(
        "--max-first-weight-bits",
        type=int,
        default=dflt(d.max_first_weight_bits),
        help="widest signed integer weights accepted in the first linear layer (default %(default)s)",
    )
    g.add_argument(
        "--quantize-weights",
        metavar="LAYER=BITS,...",
        type=_layer_bits,
        action="extend",
        default=None,
        help="round the float weights of LAYER (its ONNX node name, or first/last) to BITS signed bits, "
        "symmetric, one scale per output channel, half away from zero; the weight error and the accuracy "
        "effect are in the report (repeatable)",
    )


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (errors are still reported there)")


def _progress(args: argparse.Namespace, started: float | None = None):  # type: ignore[no-untyped-def]
    from hwgen.console import progress_for

    return progress_for(args.quiet, started=started)


def _positive_gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of gigabytes, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of gigabytes, not {text!r}")
    return value


def _words(text: str) -> str | int:
    from hwgen.passes.words import parse_words

    try:
        return parse_words(text)
    except TwnError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--words: ")) from None


def _layer_bits(text: str) -> tuple[tuple[str, int], ...]:
    """``conv1=2,conv2=4`` -> (("conv1", 2), ("conv2", 4)); layer names may contain '='."""
    out = []
    for item in filter(None, text.split(",")):
        name, sep, bits = item.rpartition("=")
        if not sep or not name or not bits.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected LAYER=BITS, got {item!r}")
        out.append((name, int(bits)))
    return tuple(out)


def _options_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from hwgen.build import ArithmeticOptions

    return ArithmeticOptions(
        act_bits=args.act_bits,
        input_bits=args.input_bits,
        out_bits=args.out_bits,
        input_range=args.input_range,
        ranges=args.ranges,
        headroom=args.headroom,
        calibrate=args.calibrate,
        adder_graph=args.adder_graph,
        max_depth=args.max_depth,
        merge_effort=args.merge_effort,
        merge_memory=args.merge_memory,
        max_weight_bits=args.max_weight_bits,
        max_final_weight_bits=args.max_final_weight_bits,
        max_first_weight_bits=args.max_first_weight_bits,
        quantize_weights=tuple(args.quantize_weights or ()),
        layer_act_bits=args.layer_act_bits,
        graph_quantizers=args.graph_quantizers,
        words=args.words,
    )


def _cmd_build(argv: list[str]) -> int:
    from hwgen.build import build
    from hwgen.flow.boards import load_board
    from hwgen.passes.precision import PRECISION_MODES
    from hwgen.report import overflow_summary

    p = argparse.ArgumentParser(
        prog="twngen",
        description="Build streaming FPGA RTL for a ternary/binary ONNX network. "
        "Other commands: " + ", ".join(SUBCOMMANDS) + " (twngen COMMAND --help).",
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--board", required=True, help="board preset (see `twngen boards`)")
    p.add_argument("-o", "--outdir", default=None, help="output folder (default build/<model stem>)")
    p.add_argument("--clock-mhz", type=float, default=None, help="target clock (default: the board's)")
    p.add_argument(
        "--allow-overflow", action="store_true", help="write the RTL even if the design does not fit the board"
    )
    p.add_argument(
        "--part",
        default=None,
        help="Xilinx part for a custom board, replacing the board preset's (e.g. xczu7ev-ffvc1156-2-e): "
        "the Vivado project and --synth-estimate use it",
    )
    p.add_argument(
        "--synth-estimate",
        action="store_true",
        help="also synthesise the RTL with Yosys (synth_xilinx, or synth_ice40/synth_ecp5 on a Lattice board) "
        "and report its counts beside the model's",
    )
    p.add_argument(
        "--pnr",
        action="store_true",
        help="Lattice iCE40/ECP5 boards: run Yosys, nextpnr and the packer to a bitstream (OUTDIR/pnr) and "
        "report nextpnr's utilisation and maximum frequency",
    )
    rate = p.add_argument_group("rate (the scheduler picks each layer's digit width to meet it at the least area)")
    rate.add_argument(
        "--input-rate",
        type=float,
        default=None,
        metavar="ELEMENTS_PER_CYCLE",
        help="input elements arriving per cycle (default: a whole vector per cycle)",
    )
    rate.add_argument("--target-fps", type=float, default=None, help="inferences per second to sustain at the clock")
    rate.add_argument(
        "--precision",
        choices=PRECISION_MODES,
        default="fixed",
        help="fixed: every activation --act-bits wide; incremental: each layer's activations as wide as its "
        "consumer's rate allows at the digit width of the narrowest, from --min-act-bits up to --act-bits; "
        "auto: each layer's activations chosen for the least estimated area at the rate while the golden model "
        "keeps --accuracy-budget on the calibration batch (default %(default)s)",
    )
    rate.add_argument(
        "--min-act-bits",
        type=int,
        default=1,
        help="narrowest activations for --precision incremental and auto (default 1)",
    )
    rate.add_argument(
        "--accuracy-budget",
        type=float,
        default=None,
        metavar="F",
        help="fraction of the calibration samples allowed to change their top-1 class against the source model "
        "(for outputs that are not classes: the relative RMS error allowed); --precision auto stays within it "
        "(default 0.01 there), every build warns on stderr when its accuracy check misses it "
        "(without it: below 90%% agreement)",
    )
    rate.add_argument(
        "--shared-requantisers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="where a layer has cycles to spare per vector, share its requantisers (DSPs) in time across its "
        "channels when the estimate finds that cheaper (default: on; --no-shared-requantisers keeps one per "
        "channel)",
    )
    p.add_argument(
        "--argmax",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="emit the class index (the largest output, first on ties) instead of the output vector "
        "(default: when the model ends in ArgMax or TopK(k=1))",
    )
    p.add_argument("--version", action="version", version=f"twngen {__version__}")
    _add_quiet(p)
    _add_arithmetic_options(p)
    args = p.parse_args(argv)
    with _progress(args) as progress:
        result = build(
            args.model,
            args.board,
            args.outdir,
            _options_from(args),
            clock_mhz=args.clock_mhz,
            allow_overflow=args.allow_overflow,
            # -q changes nothing the build writes, so the report does not record it.
            command="twngen " + shlex.join(a for a in argv if a not in ("-q", "--quiet")),
            synth_estimate=args.synth_estimate,
            input_rate=args.input_rate,
            target_fps=args.target_fps,
            argmax=args.argmax,
            precision=args.precision,
            min_act_bits=args.min_act_bits,
            part=args.part,
            share_requantisers=args.shared_requantisers,
            pnr=args.pnr,
            progress=progress,
            accuracy_budget=args.accuracy_budget,
        )
    _print_warnings(result.warnings)
    r = result.report
    res = r["resources"]
    print(f"twngen: built {r['model']} for {r['board']} ({r['part']}) at {r['clock_mhz']:g} MHz")
    print(f"  layers: {len(r['layers'])}, adders: {r['adders']:,} (naive {r['naive_adders']:,})")  # type: ignore[arg-type]
    print(
        f"  II {r['initiation_interval_cycles']} cycle(s), latency {r['latency_cycles']} cycles, "
        f"{r['throughput_per_s']:,.0f} inferences/s"
    )
    print(
        f"  estimate: {res['lut']:,} LUT, {res['ff']:,} FF, {res['bram']} BRAM36, {res['dsp']} DSP; fits: {r['fits']}"
    )  # type: ignore[index]
    if not r["fits"]:
        checked = load_board(args.board).checked_resources  # --part changes the part, not what is checked
        print(f"  does not fit (written anyway, --allow-overflow): {overflow_summary(r, checked)}")
    if "synthesis" in r:
        syn = r["synthesis"]
        print(f"  Yosys: {syn['lut_sites']:,} LUT sites, {syn['ff']:,} FF, {syn['dsp']} DSP ({syn['tool']})")  # type: ignore[index]
    if "pnr" in r:
        pr = r["pnr"]
        used = ", ".join(
            f"{v['used']:,}/{v['available']:,} {k}"
            for k, v in pr["utilisation"].items()  # type: ignore[index]
            if k not in ("io", "global_buffers")
        )
        print(
            f"  nextpnr: fmax {pr['fmax_mhz']} MHz (target {pr['target_mhz']:g}: "  # type: ignore[index]
            f"{'met' if pr['timing_met'] else 'NOT met'}); {used}"  # type: ignore[index]
        )
        print(f"  bitstream: {result.outdir / pr['bitstream']}")  # type: ignore[index]
    acc = r["accuracy"]
    print(
        f"  golden vs {'onnxruntime' if acc['reference'] == 'onnxruntime' else 'the float graph'}: "
        f"max |error| {acc['max_abs_error']:.3g}, top-1 agreement "  # type: ignore[index]
        f"{100 * acc['top1_agreement']:.1f}% on {acc['samples']} samples"
    )  # type: ignore[index]
    print(f"  Verilog: {result.outdir / 'rtl' / 'twn_top.v'}")
    print(f"  report:  {result.outdir / 'report.md'} and report.json")
    if "vendor_project" in r:
        vp = r["vendor_project"]
        print(f"  {vp['tool']}: {result.outdir / vp['script']}")  # type: ignore[index]
    return 0


def _print_warnings(warnings: list[str]) -> None:
    """The accuracy guard's warnings, as a block nobody scrolls past (stderr)."""
    if not warnings:
        return
    rule = "twngen: " + "!" * 72
    lines = [rule]
    for k, warning in enumerate(warnings):
        if k:
            lines.append("twngen: WARNING:")
        lines += [f"twngen: WARNING: {line}" for line in warning.rstrip("\n").splitlines()]
    lines.append(rule)
    print("\n".join(lines), file=sys.stderr)


def _cmd_verify(argv: list[str]) -> int:
    from hwgen.build import ArithmeticOptions, load_array
    from hwgen.verify import VerifyFailed, load_build, verify

    p = argparse.ArgumentParser(
        prog="twngen verify", description="Simulate a build's RTL against the golden model, bit-exactly."
    )
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--simulator", choices=("icarus", "verilator", "both"), default="icarus")
    p.add_argument(
        "--vectors", type=int, default=100, help="random vectors when --inputs is not given (default %(default)s)"
    )
    p.add_argument("--inputs", metavar="X.npy", default=None, help="float inputs to simulate instead")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stall", type=float, default=0.3, help="probability of an input gap / output stall each cycle")
    p.add_argument("--top", choices=("twn_top", "twn_axis"), default="twn_top", help="top level to simulate")
    _add_quiet(p)
    _add_arithmetic_options(p, defaults=False)
    args = p.parse_args(argv)
    _, report = load_build(Path(args.outdir))
    # Arithmetic options given here must match the build's.
    recorded = report["options"]
    given = {k: getattr(args, k) for k in vars(ArithmeticOptions()) if getattr(args, k, None) is not None}
    for key, value in given.items():
        rec = recorded.get(key)  # type: ignore[union-attr]
        if key == "calibrate":
            from hwgen.paths import file_sha256

            same = isinstance(rec, dict) and rec.get("sha256") == file_sha256(Path(value))
        elif key in ("layer_act_bits", "quantize_weights"):
            same = rec == dict(value)
        else:
            same = rec == value
        if not same:
            raise TwnError(
                f"--{key.replace('_', '-')} {value} differs from the build in {args.outdir} "
                f"({rec}); rebuild with the same options or omit it"
            )
    inputs = load_array(args.inputs, "--inputs") if args.inputs else None
    sims = ("icarus", "verilator") if args.simulator == "both" else (args.simulator,)
    ok = True
    started = time.monotonic()
    for sim in sims:
        try:
            # One display per simulator, closed before its results go to stdout; times from the start.
            with _progress(args, started) as progress:
                r = verify(Path(args.outdir), sim, args.vectors, inputs, args.seed, args.stall, args.top, progress)
        except VerifyFailed as exc:
            print(f"twngen: [{sim}] simulation failed: {exc}", file=sys.stderr)
            ok = False
            continue
        print(f"[{sim}] {r.passed} passed, {r.failed} failed")
        print(f"measured_ii_cycles={r.measured_ii_cycles}")
        print(f"measured_latency_cycles={r.measured_latency_cycles}")
        if r.extra_outputs:
            print(f"[{sim}] {r.extra_outputs} extra (duplicated) outputs")
        if r.measured_latency_cycles != r.expected_latency_cycles or r.measured_ii_cycles != r.expected_ii_cycles:
            print(f"[{sim}] report says II {r.expected_ii_cycles}, latency {r.expected_latency_cycles}: MISMATCH")
        for mm in r.mismatches:
            print(f"[{sim}] vector {mm['vector']}: expected {mm['expected']}, got {mm['got']}")
        ok = ok and r.ok
    return 0 if ok else 1


def _cmd_golden(argv: list[str]) -> int:
    import numpy as np

    from hwgen import golden
    from hwgen.build import load_array, prepare_network

    p = argparse.ArgumentParser(
        prog="twngen golden",
        description="Run the golden model (what the hardware computes) on a batch: of a model with the "
        "arithmetic options given here, or of a build folder (OUTDIR with report.json) with exactly the "
        "arithmetic it was built with (its network.json).",
    )
    p.add_argument("model", metavar="MODEL.onnx|OUTDIR")
    p.add_argument("--inputs", metavar="X.npy", required=True)
    p.add_argument("--outputs", metavar="Y.npy", required=True, help="dequantised float outputs, batch first")
    p.add_argument("--codes", metavar="Q.npy", default=None, help="also write the integer output codes")
    p.add_argument("--compare", action="store_true", help="print error and top-1 agreement against onnxruntime")
    p.add_argument(
        "--model",
        dest="source",
        metavar="MODEL.onnx",
        default=None,
        help="with OUTDIR and --compare: the source model (default: the path the build read, if it still holds "
        "the same model)",
    )
    _add_arithmetic_options(p, defaults=False)
    args = p.parse_args(argv)
    target = Path(args.model)
    if target.is_dir():
        network, model = _build_folder_network(target, args)
    else:
        for name, value in _given_arithmetic(args, defaults=True).items():
            setattr(args, name, value)
        network, _ = prepare_network(args.model, _options_from(args))
        model = target
    x = load_array(args.inputs, "--inputs")
    q = golden.run_integer(network, golden.quantize_input(network, x))
    y = golden.dequantize_output(network, q)
    np.save(args.outputs, y.astype(np.float32))
    if args.codes:
        np.save(args.codes, q)
    print(f"wrote {args.outputs}: shape {list(y.shape)}")
    if args.compare:
        if model is None:
            raise TwnError(
                f"--compare needs the source model of {target}: the path it was built from no longer holds it; "
                "give it with --model MODEL.onnx"
            )
        acc = golden.compare_with_onnxruntime(model, network, x.reshape(len(y), -1), "--inputs")
        print(f"max_abs_error={acc.max_abs_error:.6g}")
        print(f"top1_agreement={acc.top1_agreement:.6f}")
    return 0


def _given_arithmetic(args: argparse.Namespace, defaults: bool = False) -> dict[str, object]:
    """The arithmetic options on the command line (``defaults``: every option, defaults filled in)."""
    from hwgen.build import ArithmeticOptions

    d = ArithmeticOptions()
    given = {}
    for name in vars(d):
        value = getattr(args, name, None)
        if value is not None:
            given[name] = value
        elif defaults:
            given[name] = getattr(d, name)
    return given


def _build_folder_network(outdir: Path, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The network a build folder's hardware computes (its network.json), and its source model
    when the path the build read still holds it (None otherwise); ``--model`` names it instead."""
    from hwgen.paths import file_sha256
    from hwgen.verify import load_build

    network, report = load_build(outdir)
    given = _given_arithmetic(args)
    if given:
        raise TwnError(
            f"{outdir} is a build folder: its golden model uses exactly the arithmetic it was built with "
            f"(report.json options); drop {', '.join('--' + k.replace('_', '-') for k in given)} "
            "or run `twngen golden MODEL.onnx` with the options you want"
        )
    sha = report.get("model_sha256")
    candidates = [Path(args.source)] if args.source else _depfile_inputs(outdir)[:1]
    for path in candidates:
        if path.is_file() and file_sha256(path) == sha:
            return network, path
        if args.source:
            raise TwnError(f"--model {path}: not the model {outdir} was built from (report.json model_sha256)")
    return network, None


def _depfile_inputs(outdir: Path) -> list[Path]:
    """The files a build read, from its make dependency file (twn_top.d), paths as given then."""
    dep = outdir / "twn_top.d"
    if not dep.is_file():
        return []
    first = dep.read_text().split("\n", 1)[0]
    _, _, deps = first.partition(": ")
    out, buf, i = [], "", 0
    while i < len(deps):
        ch = deps[i]
        if ch == "\\" and i + 1 < len(deps):
            buf += deps[i + 1]
            i += 2
            continue
        if ch == " ":
            if buf:
                out.append(Path(buf.replace("$$", "$")))
            buf = ""
        else:
            buf += ch
        i += 1
    if buf:
        out.append(Path(buf.replace("$$", "$")))
    return out


def _cmd_inspect(argv: list[str]) -> int:
    from hwgen.build import quantized_network
    from hwgen.ir import LinearLayer

    p = argparse.ArgumentParser(
        prog="twngen inspect", description="Print the layers the frontend understood, with their quantisation."
    )
    p.add_argument("model", metavar="MODEL.onnx")
    _add_arithmetic_options(p)
    args = p.parse_args(argv)
    # The table needs the quantised layers, not their adder graphs: merging a large network's
    # graphs would take minutes and gigabytes for nothing printed here.
    net, _ = quantized_network(args.model, _options_from(args))
    fmt = net.input_format
    assert fmt is not None
    print(
        f"{net.name}: input {net.input_name!r} {list(net.input_shape)} as s{fmt.bits}.{fmt.frac}, "
        f"output {net.output_name!r} {list(net.output_shape)}"
        + (f" after {net.output_op}" if net.output_op != "none" else "")
        + f", opset {net.opset}"
    )
    print(
        f"{'layer':<22} {'op':<8} {'in':<14} {'out':<14} {'window':<16} {'weights':<8} {'scale':<11} "
        f"{'nonzero':>9} {'sparsity':>8} {'act':>7}  folded nodes"
    )
    for layer in net.layers:
        if isinstance(layer, LinearLayer):
            window = f"k{list(layer.kernel)} s{list(layer.stride)}" if layer.is_conv else ""
            per = "per-channel" if len(set(layer.scale[layer.scale != 0].tolist())) > 1 else "per-tensor"
            sparsity = 1 - layer.weights_nonzero / max(layer.weights.size, 1)
            rq = layer.requant
            act = f"s{rq.out.bits}.{rq.out.frac}" if rq else ""
            print(
                f"{layer.name:<22} {layer.op:<8} {list(layer.in_shape)!s:<14} {list(layer.out_shape)!s:<14} "
                f"{window:<16} {layer.weight_kind:<8} {per:<11} {layer.weights_nonzero:>9} {sparsity:>8.1%} "
                f"{act + (' relu' if layer.relu else ''):>7}  {', '.join(layer.source_nodes)}"
            )
        else:
            mins = sum(layer.minimum)
            window = f"k{list(layer.kernel)} s{list(layer.stride)}"
            note = f"min on {mins} channel(s)" if mins else ""
            print(
                f"{layer.name:<22} {layer.op:<8} {list(layer.in_shape)!s:<14} {list(layer.out_shape)!s:<14} "
                f"{window:<16} {note:<30}  {', '.join(layer.source_nodes)}"
            )
    return 0


def _cmd_boards(argv: list[str]) -> int:
    from hwgen.flow.boards import list_boards

    argparse.ArgumentParser(prog="twngen boards", description="List board presets.").parse_args(argv)
    print(
        f"{'board':<11} {'part':<24} {'MHz':>5} {'LUT':>13} {'FF':>9} {'block RAM':>15} {'DSP':>16}  "
        f"{'flow':<14} description"
    )
    for b in list_boards():
        luts = f"{b.lut:,} LUT{b.lut_inputs}"
        brams = f"{b.bram_blocks:,} x {b.bram_kbits}k"
        dsps = f"{b.dsp:,} {b.dsp_name}" if b.dsp_name != "DSP" else f"{b.dsp:,}"
        print(
            f"{b.name:<11} {b.part:<24} {b.clock_mhz:>5g} {luts:>13} {b.ff:>9,} {brams:>15} {dsps:>16}  "
            f"{b.flow:<14} {b.description}"
        )
    return 0


def _cmd_make_fragment(argv: list[str]) -> int:
    from hwgen.paths import RTL_TEMPLATES_DIR

    argparse.ArgumentParser(
        prog="twngen make-fragment", description="Print the Makefile fragment for including twngen in a build flow."
    ).parse_args(argv)
    print((RTL_TEMPLATES_DIR / "twngen.mk").read_text(), end="")
    return 0


def _numbers(text: str) -> list[float]:
    """``0.25,0.5,1`` -> [0.25, 0.5, 1.0]."""
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _cmd_explore(argv: list[str]) -> int:
    from hwgen.explore import explore
    from hwgen.explore.sweep import DEFAULT_RATES, DENSE_HALVINGS

    p = argparse.ArgumentParser(
        prog="twngen explore",
        description="Sweep rate, precision and board: one build a point (estimate only unless asked), "
        "in parallel; writes OUTDIR/explore.{json,csv,md} and the plot explore.{png,svg}.",
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--board", required=True, help="board preset(s), comma-separated (see `twngen boards`)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--rates",
        type=_numbers,
        default=None,
        metavar="R,...",
        help="input rates to sweep, as --input-rate counts them (default: "
        + ",".join(f"{r:g}" for r in DEFAULT_RATES)
        + " positions a cycle for a streamed network; for a dense one, its whole input vector a cycle "
        f"and {DENSE_HALVINGS} halvings below it)",
    )
    speed.add_argument("--target-fps", type=_numbers, default=None, metavar="F,...", help="frame rates to sweep")
    p.add_argument(
        "--precision",
        default="fixed",
        metavar="MODE,...",
        help="precision modes to sweep: fixed, incremental (default %(default)s)",
    )
    p.add_argument("-o", "--outdir", default=None, help="output folder (default build/<model stem>-explore)")
    p.add_argument("--clock-mhz", type=float, default=None, help="target clock (default: each board's)")
    p.add_argument("--keep", action="store_true", help="keep each point's build folder in OUTDIR/points/")
    p.add_argument("--rtl", action="store_true", help="a full build at each point, Verilog included (slower)")
    p.add_argument(
        "--synth-estimate", action="store_true", help="synthesise each point with Yosys too (implies --rtl; slow)"
    )
    p.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME=LUT@FPS",
        help="a published design to plot beside the sweep (repeatable)",
    )
    p.add_argument("--jobs", type=int, default=None, help="local worker processes (default: cores, memory permitting)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run the points on this Dask scheduler's workers (needs twngen[explore])",
    )
    _add_quiet(p)
    _add_arithmetic_options(p)
    args = p.parse_args(argv)
    started = time.monotonic()
    with _progress(args, started) as progress:
        try:
            result = explore(
                args.model,
                args.board,
                rates=args.rates,
                target_fps=args.target_fps,
                precisions=[m.strip() for m in args.precision.split(",") if m.strip()],
                options=_options_from(args),
                clock_mhz=args.clock_mhz,
                outdir=args.outdir,
                keep=args.keep,
                emit_rtl=args.rtl,
                synth_estimate=args.synth_estimate,
                references=args.reference,
                jobs=args.jobs,
                scheduler=args.scheduler,
                command="twngen explore " + shlex.join(a for a in argv if a not in ("-q", "--quiet")),
                progress=progress,
            )
        except KeyboardInterrupt:
            progress.close()
            out = args.outdir or f"build/{Path(args.model).stem}-explore"
            print(f"twngen: interrupted; the points that finished are in {out}/explore.csv", file=sys.stderr)
            return 130
    points = f"{len(result.rows)} point{'' if len(result.rows) == 1 else 's'}"
    print(f"twngen: explored {points} of {Path(args.model).name} in {result.elapsed_s:.1f}s")
    print(f"  {'point':<34} {'status':<13} {'II':>7} {'frames/s':>14} {'LUT':>10} {'top-1':>7}")
    for row in result.rows:
        if row["status"] == "failed":
            print(f"  {row['point']:<34} failed: {row['reason']}")
            continue
        print(
            f"  {row['point']:<34} {row['status']:<13} {row['ii_cycles']:>7} {row['frames_per_s']:>14,.0f} "
            f"{row['lut']:>10,} {100 * row['top1_agreement']:>6.1f}%" + ("  Pareto" if row["pareto"] else "")  # type: ignore[operator]
        )
    print(f"  table: {result.outdir / 'explore.md'} (explore.csv, explore.json)")
    print(f"  plot:  {result.outdir / 'explore.png'} (explore.svg)")
    return 0


def _cmd_cse(argv: list[str]) -> int:
    try:
        from hwgen.cse_tool import cse_main
    except ImportError:
        raise TwnError("`twngen cse` is not available in this build") from None
    return cse_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "verify": _cmd_verify,
        "golden": _cmd_golden,
        "inspect": _cmd_inspect,
        "boards": _cmd_boards,
        "cse": _cmd_cse,
        "make-fragment": _cmd_make_fragment,
        "explore": _cmd_explore,
    }
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return _cmd_build(argv)
    except TwnError as exc:
        print(f"twngen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("twngen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # The file system refused (an unwritable or full output folder, a path through a file).
        where = f": {exc.filename}" if exc.filename else ""
        print(f"twngen: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
