"""The sweep: a grid of points, each one :func:`hwgen.build.build`, run side by side.

Each point is a build without RTL by default (``emit_rtl=False``: quantise, merge,
schedule, estimate, check against onnxruntime), run by :func:`run_point` in a worker:
a local process (:class:`concurrent.futures.ProcessPoolExecutor`) or a Dask worker
(``distributed.Client.get_executor()``, the same ``concurrent.futures`` interface),
so one loop serves both. The loop keeps at most as many points in flight as there are
workers, which bounds memory and tells it when each point starts; results are written
as they arrive (a Ctrl-C leaves the finished rows and their plot). A point that fails
is a row with its reason: :func:`run_point` never raises for a build error, and a
worker that dies is recorded the same way.

Workers share the adder-graph merge cache (:func:`hwgen.passes.merge_pairs.merged_adder_graph_cached`,
keyed by the weights' content): every task carries the folder this process uses. The
first point runs alone when the network's weights are the same at every point, so the
others find its merged graphs there instead of merging the same layers side by side.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import shlex
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from pathlib import Path

from hwgen import __version__
from hwgen.build import ArithmeticOptions, build, load_array
from hwgen.console.progress import SILENT, Progress, Stage
from hwgen.errors import TwnError
from hwgen.explore.tables import (
    Reference,
    failed_row,
    pareto_front,
    render_csv,
    render_json,
    render_markdown,
    row_from_report,
    write_text_atomically,
)
from hwgen.flow.boards import Board, load_board
from hwgen.ir import Network
from hwgen.passes.precision import PRECISION_MODES
from hwgen.paths import file_sha256

__all__ = [
    "DEFAULT_RATES",
    "ExploreResult",
    "Point",
    "PointTask",
    "default_jobs",
    "default_rates",
    "explore",
    "grid",
    "replot",
    "run_point",
]

#: Input rates (positions a cycle) swept for a streamed network when neither rates nor target
#: frame rates are given: a quarter of a position a cycle up to four lanes.
DEFAULT_RATES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: A dense network's default sweep: its whole input vector a cycle and this many halvings below.
DENSE_HALVINGS = 6

#: Memory one point's build may take, for the default number of local workers: a floor
#: (Python, numpy, onnxruntime, the IR) plus a multiple of the model file (the merged
#: graphs and plans of a large network take hundreds of times its weights' bytes). Measured:
#: an estimate-only point of the classifier's shape (a 2.4 MB model) peaks at 1.5 GB resident.
POINT_MEMORY_FLOOR = 768 << 20
POINT_MEMORY_PER_MODEL_BYTE = 400

#: Seconds between two drawings of the plot while points arrive (it is drawn at the end too).
PLOT_INTERVAL_S = 20.0


@dataclass(frozen=True)
class Point:
    """One build of the grid: a board, a rate (input rate or target frames/s) and a precision mode."""

    board: str
    precision: str
    input_rate: float | None = None
    target_fps: float | None = None

    @property
    def label(self) -> str:
        rate = f"rate {self.input_rate:g}" if self.input_rate is not None else f"{self.target_fps:g} frames/s"
        return f"{self.board} {rate} {self.precision}"

    @property
    def ident(self) -> str:
        """A folder name for the point (``--keep``)."""
        rate = f"rate{self.input_rate:g}" if self.input_rate is not None else f"fps{self.target_fps:g}"
        return f"{self.board}-{rate}-{self.precision}"

    def cli_args(self) -> list[str]:
        args = ["--board", self.board]
        if self.input_rate is not None:
            args += ["--input-rate", f"{self.input_rate:g}"]
        if self.target_fps is not None:
            args += ["--target-fps", f"{self.target_fps:g}"]
        if self.precision != "fixed":
            args += ["--precision", self.precision]
        return args

    def to_json(self) -> dict[str, object]:
        return {
            "point": self.label,
            "board": self.board,
            "input_rate": self.input_rate,
            "target_fps": self.target_fps,
            "precision": self.precision,
        }


def _positive(values: Sequence[float], what: str) -> list[float]:
    out: list[float] = []
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise TwnError(f"{what} must be positive numbers, not {v!r}")
        if v not in out:
            out.append(float(v))
    if not out:
        raise TwnError(f"{what}: give at least one value")
    return out


def default_rates(network: Network) -> tuple[float, ...]:
    """What to sweep without ``--rates``: :data:`DEFAULT_RATES` positions a cycle for a streamed
    network; for a dense one, where ``--input-rate`` counts input elements, one vector a cycle
    (the fully parallel design) and :data:`DENSE_HALVINGS` halvings of it."""
    if network.has_conv:
        return DEFAULT_RATES
    return tuple(network.in_features / 2**k for k in range(DENSE_HALVINGS, -1, -1))


def grid(
    boards: Sequence[str],
    precisions: Sequence[str] = ("fixed",),
    rates: Sequence[float] | None = None,
    target_fps: Sequence[float] | None = None,
) -> list[Point]:
    """Every combination, board by board, then rate by rate, then precision."""
    if rates is not None and target_fps is not None:
        raise TwnError("give --rates or --target-fps, not both")
    for mode in precisions:
        if mode not in PRECISION_MODES:
            raise TwnError(f"--precision must be among {', '.join(PRECISION_MODES)}, not {mode!r}")
    if not boards or not precisions:
        raise TwnError("the grid needs at least one board and one precision mode")
    speeds: list[tuple[float | None, float | None]]
    if target_fps is not None:
        speeds = [(None, f) for f in _positive(target_fps, "--target-fps")]
    else:
        speeds = [(r, None) for r in _positive(DEFAULT_RATES if rates is None else rates, "--rates")]
    return [
        Point(board, mode, rate, fps)
        for board in dict.fromkeys(boards)
        for rate, fps in speeds
        for mode in dict.fromkeys(precisions)
    ]


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs for one point (picklable: it travels to the worker).

    ``model_content``/``calibrate_content`` carry the files for a worker that may not see
    this machine's files (a Dask worker elsewhere); a worker that finds the same file at
    the same path reads it there."""

    point: Point
    model: str
    board: Board
    options: ArithmeticOptions
    clock_mhz: float | None
    command: str
    build_dir: str
    #: ``build_dir`` as the rows give it: under OUTDIR as the caller named it, like the command's ``-o``.
    shown_dir: str
    keep: bool
    emit_rtl: bool
    synth_estimate: bool
    cache_dir: str
    jobs: int | None = 1
    model_content: bytes | None = None
    calibrate_content: bytes | None = None


def _local_copy(path: str, content: bytes | None, folder: Path) -> str:
    """``path`` if this worker sees the same file there, else ``content`` written under the same name."""
    if content is None:
        return path
    import hashlib

    local = Path(path)
    if local.is_file() and file_sha256(local) == hashlib.sha256(content).hexdigest():
        return path
    copy = folder / local.name
    copy.write_bytes(content)
    return str(copy)


def _requested_fps(point: Point, report: dict, network: Network) -> float:  # type: ignore[type-arg]
    """Frames/s the point asks for: its target, or its input rate over the elements of a frame
    (a dense network's input vector; a streamed network's positions)."""
    if point.target_fps is not None:
        return point.target_fps
    assert point.input_rate is not None
    shape = network.input_shape
    elements = math.prod(shape[1:]) if network.has_conv else math.prod(shape)
    return point.input_rate * float(report["clock_mhz"]) * 1e6 / elements


class _StageTimes(Progress):
    """Seconds in each stage of a point's build (summed over repeats: ``incremental`` quantises twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def _finished(self, stage: Stage) -> None:
        # "parsing model.onnx", "writing /tmp/...": the stage, not its object.
        name = stage.name.split(" ")[0] if stage.name.startswith(("parsing ", "writing ")) else stage.name
        took = time.monotonic() - stage.started
        self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 3)


def run_point(task: PointTask) -> dict[str, object]:
    """Build one point and return its row; a build error is the row's reason, never an exception."""
    started = time.perf_counter()
    # Share this sweep's merge cache, wherever the worker was started.
    os.environ["TWNGEN_CACHE"] = task.cache_dir
    point = task.point.to_json()
    times = _StageTimes()
    try:
        with tempfile.TemporaryDirectory(prefix="twngen-explore-") as tmp:
            model = _local_copy(task.model, task.model_content, Path(tmp))
            options = task.options
            if options.calibrate is not None:
                options = replace(options, calibrate=_local_copy(options.calibrate, task.calibrate_content, Path(tmp)))
            out = Path(task.build_dir) if task.keep else Path(tmp) / "build"
            result = build(
                model,
                task.board,
                out,
                options,
                clock_mhz=task.clock_mhz,
                # The numbers of a design that does not fit are worth a row too.
                allow_overflow=True,
                command=task.command,
                synth_estimate=task.synth_estimate,
                input_rate=task.point.input_rate,
                target_fps=task.point.target_fps,
                precision=task.point.precision,
                emit_rtl=task.emit_rtl or task.synth_estimate,
                jobs=task.jobs,
                progress=times,
            )
            requested = _requested_fps(task.point, result.report, result.network)
    except TwnError as exc:
        return failed_row(point, str(exc), time.perf_counter() - started, task.command)
    except Exception as exc:  # a defect in twngen: still one row, the sweep goes on
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return failed_row(point, reason, time.perf_counter() - started, task.command)
    build_dir = task.shown_dir if task.keep else ""
    row = row_from_report(point, result.report, requested, time.perf_counter() - started, task.command, build_dir)
    # explore.json only (explore.csv keeps to COLUMNS): where the point's time went.
    row["stage_s"] = times.seconds
    return row


def _ignore_sigint() -> None:
    """Local workers leave Ctrl-C to the sweep, which stops them once it has saved what finished."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_jobs(points: int, model: str | Path) -> int:
    """Local workers: one a core, as many as the available memory holds builds of this
    model (:data:`POINT_MEMORY_FLOOR`, :data:`POINT_MEMORY_PER_MODEL_BYTE`), at most one a point."""
    per_point = POINT_MEMORY_FLOOR + POINT_MEMORY_PER_MODEL_BYTE * Path(model).stat().st_size
    memory = _available_memory()
    by_memory = max(1, memory // per_point) if memory is not None else _cores()
    return max(1, min(_cores(), by_memory, points))


def _merge_cache_dir() -> str:
    # The rule of hwgen.passes.merge_pairs: $TWNGEN_CACHE, else ~/.cache/twngen/merge.
    env = os.environ.get("TWNGEN_CACHE")
    return str(Path(env).absolute()) if env else str(Path.home() / ".cache" / "twngen" / "merge")


def _arithmetic_args(options: ArithmeticOptions) -> list[str]:
    """The command-line options that give ``options`` (those that differ from the defaults)."""
    default = ArithmeticOptions()
    args: list[str] = []
    for f in fields(ArithmeticOptions):
        value = getattr(options, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, tuple):
            args += [flag, ",".join(f"{name}={bits}" for name, bits in value)]
        else:
            args += [flag, str(value)]
    return args


@dataclass
class ExploreResult:
    """What :func:`explore` did: the rows (grid order, the points that finished), the files
    written, and whether every point ran."""

    outdir: Path
    rows: list[dict[str, object]]
    files: list[Path]
    complete: bool
    elapsed_s: float
    executor: str


class _Executors:
    """Where the points run: local processes, a Dask cluster, or an executor the caller gave."""

    def __init__(self, jobs: int, scheduler: str | None, executor: cf.Executor | None) -> None:
        self.jobs = jobs
        self.client = None
        self.owned = executor is None
        if executor is not None:
            self.executor = executor
            self.description = f"the given executor ({jobs} at a time)"
            self.remote = False
        elif scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                raise TwnError("--scheduler needs Dask: pip install 'twngen[explore]' (dask[distributed])") from None
            try:
                self.client = Client(scheduler, timeout=20, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise TwnError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
            threads = sum(self.client.nthreads().values())
            self.jobs = max(1, threads)
            self.executor = self.client.get_executor(pure=False)
            self.description = f"Dask at {scheduler} ({threads} worker thread(s))"
            self.remote = True
        else:
            self.executor = self._local()
            self.description = f"{jobs} local process(es)"
            self.remote = False

    def _local(self) -> cf.Executor:
        import multiprocessing

        # spawn: a fresh interpreter, not a fork of one that may hold onnxruntime's threads.
        return cf.ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
        )

    def submit(self, task: PointTask) -> cf.Future[dict[str, object]]:
        try:
            return self.executor.submit(run_point, task)
        except cf.BrokenExecutor:
            if not self.owned or self.client is not None:
                raise
            # A worker died (killed for memory?): the points it held are failed rows; go on with a new pool.
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._local()
            return self.executor.submit(run_point, task)

    def close(self, interrupted: bool = False) -> None:
        if not self.owned:
            return
        if interrupted and isinstance(self.executor, cf.ProcessPoolExecutor):
            # Running builds would go on to their end: stop them (they ignore SIGINT).
            processes = list(getattr(self.executor, "_processes", {}).values())
            self.executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
        else:
            self.executor.shutdown(wait=not interrupted)
        if self.client is not None:
            self.client.close()


def _point_detail(row: dict[str, object]) -> str:
    if row["status"] == "failed":
        return f"FAILED: {row['reason']}"
    text = (
        f"II {row['ii_cycles']}, {float(row['frames_per_s']):,.0f} frames/s, {row['lut']:,} LUT, "  # type: ignore[arg-type]
        f"top-1 {100 * float(row['top1_agreement']):.1f}%"  # type: ignore[arg-type]
    )
    return text if row["status"] == "ok" else f"{text}; {str(row['status']).upper()}: {row['reason']}"


def explore(
    model: str | Path,
    boards: Sequence[str] | str,
    *,
    rates: Sequence[float] | None = None,
    target_fps: Sequence[float] | None = None,
    precisions: Sequence[str] = ("fixed",),
    options: ArithmeticOptions | None = None,
    clock_mhz: float | None = None,
    outdir: str | Path | None = None,
    keep: bool = False,
    emit_rtl: bool = False,
    synth_estimate: bool = False,
    references: Sequence[Reference | str] = (),
    jobs: int | None = None,
    scheduler: str | None = None,
    executor: cf.Executor | None = None,
    command: str | None = None,
    progress: Progress = SILENT,
    on_row: Callable[[dict[str, object]], None] | None = None,
) -> ExploreResult:
    """Build every point of the grid (boards x rates or target frame rates x precision modes)
    and write OUTDIR (default ``build/<model stem>-explore``): explore.json, explore.csv,
    explore.md, explore.png and explore.svg, rewritten as points finish.

    Points run on ``jobs`` local processes (default :func:`default_jobs`), on the Dask
    cluster at ``scheduler`` (``tcp://HOST:PORT``), or on ``executor``. ``keep`` keeps
    each point's build folder under OUTDIR/points; ``emit_rtl`` (implied by
    ``synth_estimate``) makes each point a full build with its Verilog. ``on_row`` is
    called with each row as it arrives. A KeyboardInterrupt stops the workers, writes
    the files for the points that finished and is raised again.
    """
    started = time.monotonic()
    options = ArithmeticOptions() if options is None else options
    model_path = Path(model)
    if not model_path.is_file():
        raise TwnError(f"{model}: no such file")
    board_list = [b.strip() for b in boards.split(",")] if isinstance(boards, str) else list(boards)
    board_objs = {name: load_board(name) for name in board_list}
    refs = [r if isinstance(r, Reference) else Reference.parse(r) for r in references]
    if jobs is not None and jobs < 1:
        raise TwnError(f"--jobs must be at least 1, not {jobs}")
    if options.calibrate is not None:
        load_array(options.calibrate, "--calibrate")  # refused here, not once a point
    if "incremental" in precisions and options.layer_act_bits:
        raise TwnError("give --precision incremental or --layer-act-bits, not both")
    # The model is parsed once here: a file twngen cannot read is one error, not a failed row a point.
    from hwgen.frontend import load_onnx

    network = load_onnx(
        model_path,
        options.max_weight_bits,
        options.max_final_weight_bits,
        options.max_first_weight_bits,
        dict(options.quantize_weights),
    )

    if rates is None and target_fps is None:
        rates = default_rates(network)
    points = grid(board_list, precisions, rates, target_fps)
    out = Path(outdir) if outdir is not None else Path("build") / f"{model_path.stem}-explore"
    out.mkdir(parents=True, exist_ok=True)
    if keep:
        (out / "points").mkdir(exist_ok=True)
    ship = scheduler is not None
    cache_dir = _merge_cache_dir()
    tasks: list[PointTask] = []
    for point in points:
        build_dir = out / "points" / point.ident
        cmd = ["twngen", str(model), *point.cli_args(), "-o", str(build_dir)]
        cmd += ["--clock-mhz", f"{clock_mhz:g}"] if clock_mhz is not None else []
        cmd += _arithmetic_args(options) + (["--synth-estimate"] if synth_estimate else [])
        tasks.append(
            PointTask(
                point=point,
                model=str(model_path.absolute()),
                board=board_objs[point.board],
                options=replace(options, calibrate=str(Path(options.calibrate).absolute()))
                if options.calibrate
                else options,
                clock_mhz=clock_mhz,
                command=shlex.join(cmd),
                build_dir=str(build_dir.absolute()),
                shown_dir=str(build_dir),
                keep=keep,
                emit_rtl=emit_rtl,
                synth_estimate=synth_estimate,
                cache_dir=cache_dir,
                model_content=model_path.read_bytes() if ship else None,
                calibrate_content=Path(options.calibrate).read_bytes() if ship and options.calibrate else None,
            )
        )

    summary: dict[str, object] = {
        "twngen_version": __version__,
        "model": model_path.name,
        "model_sha256": file_sha256(model_path),
        "command": command,
        "grid": {
            "boards": list(dict.fromkeys(board_list)),
            "input_rates": list(dict.fromkeys(p.input_rate for p in points if p.input_rate is not None)),
            "target_fps": list(dict.fromkeys(p.target_fps for p in points if p.target_fps is not None)),
            "precisions": list(dict.fromkeys(precisions)),
        },
        "clock_mhz": clock_mhz,
        "options": options.to_json(),
        "estimate_only": not (emit_rtl or synth_estimate),
        "points": len(points),
        "references": [r.to_json() for r in refs],
    }
    rows: dict[int, dict[str, object]] = {}
    files = [out / name for name in ("explore.json", "explore.csv", "explore.md", "explore.png", "explore.svg")]
    title = f"{model_path.name} on {', '.join(summary['grid']['boards'])}"  # type: ignore[index]

    def write(state: str, plot: bool, executor_text: str) -> None:
        """Rewrite OUTDIR's files; ``state``: running, complete or interrupted."""
        ordered = [rows[i] for i in sorted(rows)]
        front = set(pareto_front(ordered))
        for k, row in enumerate(ordered):
            row["pareto"] = k in front
        info = {
            **summary,
            "executor": executor_text,
            "complete": state == "complete",
            "state": state,
            "finished": len(ordered),
            "elapsed_s": round(time.monotonic() - started, 3),
        }
        write_text_atomically(files[0], render_json(info, ordered))
        write_text_atomically(files[1], render_csv(ordered))
        write_text_atomically(files[2], render_markdown(info, ordered, files[3].name))
        if plot:
            from hwgen.explore.pareto_plot import plot_sweep

            plot_sweep(ordered, refs, f"{title}: {len(ordered)} of {len(points)} points", files[3:])

    jobs = jobs if jobs is not None else (default_jobs(len(points), model_path) if executor is None else _cores())
    pool = _Executors(jobs, scheduler, executor)
    order = deque(range(len(points)))
    # Dense networks (and streamed ones below one position a cycle) have the same weights at every
    # point: the first point merges them alone, the others read its graphs from the cache.
    warm_up = len(points) > 1 and pool.jobs > 1
    if not pool.remote:
        # A local worker that runs alone may merge layers side by side in processes of its own; a
        # Dask worker may not start processes (its tasks keep jobs=1).
        alone = [(k == 0 and warm_up) or pool.jobs == 1 for k in range(len(tasks))]
        tasks = [replace(t, jobs=None if a else 1) for t, a in zip(tasks, alone, strict=True)]
    running: dict[cf.Future[dict[str, object]], tuple[int, AbstractContextManager[Stage], Stage]] = {}
    last_plot = time.monotonic()
    interrupted = False
    what = f"exploring {len(points)} point{'' if len(points) == 1 else 's'} on {pool.description}"
    with progress.stage(what, len(points), "points") as overall:
        try:
            while order or running:
                limit = 1 if warm_up else pool.jobs
                while order and len(running) < limit:
                    i = order.popleft()
                    opened = progress.stage(points[i].label)
                    running[pool.submit(tasks[i])] = (i, opened, opened.__enter__())
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    i, stage_cm, stage = running.pop(future)
                    try:
                        row = future.result()
                    except Exception as exc:  # the worker died, or Dask gave up on it
                        row = failed_row(
                            points[i].to_json(),
                            f"the worker stopped: {type(exc).__name__}: {exc}",
                            time.monotonic() - stage.started,
                            tasks[i].command,
                        )
                    rows[i] = row
                    warm_up = False
                    stage.detail = _point_detail(row)
                    stage_cm.__exit__(None, None, None)
                    overall.update(len(rows))
                    plot_now = time.monotonic() - last_plot > PLOT_INTERVAL_S
                    write("running", plot_now, pool.description)
                    if plot_now:
                        last_plot = time.monotonic()
                    if on_row is not None:
                        on_row(row)
        except KeyboardInterrupt:
            interrupted = True
            for _, cm, _stage in running.values():
                cm.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
            pool.close(interrupted=True)
            write("interrupted", True, pool.description)
            raise
        finally:
            if not interrupted:
                pool.close()
        overall.detail = ", ".join(
            f"{n} {s}"
            for s in ("ok", "does not fit", "rate not met", "failed")
            if (n := sum(r["status"] == s for r in rows.values()))
        )
        write("complete", True, pool.description)
    ordered = [rows[i] for i in sorted(rows)]
    return ExploreResult(out, ordered, files, True, time.monotonic() - started, pool.description)


def replot(outdir: str | Path) -> list[Path]:
    """Draw OUTDIR's plot and explore.md again from its explore.json (after a change to the
    drawing, or to a sweep's references), without building anything."""
    import json

    from hwgen.explore.pareto_plot import plot_sweep

    out = Path(outdir)
    try:
        doc = json.loads((out / "explore.json").read_text())
    except (OSError, ValueError) as exc:
        raise TwnError(f"{out}: no sweep to plot ({exc})") from None
    rows = doc.pop("rows")
    refs = [Reference(r["name"], r["lut"], r["frames_per_s"]) for r in doc.get("references", [])]
    paths = [out / "explore.md", out / "explore.png", out / "explore.svg"]
    write_text_atomically(paths[0], render_markdown(doc, rows, paths[1].name))
    title = f"{doc['model']} on {', '.join(doc['grid']['boards'])}: {len(rows)} of {doc['points']} points"
    plot_sweep(rows, refs, title, paths[1:])
    return paths
