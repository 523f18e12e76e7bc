"""What twngen tells a person while it works: stage progress on stderr (:mod:`hwgen.console.progress`)."""

from hwgen.console.progress import SILENT, LiveProgress, PlainProgress, Progress, progress_for

__all__ = ["SILENT", "LiveProgress", "PlainProgress", "Progress", "progress_for"]
