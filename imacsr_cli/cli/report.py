"""`imacsr report`: Table IV / Table VI / Fig. 3 / Fig. 4 from the results database.

Thin: parse the options, ask imacsr_cli.report for the tables and figures, render or write them.
pandas and matplotlib are imported inside the command, so `imacsr --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from imacsr_cli import metric_names as mn
from imacsr_cli.cli.options import db_option
from imacsr_cli.errors import ImacsrError


class UsageProblem(ImacsrError):
    """Options that do not fit together (one line on stderr, exit 2, like a bad value)."""

    exit_code = 2


TABLES = ("iv", "vi")
FIGURES = ("3", "4")
EXTRA_FIGURES = ("2", "diagnostics", "curves", "convergence")  # report/extra.py (insight, Fig. 2, index.html)
FORMATS = ("rich", "md", "latex", "csv", "json")
CONVENTIONS = ("dataset", "paper")
METRICS = mn.MAIN


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is None:
        return None
    v = value.strip()
    v = v.lower() if option != "--metric" else v
    if v not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return v


def report(
    table: str = typer.Option(None, "--table", metavar="iv|vi", help="Table IV (method comparison) or VI (position of points)."),
    figure: str = typer.Option(
        None, "--figure", metavar="2|3|4|diagnostics|curves|convergence",
        help="Fig. 2 (qualitative), Fig. 3 (number of points), Fig. 4 (spacing), per-point diagnostics, "
             "training curves, or Theorem 1's convergence shape."),
    all_: bool = typer.Option(False, "--all", help="Every table and figure; with --out, also DIR/index.html."),
    images: int = typer.Option(5, "--images", min=1, help="Fig. 2: how many evaluation images (rows)."),
    grid: str = typer.Option(None, "--grid", help="Count only this grid's runs (default: every run)."),
    fmt: str = typer.Option("rich", "--format", metavar="rich|md|latex|csv|json", help="How to print."),
    out: Path = typer.Option(None, "--out", help="Write every table as .md/.tex/.csv/.json and every figure as .png/.pdf (+ .csv) into DIR."),
    convention: str = typer.Option(
        "dataset", "--convention", metavar="dataset|paper",
        help="Metrics from the dataset-level confusion matrix, or the paper's per-image average (eq. 13)."),
    db: str = db_option(),
    explain: str = typer.Option(
        None, "--explain", metavar="CELL",
        help="List the runs behind one cell and how their specs differ, e.g. 'DeepLabv3+/iMacSR/cityscapes'."),
    metric: str = typer.Option(mn.MIOU, "--metric", help="Metric of Table VI and of the findings checks."),
    paper_only: bool = typer.Option(
        False, "--paper", help="The paper's own Table IV as published (needs no database; --all adds it anyway)."),
) -> None:
    """Tables and figures of the paper from the results database, beside the published values.

    Each cell: mean ± std over seeds, its runs named by --format json or --explain CELL. Every
    comparison with the paper is a t-test (paired over shared seeds, else Welch's; Holm-corrected
    where a finding needs several): supported, contradicted or inconclusive. Metrics in %.
    """
    table = _choice(table, TABLES, "--table")
    figure = _choice(figure, FIGURES + EXTRA_FIGURES, "--figure")
    fmt = _choice(fmt, FORMATS, "--format") or "rich"
    convention = _choice(convention, CONVENTIONS, "--convention") or "dataset"
    metric = _choice(metric, METRICS, "--metric") or mn.MIOU
    if not (table or figure or all_ or paper_only):
        raise UsageProblem("say what to report: --table iv|vi, --figure 2|3|4|diagnostics|curves|convergence, --all "
                           "or --paper")
    if paper_only and (figure or all_ or table not in (None, "iv") or explain is not None):
        raise UsageProblem("--paper shows the paper's Table IV alone (Table VI and Figs. 3-4 are images in the "
                           "paper); use it alone or with --table iv")

    from imacsr_cli import report as rep

    if explain is not None:
        if figure in EXTRA_FIGURES:
            raise UsageProblem(f"--explain works with --table iv|vi or --figure 3|4, not --figure {figure}")
        if all_ or bool(table) == bool(figure):
            raise UsageProblem("--explain needs exactly one of --table or --figure")
        ex = rep.explain(table or figure, explain, db=db, grid=grid, convention=convention)
        _print_explanation(ex, fmt)
        return

    tables = ["iv", rep.PAPER_IV, "vi"] if all_ else [rep.PAPER_IV] if paper_only else [table] if table else []
    figures = list(FIGURES) if all_ else [figure] if figure in FIGURES else []
    if out is not None and out.exists() and not out.is_dir():
        raise UsageProblem(f"--out {out}: is a file, expected a directory (the report writes one file per "
                           f"table and figure into it)")
    if out is not None and not out.exists():
        existing = next((p for p in out.parents if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise UsageProblem(f"--out {out}: cannot write there: {existing} is a file")
    if out is None and fmt == "csv" and len(tables) + len(figures) > 1:
        # Tables of different shapes joined in one CSV stream are no CSV a program can read.
        raise UsageProblem(f"--format csv prints one table, and this report has {len(tables) + len(figures)}: "
                           f"give --out DIR (one .csv each) or one --table / --figure")
    from imacsr_cli.report import extra as ext

    extra = ext.build_extra(list(EXTRA_FIGURES) if all_ else [figure] if figure in EXTRA_FIGURES else [],
                            db=db, grid=grid, images=images)
    result = rep.build_report(tables, figures, db=db, grid=grid, convention=convention, metric=metric)
    empty = [f for f in figures if not any(fd.id == f for fd in result.figures)]
    where = f"grid {grid}" if grid else "the database"
    skipped = [f"Fig. {f}: no iMacSR run for it in {where}; nothing to draw" for f in empty]
    if out is not None:
        try:
            written = rep.write_report(result, out) + ext.write_extra(extra, out)
        except (NotADirectoryError, FileExistsError, PermissionError) as exc:
            raise UsageProblem(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
        for path in written:
            typer.echo(f"wrote {path}")
        if all_:
            typer.echo(f"wrote {ext.write_page(out, result, extra, db=db, grid=grid, skipped=skipped, convention=convention)}")
        for line in skipped + extra.skipped:
            typer.echo(line)
        return
    if fmt == "json" and extra.figures and (tables or figures):  # one JSON document for everything
        from imacsr_cli.report import figures as figs
        from imacsr_cli.report import renderers

        typer.echo(json.dumps({"tables": [renderers.to_dict(t) for t in result.tables],
                               "figures": [figs.to_dict(f) for f in result.figures]
                               + [ext.to_dict(f) for f in extra.figures],
                               "skipped": skipped + extra.skipped}, indent=2, ensure_ascii=False))
        return
    if tables or figures:
        _print_report(result, fmt, skipped)
    _print_extra(extra, fmt)
    if figure in EXTRA_FIGURES and not extra.figures:
        raise UsageProblem(extra.skipped[0] if extra.skipped else f"--figure {figure}: nothing to draw")


def _print_report(result: Any, fmt: str, skipped: list[str]) -> None:
    """One table or figure in JSON is its object; several are {"tables": [...], "figures": [...]}."""
    from imacsr_cli.report import figures as figs
    from imacsr_cli.report import renderers

    if fmt == "json":
        items = [renderers.to_dict(t) for t in result.tables] + [figs.to_dict(f) for f in result.figures]
        doc: Any = items[0] if len(items) == 1 and not skipped else {
            "tables": [renderers.to_dict(t) for t in result.tables],
            "figures": [figs.to_dict(f) for f in result.figures], "skipped": skipped}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if fmt == "rich":
        from rich.console import Console

        console = Console()
        for t in result.tables:
            console.print(renderers.rich_table(t))
        for f in result.figures:
            console.print(figs.rich_figure(f))
        if result.figures:
            console.print("[dim]The figures themselves: --out DIR writes them as PNG and PDF.[/dim]")
        for line in skipped:
            console.print(line)
        return
    texts = [renderers.render(t, fmt) for t in result.tables] + [figs.render(f, fmt) for f in result.figures]
    typer.echo("\n".join(texts), nl=False)
    for line in skipped:
        typer.echo(line, err=fmt in ("csv",))


def _print_extra(extra: Any, fmt: str) -> None:
    """The insight figures and Fig. 2 as text (their images need --out DIR)."""
    from imacsr_cli.report import extra as ext

    if fmt == "json" and extra.figures:
        docs = [ext.to_dict(fig) for fig in extra.figures]
        doc = docs[0] if len(docs) == 1 else {"figures": docs, "skipped": extra.skipped}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif fmt != "json":
        for fig in extra.figures:
            typer.echo("\n".join(ext.text_lines(fig)))
        if extra.gains is not None:
            from imacsr_cli.report import insight

            typer.echo(insight.code_gains_markdown(extra.gains), nl=False)
    for line in extra.skipped:
        typer.echo(line, err=True)


def _print_explanation(ex: Any, fmt: str) -> None:
    import math

    from imacsr_cli import units

    metric_cols = [c for c in ex.runs.columns if units.is_metric_key(str(c))]  # in percent (tables.explain)
    frame = ex.runs.rename(columns={c: units.pct_key(c) for c in metric_cols})
    if fmt == "json":
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in frame.to_dict("records")]
        typer.echo(json.dumps({"cell": ex.what, "differences": {k: [str(x) for x in v] for k, v in
                                                                 ex.differences.items()},
                               "runs": rows}, indent=2, default=str))
        return
    if fmt == "csv":
        typer.echo(frame.to_csv(index=False, float_format="%.6f"), nl=False)
        return
    from imacsr_cli.report.tables import fmt as fmt_number

    text = ex.runs.rename(columns={c: units.header(c) for c in metric_cols})
    for col in text.columns:  # metric values in percent, 2 decimals as in the tables
        if text[col].dtype.kind == "f":
            text[col] = text[col].map(fmt_number)
    text = text.astype(str)
    if fmt == "rich":
        from rich import box
        from rich.console import Console
        from rich.table import Table

        t = Table(title=ex.summary(), title_justify="left", box=box.SIMPLE_HEAD)
        for col in text.columns:
            t.add_column(str(col), overflow="fold", no_wrap=col in ("run_id", "state", "seed", "grids"),
                         justify="right" if text[col].str.match(r"^[-\d.–]+$").all() else "left")
        for row in text.itertuples(index=False):
            t.add_row(*[str(v) for v in row])
        Console().print(t)
        return
    from imacsr_cli.report.renderers import md_table

    lines = [ex.summary(), ""]
    if len(frame):
        lines += md_table(list(text.columns), text.values.tolist(), "l" * len(text.columns))
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
