"""Design-space exploration (``twngen explore``): a grid of builds over rate, precision and
board, each estimated without RTL by default, in parallel on local processes or on a
Dask cluster, tabulated (explore.json, explore.csv, explore.md) and plotted (frames/s
against LUTs, accuracy as colour, the Pareto front highlighted).

An entry point like :mod:`hwgen.build` and :mod:`hwgen.cli`: it may import any part.

- :mod:`hwgen.explore.sweep`: the grid, one point's build (the worker function), the
  executors and the loop that collects rows as they finish;
- :mod:`hwgen.explore.tables`: a row from a build's report, the Pareto front, the
  JSON, CSV and Markdown files;
- :mod:`hwgen.explore.pareto_plot`: the plot (matplotlib, no display needed).
"""

from hwgen.explore.sweep import ExploreResult, Point, default_jobs, explore, grid, replot
from hwgen.explore.tables import COLUMNS, Reference, pareto_front

__all__ = [
    "COLUMNS",
    "ExploreResult",
    "Point",
    "Reference",
    "default_jobs",
    "explore",
    "grid",
    "pareto_front",
    "replot",
]
