"""Stage progress of a build or a simulation, on stderr.

:class:`Progress` is the interface the Python API takes (``build(...,
progress=...)``, ``verify(..., progress=...)``) and is itself silent: the
library prints nothing unless given a reporter. The CLI passes one from
:func:`progress_for`: on a terminal a live display (rich) with a spinner, a
bar for counted stages and the elapsed time; otherwise (CI logs, Makefile
builds, pipes) plain lines, one when a stage starts, one per count and one
when it finishes, each with the seconds since the command started and no
carriage returns or escape codes::

    twngen: [   0.0s] parsing model.onnx
    twngen: [   0.4s] parsing model.onnx: done in 0.4s
    twngen: [   5.1s] merging adder graphs: 3/9 layers
    twngen: [  11.9s] merging adder graphs: 9/9 layers, done in 11.5s

The pure layers never import this module: a long pass takes a plain
``(done, total)`` callback, which :meth:`Stage.update` is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["SILENT", "LiveProgress", "PlainProgress", "Progress", "Stage", "progress_for"]


class Stage:
    """A stage in progress: ``update(done, total)`` counts its work (layers merged, modules emitted);
    ``detail`` is appended to the line that ends it (e.g. "20/20 vectors passed")."""

    def __init__(self, owner: Progress, name: str, total: int | None, unit: str) -> None:
        self.owner, self.name, self.total, self.unit = owner, name, total, unit
        self.done = 0
        self.detail = ""
        self.started = time.monotonic()

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self.owner._counted(self)

    @property
    def count(self) -> str:
        """``3/9 layers``, or "" for a stage that is not counted."""
        if self.total is None:
            return ""
        return f"{self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")


class Progress:
    """The silent reporter (the library default); subclasses display the stages.

    ``with progress.stage("merging adder graphs", total=9, unit="layers") as s: ... s.update(3)``
    """

    def __init__(self, started: float | None = None) -> None:
        #: ``time.monotonic()`` at the command's start: the lines' elapsed times count from it.
        self.started = time.monotonic() if started is None else started

    @contextmanager
    def stage(self, name: str, total: int | None = None, unit: str = "") -> Iterator[Stage]:
        s = Stage(self, name, total, unit)
        self._started(s)
        try:
            yield s
        except BaseException:
            # The error (one line, printed by the caller) says what went wrong.
            self._abandoned(s)
            raise
        self._finished(s)

    def close(self) -> None:
        """Stop any live display (before the caller prints its summary or an error)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _started(self, stage: Stage) -> None:
        pass

    def _counted(self, stage: Stage) -> None:
        pass

    def _finished(self, stage: Stage) -> None:
        pass

    def _abandoned(self, stage: Stage) -> None:
        pass


#: The reporter that says nothing.
SILENT = Progress()


class PlainProgress(Progress):
    """One line per stage start, count and finish: for logs (no ``\\r``, no escape codes)."""

    def __init__(self, stream: TextIO, started: float | None = None) -> None:
        super().__init__(started)
        self.stream = stream

    def _line(self, text: str) -> None:
        self.stream.write(f"twngen: [{self.elapsed():6.1f}s] {text}\n")
        self.stream.flush()

    def _started(self, stage: Stage) -> None:
        self._line(stage.name + (f": {stage.count}" if stage.count else ""))

    def _counted(self, stage: Stage) -> None:
        self._line(f"{stage.name}: {stage.count}")

    def _finished(self, stage: Stage) -> None:
        took = time.monotonic() - stage.started
        parts = [p for p in (stage.count, stage.detail) if p]
        self._line(f"{stage.name}: {', '.join([*parts, ''])}done in {took:.1f}s")


class LiveProgress(Progress):
    """A live display on a terminal (rich): the running stage with a spinner, its bar and count
    when it is counted, and its elapsed time; finished stages stay listed with their time."""

    def __init__(self, stream: TextIO, started: float | None = None) -> None:
        super().__init__(started)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._display = RichProgress(
            SpinnerColumn(finished_text="[green]done"),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks: dict[int, object] = {}
        self._display.start()

    def _started(self, stage: Stage) -> None:
        self._tasks[id(stage)] = self._display.add_task(stage.name, total=stage.total, count=stage.count)

    def _counted(self, stage: Stage) -> None:
        task = self._tasks[id(stage)]
        self._display.update(task, completed=stage.done, total=stage.total, count=stage.count)  # type: ignore[arg-type]

    def _finished(self, stage: Stage) -> None:
        task = self._tasks.pop(id(stage))
        name = stage.name + (f" ({stage.detail})" if stage.detail else "")
        total = stage.total if stage.total is not None else 1
        done = stage.done if stage.total is not None else 1
        self._display.update(task, description=name, total=total, completed=done, count=stage.count)  # type: ignore[arg-type]
        self._display.stop_task(task)  # type: ignore[arg-type]

    def _abandoned(self, stage: Stage) -> None:
        task = self._tasks.pop(id(stage))
        self._display.stop_task(task)  # type: ignore[arg-type]

    def close(self) -> None:
        self._display.stop()


def progress_for(quiet: bool, stream: TextIO | None = None, started: float | None = None) -> Progress:
    """The reporter for a command: silent with ``quiet``, live on a terminal, plain lines otherwise
    (on ``stream``, default stderr; elapsed times from ``started``, default now)."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return SILENT
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return LiveProgress(stream, started)
    return PlainProgress(stream, started)
