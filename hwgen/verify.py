"""Simulate a build's RTL against its golden model (``twngen verify``)."""

from __future__ import annotations

import importlib.util
import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from hwgen import golden
from hwgen.console.progress import SILENT, Progress, Stage
from hwgen.errors import TwnError
from hwgen.ir import Network
from hwgen.paths import SIM_DIR
from hwgen.plan import plan_network

#: The generated top levels: the valid/ready core and its AXI4-Stream wrapper.
TOPS = ("twn_top", "twn_axis")
#: How progress lines name the simulators.
SIMULATOR_NAMES = {"icarus": "Icarus Verilog", "verilator": "Verilator"}

__all__ = ["TOPS", "VerifyFailed", "VerifyResult", "beats_of", "load_build", "make_vectors", "verify"]


class VerifyFailed(RuntimeError):
    """The simulation itself failed (not a mismatch): build error, crash, timeout."""


@dataclass(frozen=True)
class VerifyResult:
    simulator: str
    vectors: int
    passed: int
    failed: int
    extra_outputs: int
    measured_latency_cycles: int
    measured_ii_cycles: int
    expected_latency_cycles: int
    expected_ii_cycles: int
    mismatches: list[dict[str, object]]

    @property
    def ok(self) -> bool:
        return (
            self.failed == 0
            and self.extra_outputs == 0
            and self.measured_latency_cycles == self.expected_latency_cycles
            and self.measured_ii_cycles == self.expected_ii_cycles
        )


def _sim_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("twngen_sim_runner", SIM_DIR / "runner.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_build(outdir: Path) -> tuple[Network, dict[str, object]]:
    outdir = Path(outdir)
    ir_path, report_path = outdir / "network.json", outdir / "report.json"
    if not ir_path.is_file() or not report_path.is_file():
        raise TwnError(
            f"{outdir} is not a twngen build folder (network.json and report.json are missing); "
            "build one with `twngen MODEL.onnx --board BOARD -o OUTDIR`"
        )
    return Network.from_json(ir_path.read_text()), json.loads(report_path.read_text())


def make_vectors(network: Network, count: int, seed: int) -> np.ndarray:
    """Input codes that exercise the hardware: corners first, then random.

    Corners: all zeros, all most-negative, all most-positive, and alternating
    extremes (the widest accumulators). Then half uniform over the full code
    range and half standard-normal values quantised like real data.
    """
    fmt = network.input_format
    assert fmt is not None
    n = network.in_features
    rng = np.random.default_rng(seed)
    alt = np.where(np.arange(n) % 2 == 0, fmt.lo, fmt.hi)
    corners = [np.zeros(n), np.full(n, fmt.lo), np.full(n, fmt.hi), alt, alt[::-1].copy()]
    vecs = [v.astype(np.int64) for v in corners]
    rest = max(0, count - len(vecs))
    uniform = rng.integers(fmt.lo, fmt.hi + 1, size=(rest - rest // 2, n))
    normal = network.input_format.quantize(rng.standard_normal((rest // 2, n)))  # type: ignore[union-attr]
    all_vecs = np.concatenate([np.array(vecs).reshape(-1, n), uniform, normal]) if n else np.zeros((count, 0))
    return all_vecs[:count].astype(np.int64)


def beats_of(network: Network, codes: np.ndarray) -> np.ndarray:
    """Input codes [frames, features] as the beats the hardware takes: [frames, beats, elements].

    A dense network takes the whole vector in one beat; a network with
    convolution or pooling layers one position (every channel) per beat, or
    ``input_lanes`` positions (lane-major) when the input is folded.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if not network.has_conv:
        return codes.reshape(len(codes), 1, -1)
    folded = network.fold_input(codes)  # [frames, (lanes *) channels, *spatial]
    return folded.reshape(len(codes), folded.shape[1], -1).transpose(0, 2, 1).copy()


def verify(
    outdir: Path,
    simulator: str = "icarus",
    vectors: int = 100,
    inputs: np.ndarray | None = None,
    seed: int = 1,
    stall: float = 0.3,
    top: str = "twn_top",
    progress: Progress = SILENT,
) -> VerifyResult:
    """Run the build's RTL in ``simulator`` against the golden model.

    ``progress`` is told the compile and the simulation as they start and end (the
    default says nothing).
    """
    # The simulator runs in its own folder: every path handed to it is absolute.
    outdir = Path(outdir).resolve()
    network, report = load_build(outdir)
    if inputs is not None:
        codes = golden.quantize_input(network, inputs)
    else:
        if vectors < 1:
            raise TwnError(f"--vectors must be at least 1, not {vectors}")
        codes = make_vectors(network, vectors, seed)
    if not 0 <= stall < 1:
        raise TwnError(f"--stall must be in [0, 1), not {stall}")
    expected = golden.hardware_outputs(network, codes)
    plan = plan_network(network)
    rtl = sorted((outdir / "rtl").glob("*.v"))
    if not rtl:
        raise TwnError(f"{outdir}/rtl holds no Verilog files")

    runner = _sim_runner()
    if simulator not in runner.SIMULATORS:
        raise TwnError(f"--simulator must be one of {', '.join(runner.SIMULATORS)}, not {simulator!r}")
    if top not in TOPS:
        raise TwnError(f"--top must be one of {', '.join(TOPS)}, not {top!r}")
    work = outdir / "sim" / (simulator if top == "twn_top" else f"{simulator}_{top}")
    work.mkdir(parents=True, exist_ok=True)
    vec_path = work / "vectors.npz"
    np.savez(
        vec_path,
        inputs=beats_of(network, codes),
        ii=plan.initiation_interval,
        expected=expected,
        in_bits=plan.in_bits,
        out_bits=plan.out_bits,
    )
    name = SIMULATOR_NAMES.get(simulator, simulator)
    with ExitStack() as stages:

        def phase(what: str) -> None:
            # The runner says when it moves from compiling to simulating.
            stages.close()
            if what == "compile":
                stages.enter_context(progress.stage(f"compiling with {name}"))
            else:
                run = stages.enter_context(progress.stage(f"simulating {len(codes)} vectors on {name}"))
                ran.append(run)

        ran: list[Stage] = []
        try:
            summary = runner.run_testbench(
                sources=rtl,
                simulator=simulator,
                build_dir=work,
                env={"TWN_VECTORS": str(vec_path), "TWN_SEED": str(seed), "TWN_STALL": str(stall), "TWN_TOP": top},
                results_json=work / "results.json",
                toplevel=top,
                on_phase=phase,
                # Two passes over the vectors (the second with stalls), then the pipeline's drain.
                cycles=2 * len(codes) * plan.initiation_interval + int(report["latency_cycles"]),
            )
        except runner.SimulatorUnavailable as exc:
            raise TwnError(str(exc)) from None
        except runner.SimulationFailed as exc:
            raise VerifyFailed(str(exc)) from None
        if ran:
            ran[0].detail = f"{summary['passed']}/{summary['vectors']} vectors passed"
    return VerifyResult(
        simulator=simulator,
        vectors=int(summary["vectors"]),
        passed=int(summary["passed"]),
        failed=int(summary["failed"]),
        extra_outputs=int(summary["extra_outputs"]),
        measured_latency_cycles=int(summary["measured_latency_cycles"]),
        measured_ii_cycles=int(summary["measured_ii_cycles"]),
        expected_latency_cycles=int(report["latency_cycles"]),  # type: ignore[call-overload]
        expected_ii_cycles=int(report["initiation_interval_cycles"]),  # type: ignore[call-overload]
        mismatches=list(summary["mismatches"]),
    )
