"""Reports: the results database as tables and figures, beside the paper's published values.

For notebooks::

    from imacsr_cli import report
    runs = report.runs_frame("results/imacsr.db", grid="table_iv")   # one row per run, fractions
    t4 = report.table_iv(db="results/imacsr.db")                      # a Table; t4.frame is tidy (%)
    t4.findings                                                       # each cell's test and verdict
    report.paper_table()                                              # the paper's Table IV alone
    report.table_iv_frame(db=...)                                     # just the frame
    [fig] = report.figure_3(db=..., grid="num_points"); report.draw(fig)

Every builder takes ``db`` (a Store, URL, path or None for $IMACSR_DB / results/imacsr.db) or
``runs`` (a runs frame you made or filtered yourself), ``grid`` (only that grid's runs count) and
``convention`` ("dataset": confusion matrix over the whole set; "paper": the per-image average of
the paper's eq. (13)). Values in table and figure frames are percent; in the runs frame, fractions.
Nothing here prints; the CLI (imacsr_cli/cli/report.py) renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imacsr_cli.report import figures as _figures
from imacsr_cli.report import paper
from imacsr_cli.report import tables as _tables
from imacsr_cli.report.figures import FigureData, draw
from imacsr_cli.report.figures import save as save_figure
from imacsr_cli.report.frames import MixedCellError, metrics_long, runs_frame
from imacsr_cli.report.renderers import render, rich_table
from imacsr_cli.report.tables import PAPER_IV_ID as PAPER_IV
from imacsr_cli.report.tables import Explanation, Table

__all__ = [
    "Explanation", "FigureData", "MixedCellError", "Report", "Table",
    "build_report", "draw", "explain", "figure_3", "figure_4", "metrics_long", "paper",
    "paper_table", "paper_table_iv", "render", "rich_table", "runs_frame", "save_figure", "scope_of",
    "table_iv", "table_iv_frame", "table_vi", "table_vi_frame", "write_report",
]


def scope_of(grid: str | None) -> str:
    """Where runs were looked for, as cells' "not in ..." reasons say it."""
    return f"grid {grid}" if grid else "any grid"


def _runs(db: Any, runs: pd.DataFrame | None, grid: str | None) -> pd.DataFrame:
    return runs if runs is not None else runs_frame(db, grid)


def table_iv(db: Any = None, grid: str | None = None, convention: str = "dataset",
             runs: pd.DataFrame | None = None) -> Table:
    """Table IV (method comparison) beside the paper's published values."""
    return _tables.table_iv(_runs(db, runs, grid), convention, scope_of(grid))


def table_vi(db: Any = None, grid: str | None = None, convention: str = "dataset", metric: str = "mIoU",
             runs: pd.DataFrame | None = None) -> Table:
    """Table VI (position of points) with the paper's findings checked on ``metric``."""
    return _tables.table_vi(_runs(db, runs, grid), convention, scope_of(grid), metric)


def figure_3(db: Any = None, grid: str | None = None, convention: str = "dataset", metric: str = "mIoU",
             runs: pd.DataFrame | None = None) -> list[FigureData]:
    """Fig. 3 data (metrics against the number of points), one per (model, dataset)."""
    return _figures.figure_3(_runs(db, runs, grid), convention, scope_of(grid), metric)


def figure_4(db: Any = None, grid: str | None = None, convention: str = "dataset", metric: str = "mIoU",
             runs: pd.DataFrame | None = None) -> list[FigureData]:
    """Fig. 4 data (metrics against the spacing of points), one per (model, dataset)."""
    return _figures.figure_4(_runs(db, runs, grid), convention, scope_of(grid), metric)


def table_iv_frame(db: Any = None, grid: str | None = None, convention: str = "dataset") -> pd.DataFrame:
    """Table IV as a tidy frame: one row per (model, method, dataset, metric); mean, std, n (%),
    run_ids, missing, paper, diff, gain, paper_gain."""
    return table_iv(db, grid, convention).frame


def table_vi_frame(db: Any = None, grid: str | None = None, convention: str = "dataset") -> pd.DataFrame:
    """Table VI as a tidy frame: one row per (model, dataset, num_points, position, metric)."""
    return table_vi(db, grid, convention).frame


def paper_table_iv() -> pd.DataFrame:
    """The paper's Table IV: model, method, dataset, metric, value (%), source."""
    return paper.table_iv_frame()


def paper_table() -> Table:
    """The paper's Table IV as a Table (values, gains in points and relative), to render or write."""
    return _tables.paper_table_iv()


def explain(what: str, cell: str, db: Any = None, grid: str | None = None, convention: str = "dataset",
            runs: pd.DataFrame | None = None) -> Explanation:
    """The runs behind one cell of table "iv"/"vi" or figure "3"/"4", with their specs' differences."""
    frame = _runs(db, runs, grid)
    if what == "iv":
        placement, _ = _tables.table_iv_placement(frame)
    elif what == "vi":
        placement, _ = _tables.table_vi_placement(frame)
    else:
        placement, _ = _figures.figure_placement(what, frame)
    from imacsr_cli.report.frames import METRICS, metric_column

    return _tables.explain(placement, cell, [metric_column(m, convention) for m in METRICS])


# ---- several at once (the CLI's --all) --------------------------------------------------------


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureData] = field(default_factory=list)


def build_report(tables: list[str], figures: list[str], db: Any = None, grid: str | None = None,
                 convention: str = "dataset", metric: str = "mIoU") -> Report:
    """Tables ("iv", "iv-paper": the paper's own, "vi") and figures ("3", "4") from one read of the
    database (none when only the paper's table is asked for)."""
    runs = runs_frame(db, grid) if set(tables) - {PAPER_IV} or figures else None
    out = Report()
    for t in tables:
        if t == PAPER_IV:
            out.tables.append(_tables.paper_table_iv())
        elif t == "iv":
            out.tables.append(table_iv(grid=grid, convention=convention, runs=runs))
        else:
            out.tables.append(table_vi(grid=grid, convention=convention, metric=metric, runs=runs))
    for f in figures:
        out.figures += (figure_3 if f == "3" else figure_4)(grid=grid, convention=convention, metric=metric,
                                                            runs=runs)
    return out


def write_report(rep: Report, out_dir: str | Path) -> list[Path]:
    """Write every table as .md, .tex, .csv and .json and every figure as .png, .pdf (and the .csv of
    its data) into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for t in rep.tables:
        for ext, fmt in (("md", "md"), ("tex", "latex"), ("csv", "csv"), ("json", "json")):
            path = out / f"table_{t.id.replace('-', '_')}.{ext}"
            path.write_text(render(t, fmt), encoding="utf-8")
            written.append(path)
    for fd in rep.figures:
        written += save_figure(fd, out)
    return written
