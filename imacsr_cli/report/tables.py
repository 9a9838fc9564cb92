"""Table IV (iMacSR against conventional training) and Table VI (position of points).

``table_iv(runs, ...)`` and ``table_vi(runs, ...)`` turn a runs frame (frames.runs_frame) into a
``Table``: a tidy frame with one row per (cell, metric) in percent, a caption that names the metric
convention, and notes. ``render(table, fmt)`` writes it as Markdown, LaTeX, CSV or JSON text;
``rich_table(table)`` gives a rich renderable for the terminal. Nothing here prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from imacsr_cli.errors import ImacsrError, NotFound
from imacsr_cli.report import paper
from imacsr_cli.report.frames import (
    METRICS,
    aggregate,
    SEED_KEY,
    convention_caption,
    describe_differences,
    flatten,
    metric_column,
    select_for,
    spec_differences,
)

SERIES = {1: "I", 2: "II", 3: "III"}
POSITIONS = ("input", "central", "output")
POSITION_LABELS = {"input": "close to input", "central": "central", "output": "close to output"}
DASH = "\u2013"  # en dash: "no value"


@dataclass
class Placement:
    """How runs map to the cells of a table or figure."""

    what: str  # "Table IV", in messages
    key_names: tuple[str, ...]
    cells: list[tuple[Hashable, ...]]  # every cell shown, in order
    key: Callable[[pd.Series], tuple[Hashable, ...] | None]
    label: Callable[[tuple[Hashable, ...]], str]
    runs: pd.DataFrame  # the runs considered (after grid and label selection)
    others: pd.DataFrame | None = None  # runs in scope labelled for other studies (not counted)


@dataclass
class Table:
    id: str  # "iv" | "vi"
    title: str
    caption: str
    frame: pd.DataFrame  # one row per (cell, metric); values in percent
    convention: str
    scope: str
    notes: list[str] = field(default_factory=list)
    findings: pd.DataFrame | None = None  # Table VI: the paper's statements and our verdicts
    metric: str = "mIoU"  # the metric Table VI shows (Table IV shows all four)
    placement: Placement | None = field(default=None, repr=False)


# ---- number formatting (the paper's: percent, 2 decimals) ------------------------------------


def scope_note(scope: str) -> str:
    return "all grids" if scope == "any grid" else scope


def fmt(x: float) -> str:
    return DASH if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def fmt_signed(x: float, suffix: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if abs(x) < 0.005:  # never print "-0.00"
        x = 0.0
    return f"{x:+.2f}{suffix}"


def fmt_cell(row: pd.Series | dict) -> str:
    """'47.78 ± 0.31 (n=3)'; one seed: '47.78 ± – (n=1)'; no run: '– (2 queued)'."""
    if not row["n"]:
        return f"{DASH} ({row['missing']})"
    return f"{fmt(row['mean'])} \u00b1 {fmt(row['std'])} (n={row['n']})"


# ---- Table IV ---------------------------------------------------------------------------------


def _ordered(present: set[str], paper_order: Sequence[str]) -> list[str]:
    return [x for x in paper_order if x in present] + sorted(present - set(paper_order))


def table_iv_placement(runs: pd.DataFrame) -> tuple[Placement, bool]:
    runs = runs[runs["method"].isin(paper.METHODS)]
    chosen, by_label = select_for(runs, "table", "iv")
    others = runs.drop(chosen.index)
    if chosen.empty:  # nothing ran: show the paper's layout, every cell saying why it is empty
        models, datasets = list(paper.MODELS), list(paper.DATASETS)
    else:
        models = _ordered(set(chosen["model"]), paper.MODELS)
        datasets = _ordered(set(chosen["dataset"]), paper.DATASETS)
    cells = [(m, me, d) for m in models for me in paper.METHODS for d in datasets]
    placement = Placement(
        what="Table IV",
        key_names=("model", "method", "dataset"),
        cells=cells,
        key=lambda r: (r["model"], r["method"], r["dataset"]),
        label=lambda c: f"{paper.model_label(c[0])}/{paper.method_label(c[1])}/{c[2]}",
        runs=chosen,
        others=others,
    )
    return placement, by_label


def table_iv(runs: pd.DataFrame, convention: str = "dataset", scope: str = "any grid") -> Table:
    """Table IV: rows model x method, columns dataset x metric; ours beside the paper's values.

    ``runs`` is a runs frame (already restricted to a grid if one was asked for); ``scope`` says
    where the runs come from, for the "not in ..." reasons and the notes.
    """
    placement, by_label = table_iv_placement(runs)
    cols = [metric_column(m, convention) for m in METRICS]
    frame = aggregate(placement.runs, placement.cells, placement.key, placement.key_names, cols,
                      placement.label, placement.what, scope, others=placement.others)
    frame["metric"] = frame["metric"].map(dict(zip(cols, METRICS)))
    frame["paper"] = [
        _nan(paper.table_iv_value(r.model, r.method, r.dataset, r.metric)) for r in frame.itertuples()
    ]
    frame["diff"] = frame["mean"] - frame["paper"]
    # Relative gain of iMacSR over Conventional per (model, dataset, metric), on the iMacSR row.
    conv = frame[frame["method"] == "conventional"].set_index(["model", "dataset", "metric"])
    gains, paper_gains = [], []
    for r in frame.itertuples():
        if r.method != "imacsr":
            gains.append(math.nan)
            paper_gains.append(math.nan)
            continue
        base = conv.loc[(r.model, r.dataset, r.metric)]
        gains.append(_gain(r.mean, base["mean"]))
        paper_gains.append(_gain(r.paper, base["paper"]))
    frame["gain"] = gains
    frame["paper_gain"] = paper_gains

    notes = _iv_notes(frame, placement, by_label, convention, scope)
    caption = (
        f"Ours (mean \u00b1 std over seeds, n runs) beside the published values of the paper's Table IV. "
        f"Metrics in %, {convention_caption(convention)}"
        f"{', as in the paper' if convention == 'paper' else f' (the paper: {paper.PAPER_CONVENTION})'}. "
        f"\u0394 = ours \u2212 paper, in points; gain = "
        f"(iMacSR \u2212 Conventional) / Conventional, as the paper computes it."
    )
    return Table("iv", "Table IV: iMacSR against conventional training", caption, frame, convention,
                 scope, notes, placement=placement)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _gain(ours: float, base: float) -> float:
    if any(isinstance(v, float) and math.isnan(v) for v in (ours, base)) or base == 0:
        return math.nan
    return paper.relative_gain(ours, base)


def _iv_notes(frame: pd.DataFrame, placement: Placement, by_label: bool, convention: str, scope: str) -> list[str]:
    notes = [f"Runs: {scope_note(scope)}; " + (
        "those its grids label for Table IV (table = \"iv\")." if by_label
        else "no run is labelled for Table IV, so the runs no grid labels count by their specs."
    )]
    if convention == "dataset":
        notes.append(
            "The paper's values are its eq. (13) per-image averages; ours here are dataset-level, so \u0394 "
            "compares two conventions (--convention paper shows ours under eq. (13))."
        )
    unpublished = sorted({paper.dataset_label(d) for d in frame["dataset"] if d not in paper.DATASETS}
                         | {paper.model_label(m) for m in frame["model"] if m not in paper.MODELS})
    if unpublished:
        notes.append(f"{', '.join(unpublished)}: not in the paper, so no published value ({DASH}).")
    if (frame["n"] == 1).any():
        notes.append(f"std {DASH}: a single seed gives no spread.")
    for r in frame[frame["pending"] != ""].drop_duplicates("cell").itertuples():
        notes.append(f"{r.cell}: also {r.pending} (not in the mean).")
    # A gain means something only if the two rows differ in the method alone.
    runs = placement.runs
    done = runs[runs["state"] == "succeeded"]
    for (model, dataset), group in done.groupby(["model", "dataset"], sort=False):
        methods = {m: g for m, g in group.groupby("method")}
        if len(methods) == 2:
            a, b = methods["conventional"]["spec"].iloc[0], methods["imacsr"]["spec"].iloc[0]
            diffs = {k: v for k, v in spec_differences([a, b]).items()
                     if not k.startswith(("method.", "points."))}
            if diffs:
                notes.append(
                    f"{paper.model_label(model)}/{dataset}: the gain compares runs that also differ in "
                    f"{describe_differences(diffs)}."
                )
    return notes


def _iv_text_rows(table: Table, datasets: Sequence[str]) -> tuple[list[list[Any]], list[int]]:
    """Rows of (model, method, kind, value...) strings; and the indices after which a model ends."""
    f = table.frame.set_index(["model", "method", "dataset", "metric"])
    models = list(dict.fromkeys(table.frame["model"]))
    rows: list[list[Any]] = []
    ends: list[int] = []
    for model in models:
        for method in paper.METHODS:
            kinds = ["ours", "paper", "\u0394"] + (["gain", "paper gain"] if method == "imacsr" else [])
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
                            "gain": lambda: fmt_signed(c["gain"], "%"),
                            "paper gain": lambda: fmt_signed(c["paper_gain"], "%"),
                        }[kind]())
                rows.append(row)
        ends.append(len(rows) - 1)
    return rows, ends


def _datasets(table: Table) -> list[str]:
    return list(dict.fromkeys(table.frame["dataset"]))


# ---- Table VI ---------------------------------------------------------------------------------


def table_vi_placement(runs: pd.DataFrame) -> tuple[Placement, bool]:
    runs = runs[(runs["method"] == "imacsr") & runs["num_points"].isin(list(SERIES))]
    chosen, by_label = select_for(runs, "table", "vi")
    others = runs.drop(chosen.index)
    groups = sorted({(m, d) for m, d in zip(chosen["model"], chosen["dataset"])},
                    key=lambda g: (order_key(g[0], paper.MODELS), order_key(g[1], paper.DATASETS)))
    cells = [(m, d, n, p) for m, d in groups for n in SERIES for p in POSITIONS]
    placement = Placement(
        what="Table VI",
        key_names=("model", "dataset", "num_points", "position"),
        cells=cells,
        key=lambda r: (r["model"], r["dataset"], int(r["num_points"]), r["position"]),
        label=lambda c: f"{paper.model_label(c[0])}/{c[1]}/{SERIES[c[2]]}/{c[3]}",
        runs=chosen,
        others=others,
    )
    return placement, by_label


def order_key(x: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(x) if x in order else len(order), x)


def table_vi(runs: pd.DataFrame, convention: str = "dataset", scope: str = "any grid", metric: str = "mIoU") -> Table:
    """Table VI: series I-III (1-3 points) x position (input, central, output), one table per
    (model, dataset) that has such runs; the best cell of each series marked; the paper's findings
    (Section IV-C-2) with our verdict on each."""
    if metric not in METRICS:
        raise ImacsrError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    placement, by_label = table_vi_placement(runs)
    cols = [metric_column(m, convention) for m in METRICS]
    frame = aggregate(placement.runs, placement.cells, placement.key, placement.key_names, cols,
                      placement.label, placement.what, scope, others=placement.others)
    frame["metric"] = frame["metric"].map(dict(zip(cols, METRICS)))
    frame["series"] = frame["num_points"].map(SERIES)
    frame["best"] = False
    for _, idx in frame.groupby(["model", "dataset", "num_points", "metric"]).groups.items():
        means = frame.loc[idx, "mean"]
        if means.notna().any():
            frame.loc[means[means == means.max()].index, "best"] = True

    findings = check_table_vi(frame, metric)
    notes = [f"Runs: {scope_note(scope)}; " + (
        "those its grids label for Table VI (table = \"vi\")." if by_label
        else "no run is labelled for Table VI, so the iMacSR runs with 1-3 points that no grid labels count by "
        "their specs."
    )]
    if frame.empty and placement.others is not None and len(placement.others):
        notes.append("No run labelled for Table VI; the iMacSR runs with 1-3 points are labelled for "
                     "other tables or figures: nothing to show.")
    elif frame.empty:
        notes.append("No iMacSR run with 1, 2 or 3 points: nothing to show.")
    if (frame["n"] == 1).any():
        notes.append(f"std {DASH}: a single seed gives no spread.")
    notes.append(
        "The paper's Table VI is an image whose numbers its text does not give: its findings "
        "(Section IV-C-2) are stated with our verdict on each."
    )
    caption = (
        f"Position of the intermediate points: {metric} in % (mean \u00b1 std over seeds, n runs), "
        f"{convention_caption(convention)}. Series I, II, III place 1, 2, 3 points; the best position "
        f"of each series is in bold."
    )
    return Table("vi", "Table VI: the position of the intermediate points", caption, frame, convention,
                 scope, notes, findings=findings, metric=metric, placement=placement)


def _values(frame: pd.DataFrame, metric: str) -> dict[tuple, tuple[float, float, int]]:
    f = frame[(frame["metric"] == metric) & (frame["n"] > 0)]
    return {(r.model, r.dataset, r.num_points, r.position): (r.mean, r.std, r.n) for r in f.itertuples()}


def verdict(results: list[bool], complete: bool, close: bool) -> str:
    if not results:
        return "cannot tell"
    if not all(results):
        return "disagrees (within the seeds' spread)" if close else "disagrees"
    if not complete:
        return "agrees where measured"
    return "agrees (within the seeds' spread)" if close else "agrees"


def _close(a: tuple[float, float, int], b: tuple[float, float, int]) -> bool:
    """A difference smaller than either cell's std (or with a single seed) says little."""
    spread = [s for s in (a[1], b[1]) if not math.isnan(s)]
    return not spread or abs(a[0] - b[0]) <= max(spread) or min(a[2], b[2]) < 2


def check_table_vi(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's three Table VI findings, each with our verdict and the numbers behind it."""
    vals = _values(frame, metric)
    groups = list(dict.fromkeys((m, d) for m, d in zip(frame["model"], frame["dataset"])))
    rows = []
    for finding in paper.findings("table_vi"):
        results: list[bool] = []
        complete = bool(groups)
        close = False
        details: list[str] = []
        for m, d in groups:
            prefix = f"{paper.model_label(m)}/{d} " if len(groups) > 1 else ""
            if finding.id == "VI-I":
                for n, s in SERIES.items():
                    cell = {p: vals.get((m, d, n, p)) for p in POSITIONS}
                    if any(v is None for v in cell.values()):
                        complete = False
                        continue
                    ok = cell["input"][0] > cell["central"][0] and cell["input"][0] > cell["output"][0]
                    results.append(ok)
                    close |= _close(cell["input"], cell["central"]) or _close(cell["input"], cell["output"])
                    details.append(f"{prefix}{s}: input {fmt(cell['input'][0])}, central "
                                   f"{fmt(cell['central'][0])}, output {fmt(cell['output'][0])}")
            else:
                pos = "output" if finding.id == "VI-II" else "central"
                series = [(s, vals.get((m, d, n, pos))) for n, s in SERIES.items()]
                have = [(s, v) for s, v in series if v is not None]
                complete &= len(have) == len(series)
                for (_, a), (_, b) in zip(have, have[1:]):
                    results.append(b[0] < a[0] if pos == "output" else b[0] > a[0])
                    close |= _close(a, b)
                if have:
                    details.append(f"{prefix}{pos}: " + ", ".join(f"{s} {fmt(v[0])}" for s, v in have))
        rows.append({
            "finding": finding.id,
            "claim": finding.claim,
            "paper": finding.source.quote,
            "source": finding.source.cite(),
            "metric": metric,
            "verdict": verdict(results, complete, close),
            "ours": "; ".join(details) if details else "no cells to compare",
        })
    return pd.DataFrame(rows, columns=["finding", "claim", "paper", "source", "metric", "verdict", "ours"])


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

FORMATS = ("rich", "md", "latex", "csv", "json")


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
    if table.id == "iv":
        datasets = _datasets(table)
        header = ["Model", "Method", ""] + [f"{paper.dataset_label(d)} {m}" for d in datasets for m in METRICS]
        rows, _ = _iv_text_rows(table, datasets)
        out += md_table(header, rows, "lll" + "r" * (len(header) - 3))
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
    return [
        f"- {r.finding}: \u201c{r.paper}\u201d \u2014 ours ({r.metric}): **{r.verdict}**; {r.ours}."
        for r in findings.itertuples()
    ]


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
    lines = ["\\begin{table*}[t]" if table.id == "iv" else "\\begin{table}[t]", "\\centering",
             f"\\caption{{{latex_escape(table.caption)}}}", f"\\label{{tab:imacsr-{table.id}}}"]
    if table.id == "iv":
        datasets = _datasets(table)
        rows, ends = _iv_text_rows(table, datasets)
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
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table*}" if table.id == "iv" else "\\end{table}"]
    comments = list(table.notes)
    if table.findings is not None:
        comments += [f"{r.finding} ({r.metric}): {r.verdict}; {r.ours}" for r in table.findings.itertuples()]
    lines += [f"% {c}" for c in comments]
    return "\n".join(lines) + "\n"


def tidy(table: Table) -> pd.DataFrame:
    """The table's frame with run ids and seeds as space-separated text (for CSV)."""
    f = table.frame.copy()
    f["run_ids"] = f["run_ids"].map(" ".join)
    f["seeds"] = f["seeds"].map(lambda s: " ".join(str(x) for x in s))
    f.insert(0, "convention", table.convention)
    f.insert(0, "table", table.id)
    return f


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
    cells = [{k: jsonable(v) for k, v in row.items()} for row in table.frame.to_dict("records")]
    out: dict[str, Any] = {
        "table": table.id, "title": table.title, "caption": table.caption,
        "convention": table.convention, "convention_text": convention_caption(table.convention),
        "scope": table.scope, "notes": table.notes, "cells": cells,
    }
    if table.id == "iv":
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
    if table.id == "iv":
        for d in _datasets(table):
            rows, ends = _iv_text_rows(table, [d])
            # Fits 80 columns: the model as a heading row, one label column, n under each mean.
            t = RichTable(title=f"{paper.dataset_label(d)} (%)", title_justify="left", box=box.SIMPLE_HEAD)
            t.add_column("", no_wrap=True)
            for m in METRICS:
                t.add_column(m, justify="right")
            for i, row in enumerate(rows):
                model, method, kind, *cells = row
                if model:
                    t.add_row(Text(model, style="bold"))
                label = method if kind == "ours" else f"  {kind}"
                if kind == "ours":
                    shown = [Text(c.replace(" (n=", "\n(n=")) for c in cells]
                else:
                    shown = [Text(c, style="dim") for c in cells]
                t.add_row(Text(label, style="" if kind == "ours" else "dim"), *shown, end_section=i in ends)
            parts.append(t)
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
                parts.append(Text(f"{r.finding}: \u201c{r.paper}\u201d \u2014 ours: {r.verdict}; {r.ours}"))
    parts += [Text(f"\u2022 {n}", style="dim") for n in table.notes]
    return Group(*parts)


# ---- provenance -------------------------------------------------------------------------------


@dataclass
class Explanation:
    what: str  # "Table IV cell DeepLabv3+/iMacSR/cityscapes"
    runs: pd.DataFrame  # one row per run of the cell: run_id, state, seed, grids, metrics, differing keys
    differences: dict[str, list]  # dotted spec key -> distinct values among the cell's runs

    def summary(self) -> str:
        if self.runs.empty:
            return f"{self.what}: no run"
        diffs = {k: v for k, v in self.differences.items()}
        if not diffs:
            return f"{self.what}: {len(self.runs)} run(s) with identical specs"
        return f"{self.what}: {len(self.runs)} run(s) whose specs differ in {describe_differences(diffs)}"


def explain(placement: Placement, cell: str, metrics: Sequence[str]) -> Explanation:
    """The runs behind one cell (all states), with the spec keys in which they differ.

    ``cell`` is the cell's label as tables print it ("DeepLabv3+/iMacSR/cityscapes"), or the same
    with registry names ("deeplabv3plus/imacsr/cityscapes"); case does not matter. Mixed cells are
    explained, not refused: this is how one finds out what is mixed.
    """
    wanted = cell.strip().strip("/").lower()
    forms = {c: (placement.label(c).lower(), "/".join(str(x) for x in c).lower()) for c in placement.cells}
    exact = [c for c, f in forms.items() if wanted in f]
    # "II/central" is enough when only one (model, dataset) has such a cell
    ends = [c for c, f in forms.items() if any(x.endswith("/" + wanted) for x in f)]
    if exact or len(ends) == 1:
        match = (exact or ends)[0]
    else:
        shown = ", ".join(placement.label(c) for c in (ends or placement.cells)[:6])
        many = len(ends or placement.cells) > 6
        raise NotFound(
            f"{placement.what} has {'several cells' if ends else 'no cell'} {cell!r}; "
            f"{'which one: ' if ends else 'cells look like '}{shown}" + (" ..." if many else "")
        )
    runs = placement.runs
    members = runs[[placement.key(r) == match for _, r in runs.iterrows()]] if len(runs) else runs
    diffs = spec_differences(list(members["spec"]), ignore=()) if len(members) else {}
    shown = [k for k in diffs if k != SEED_KEY]  # the seed has its own column

    rows = []
    for r in members.sort_values(["state", "seed", "run_id"]).itertuples():
        flat = flatten(r.spec)
        row = {"run_id": r.run_id, "state": r.state + (f": {r.reason}" if isinstance(r.reason, str) and r.reason else ""), "seed": r.seed,
               "grids": " ".join(sorted(r.cells))}
        for m in metrics:  # in percent, like the tables
            row[m] = float(runs.at[r.Index, m]) * 100 if m in runs.columns else math.nan
        for k in shown:
            row[k] = flat.get(k, "(unset)")
        rows.append(row)
    return Explanation(f"{placement.what} cell {placement.label(match)}", pd.DataFrame(rows), diffs)
