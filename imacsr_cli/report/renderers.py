"""Renderers of the tables: Markdown, LaTeX (booktabs), CSV, JSON, and a rich renderable for the terminal.

``render(table, fmt)`` writes a ``Table`` (tables.py builds them) as 'md', 'latex', 'csv' or 'json' text;
``rich_table(table)`` gives a rich renderable. ``md_table``, ``md_findings``, ``latex_escape``, ``jsonable``
and ``csv_columns`` serve the figures' text renderers (figures.py) too. Nothing here prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from imacsr_cli.errors import ImacsrError
from imacsr_cli.report import paper
from imacsr_cli.report.frames import METRICS, convention_caption
from imacsr_cli.report.tables import (
    DASH,
    PAPER_IV_ID,
    POSITION_LABELS,
    POSITIONS,
    SERIES,
    Table,
    fmt,
    fmt_cell,
    fmt_signed,
)

FORMATS = ("rich", "md", "latex", "csv", "json")
UNIT_TEXT = ("metrics in percent (_pct); differences in percentage points (_pts); relative gains in "
             "percent of the conventional value (_rel_pct)")


# ---- the tables as rows of text ---------------------------------------------------------------


def _iv_text_rows(table: Table, datasets: Sequence[str]) -> tuple[list[list[Any]], list[int]]:
    """Rows of (model, method, kind, value...) strings; and the indices after which a model ends."""
    f = table.frame.set_index(["model", "method", "dataset", "metric"])
    models = list(dict.fromkeys(table.frame["model"]))
    rows: list[list[Any]] = []
    ends: list[int] = []
    for model in models:
        for method in paper.METHODS:
            kinds = ["ours", "paper", "\u0394"] + (list(IV_IMACSR_ROWS) if method == "imacsr" else [])
            for i, kind in enumerate(kinds):
                row: list[Any] = [
                    paper.model_label(model) if method == "conventional" and i == 0 else "",
                    paper.method_label(method) if i == 0 else "",
                    kind,
                ]
                for d in datasets:
                    for m in METRICS:
                        c = f.loc[(model, method, d, m)]
                        row.append({
                            "ours": lambda: fmt_cell(c),
                            "paper": lambda: fmt(c["paper"]),
                            "\u0394": lambda: fmt_signed(c["diff"]),
                            "gain (pts, 95% CI)": lambda: gain_ci(c),
                            "paper gain (pts)": lambda: fmt_signed(c["paper_gain_pts"]),
                            "gain (rel.)": lambda: fmt_signed(c["gain"], "%"),
                            "paper gain (rel.)": lambda: fmt_signed(c["paper_gain"], "%"),
                            "verdict": lambda: c["verdict"],
                        }[kind]())
                rows.append(row)
        ends.append(len(rows) - 1)
    return rows, ends


IV_IMACSR_ROWS = ("gain (pts, 95% CI)", "paper gain (pts)", "gain (rel.)", "paper gain (rel.)", "verdict")
#: The same rows' labels in the terminal: as narrow as "Conventional", so that four value columns of 14
#: characters ("[-0.54, -0.06]", "contradicted") fit 80 columns; the caption gives the units.
RICH_LABELS = {"gain (pts, 95% CI)": "gain [CI]", "paper gain (pts)": "paper gain", "gain (rel.)": "rel. gain",
               "paper gain (rel.)": "paper rel.", "gain (pts)": "gain"}


def gain_ci(c: pd.Series | dict) -> str:
    """'+4.02 [+1.10, +6.94]'; without a spread just the difference of means ('+4.02')."""
    if c["test"]:
        return f"{fmt_signed(c['gain_pts'])} [{fmt_signed(c['gain_low'])}, {fmt_signed(c['gain_high'])}]"
    return fmt_signed(c["gain_pts"])


def _paper_text_rows(table: Table, datasets: Sequence[str]) -> tuple[list[list[str]], list[int]]:
    """The published Table IV as rows of text: each model's Conventional and iMacSR values, then the
    gains (in points and relative)."""
    f = table.frame.set_index(["model", "method", "dataset", "metric"])
    rows: list[list[str]] = []
    ends: list[int] = []
    for model in dict.fromkeys(table.frame["model"]):
        for i, (method, kind) in enumerate((("conventional", "paper"), ("imacsr", "paper"),
                                            ("imacsr", "gain (pts)"), ("imacsr", "gain (rel.)"))):
            row = [paper.model_label(model) if i == 0 else "", paper.method_label(method) if kind == "paper" else "",
                   kind]
            for d in datasets:
                for m in METRICS:
                    c = f.loc[(model, method, d, m)]
                    row.append(fmt(c["value"]) if kind == "paper" else
                               fmt_signed(c["gain_pts"]) if kind == "gain (pts)" else fmt_signed(c["gain"], "%"))
            rows.append(row)
        ends.append(len(rows) - 1)
    return rows, ends


def _text_rows(table: Table, datasets: Sequence[str]) -> tuple[list[list[Any]], list[int]]:
    return _paper_text_rows(table, datasets) if table.id == PAPER_IV_ID else _iv_text_rows(table, datasets)


def _datasets(table: Table) -> list[str]:
    return list(dict.fromkeys(table.frame["dataset"]))



def _vi_text_rows(table: Table, model: str, dataset: str, bold: Callable[[str], str]) -> list[list[str]]:
    f = table.frame
    f = f[(f["model"] == model) & (f["dataset"] == dataset) & (f["metric"] == table.metric)]
    f = f.set_index(["num_points", "position"])
    rows = []
    for n, s in SERIES.items():
        row = [f"{s} ({n} point{'s' if n > 1 else ''})"]
        for p in POSITIONS:
            c = f.loc[(n, p)]
            text = fmt_cell(c)
            row.append(bold(text) if c["best"] else text)
        rows.append(row)
    return rows


def _vi_groups(table: Table) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(table.frame["model"], table.frame["dataset"])))



# ---- renderers --------------------------------------------------------------------------------


def render(table: Table, fmt: str) -> str:
    """The table as text: 'md', 'latex', 'csv' or 'json' (rich: see rich_table)."""
    if fmt == "md":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "json":
        return to_json(table)
    raise ImacsrError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    sep = ["---" if a == "l" else "--:" for a in align]
    return [_md_row(header), "| " + " | ".join(sep) + " |", *(_md_row(r) for r in rows)]


def to_markdown(table: Table) -> str:
    out = [f"**{table.title}.** {table.caption}", ""]
    if table.id in ("iv", PAPER_IV_ID):
        datasets = _datasets(table)
        header = ["Model", "Method", ""] + [f"{paper.dataset_label(d)} {m}" for d in datasets for m in METRICS]
        rows, _ = _text_rows(table, datasets)
        out += md_table(header, rows, "lll" + "r" * (len(header) - 3))
        if table.findings is not None and len(table.findings):
            out += ["", "iMacSR against conventional training, cell by cell (each its own test):", ""]
            out += [f"- {r.statistics}." for r in table.findings.itertuples()]
    else:
        groups = _vi_groups(table)
        for model, dataset in groups:
            if len(groups) > 1:
                out += [f"*{paper.model_label(model)} on {paper.dataset_label(dataset)}*", ""]
            header = ["Series"] + [POSITION_LABELS[p] for p in POSITIONS]
            out += md_table(header, _vi_text_rows(table, model, dataset, lambda t: f"**{t}**"), "lrrr")
            out.append("")
        if table.findings is not None:
            out += ["Paper's findings (Section IV-C-2) against ours:", ""]
            out += md_findings(table.findings)
    out.append("")
    out += [f"- {n}" for n in table.notes]
    return "\n".join(out).rstrip() + "\n"


def md_findings(findings: pd.DataFrame) -> list[str]:
    out = []
    for r in findings.itertuples():
        head = r.statistics.split("; ")[0]
        out.append(f"- {r.finding}: \u201c{r.paper}\u201d \u2014 ours ({r.metric}): **{head}**; {r.ours}.")
        out += [f"  - {t}" for t in r.tests]
    return out


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"\u00b1": r"$\pm$", DASH: "--", "\u0394": r"$\Delta$", "\u2212": "$-$", "\u201c": "``",
                  "\u201d": "''", "\u2014": "---"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    for uni, tex in _LATEX_UNICODE.items():
        out = out.replace(uni, tex)
    return out


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes as LaTeX comments after it."""
    wide = table.id in ("iv", PAPER_IV_ID)
    lines = ["\\begin{table*}[t]" if wide else "\\begin{table}[t]", "\\centering",
             f"\\caption{{{latex_escape(table.caption)}}}", f"\\label{{tab:imacsr-{table.id}}}"]
    if wide:
        datasets = _datasets(table)
        rows, ends = _text_rows(table, datasets)
        lines += ["\\scriptsize", "\\setlength{\\tabcolsep}{3pt}",
                  "\\begin{tabular}{lll" + "rrrr" * len(datasets) + "}", "\\toprule"]
        lines.append(" & & & " + " & ".join(
            f"\\multicolumn{{4}}{{c}}{{{latex_escape(paper.dataset_label(d))} (\\%)}}" for d in datasets) + " \\\\")
        lines.append(" ".join(f"\\cmidrule(lr){{{4 + 4 * i}-{7 + 4 * i}}}" for i in range(len(datasets))))
        lines.append("Model & Method & & " + " & ".join(m for _ in datasets for m in METRICS) + " \\\\")
        lines.append("\\midrule")
        for i, row in enumerate(rows):
            lines.append(" & ".join(latex_escape(c) for c in row) + " \\\\")
            if i in ends and i != len(rows) - 1:
                lines.append("\\midrule")
    else:
        groups = _vi_groups(table)
        lines += ["\\small", "\\begin{tabular}{lrrr}", "\\toprule"]
        lines.append("Series & " + " & ".join(POSITION_LABELS[p] for p in POSITIONS) + " \\\\")
        for model, dataset in groups:
            lines.append("\\midrule")
            if len(groups) > 1:
                lines.append(f"\\multicolumn{{4}}{{l}}{{\\textit{{{latex_escape(paper.model_label(model))} on "
                             f"{latex_escape(paper.dataset_label(dataset))}}}}} \\\\")
            for row in _vi_text_rows(table, model, dataset, lambda t: "\x00" + t):
                lines.append(" & ".join(
                    f"\\textbf{{{latex_escape(c[1:])}}}" if c.startswith("\x00") else latex_escape(c) for c in row
                ) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table*}" if wide else "\\end{table}"]
    comments = list(table.notes)
    if table.findings is not None:
        comments += [f"{r.finding} ({r.metric}): {r.verdict}; {r.ours}; {r.statistics}"
                     for r in table.findings.itertuples()]
    lines += [f"% {c}" for c in comments]
    return "\n".join(lines) + "\n"


# Columns and JSON keys of exported tables and figures, named with their unit: levels in percent
# (``_pct``), differences of levels in percentage points (``_pts``), relative gains in percent of the
# conventional value (``_rel_pct``). Inside the frames (notebooks) they are mean, std ... in percent.
UNIT_KEYS = {"mean": "mean_pct", "std": "std_pct", "values": "values_pct", "paper": "paper_pct",
             "value": "value_pct", "diff": "diff_pts", "gain": "gain_rel_pct", "paper_gain": "paper_gain_rel_pct",
             "gain_pts": "gain_pts", "gain_low": "gain_low_pts", "gain_high": "gain_high_pts",
             "paper_gain_pts": "paper_gain_pts", "detectable": "detectable_pts"}


def csv_columns(f: pd.DataFrame, kind: str, id_: str, convention: str) -> pd.DataFrame:
    """``f`` as the CSV files of tables and figures have it: run ids, seeds and values as space-separated
    text, first a ``kind`` ("table" | "figure") column and ``convention``, columns named with their
    unit (UNIT_KEYS). Changes ``f``; returns the renamed frame."""
    for col in ("run_ids", "seeds", "values"):
        if col in f.columns:
            f[col] = f[col].map(lambda s: " ".join(x if isinstance(x, str) else f"{x:g}" for x in s))
    f.insert(0, "convention", convention)
    f.insert(0, kind, id_)
    return f.rename(columns=UNIT_KEYS)


def tidy(table: Table) -> pd.DataFrame:
    """The table's frame with run ids and seeds as space-separated text (for CSV)."""
    return csv_columns(table.frame.copy(), "table", table.id, table.convention)


def to_csv(table: Table) -> str:
    return tidy(table).to_csv(index=False, float_format="%.6f")


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value


def to_dict(table: Table) -> dict[str, Any]:
    cells = [{UNIT_KEYS.get(k, k): jsonable(v) for k, v in row.items()} for row in table.frame.to_dict("records")]
    out: dict[str, Any] = {
        "table": table.id, "title": table.title, "caption": table.caption,
        "convention": table.convention, "convention_text": convention_caption(table.convention),
        "scope": table.scope, "unit": UNIT_TEXT, "notes": table.notes, "cells": cells,
    }
    if table.id in ("iv", PAPER_IV_ID):
        out["paper_source"] = paper.TABLE_IV_SOURCE.cite()
    if table.findings is not None:
        out["metric"] = table.metric
        out["findings"] = table.findings.to_dict("records")
    return out


def to_json(table: Table) -> str:
    return json.dumps(to_dict(table), indent=2, ensure_ascii=False) + "\n"


def rich_table(table: Table) -> Any:
    """A rich renderable: Table IV as one rich table per dataset (fits a terminal), Table VI per
    (model, dataset), then the notes (and the findings)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    parts: list[Any] = [Text(table.title, style="bold"), Text(table.caption, style="dim")]
    if table.id in ("iv", PAPER_IV_ID):
        for d in _datasets(table):
            rows, ends = _text_rows(table, [d])
            # Fits 80 columns: the model as a heading row, one label column, n under each mean.
            t = RichTable(title=f"{paper.dataset_label(d)} (%)", title_justify="left", box=box.SIMPLE_HEAD,
                          show_edge=False, pad_edge=False)
            t.add_column("", no_wrap=True)
            for m in METRICS:
                # fold, never "…": a cut verdict or bound is a wrong figure
                t.add_column(m, justify="right", overflow="fold")
            for i, row in enumerate(rows):
                model, method, kind, *cells = row
                if model:
                    t.add_row(Text(model, style="bold"))
                main = kind == "ours" or (table.id == PAPER_IV_ID and kind == "paper")
                label = method if main else f"  {RICH_LABELS.get(kind, kind)}"
                if main:
                    shown = [Text(c.replace(" (n=", "\n(n=")) for c in cells]
                else:  # a gain's interval on a line of its own, like the n under each mean
                    shown = [Text(c.replace(" [", "\n["), style="dim") for c in cells]
                t.add_row(Text(label, style="" if main else "dim"), *shown, end_section=i in ends)
            parts += [Text(""), t]
        if table.findings is not None:
            parts += [Text("")] + [Text(r.statistics) for r in table.findings.itertuples()]
    else:
        for model, dataset in _vi_groups(table):
            t = RichTable(title=f"{paper.model_label(model)} on {paper.dataset_label(dataset)}: {table.metric} (%)",
                          title_justify="left", box=box.SIMPLE_HEAD)
            t.add_column("Series", no_wrap=True)
            for p in POSITIONS:
                t.add_column(POSITION_LABELS[p], justify="right")
            for row in _vi_text_rows(table, model, dataset, lambda s: "\x00" + s):
                cells = [c.replace(" (n=", "\n(n=") for c in row]
                t.add_row(*[Text(c[1:], style="bold green") if c.startswith("\x00") else Text(c) for c in cells])
            parts.append(t)
        if table.findings is not None:
            for r in table.findings.itertuples():
                parts.append(Text(f"{r.finding}: \u201c{r.paper}\u201d \u2014 ours: {r.statistics.split('; ')[0]}; "
                                  f"{r.ours}"))
                parts += [Text(f"  \u2022 {t}", style="dim") for t in r.tests]
    parts += [Text(f"\u2022 {n}", style="dim") for n in table.notes]
    return Group(*parts)
