"""Fig. 3 (metrics against the number of points) and Fig. 4 (against the spacing between points).

``figure_3(runs)`` / ``figure_4(runs)`` return one ``FigureData`` per (model, dataset) that has such
runs: the cell frame behind the plot (one row per x and metric, percent, with run ids), the
conventional baseline drawn as a reference line, the paper's finding and our verdict on it.
``draw(fd)`` makes the matplotlib figure (Agg backend: no display needed) and ``save(fd, dir)`` writes
PNG and PDF. Tests check the data and the axes, not pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from imacsr_cli.report import paper, stats
from imacsr_cli.report.frames import (
    METRICS,
    aggregate,
    code_notes,
    convention_caption,
    describe_differences,
    metric_column,
    select_for,
    spec_differences,
)
from imacsr_cli.report.renderers import csv_columns, jsonable, latex_escape, md_findings, md_table
from imacsr_cli.report.tables import (
    DASH,
    FINDING_COLUMNS,
    Placement,
    cell_compare,
    finding_row,
    fmt,
    fmt_cell,
    order_key,
    scope_note,
)

COLUMN_WIDTH_IN = 3.5  # one column of a two-column paper
SPECS = {
    # figure id -> (x column, x label, x values always shown, the paper's caption, short x name)
    "3": ("num_points", "number of intermediate points", (1, 2, 3, 4, 5),
          "The impact of the number of intermediate points on iMacSR's training performance.", "points"),
    "4": ("spacing", "distance between adjacent points (bases)", (1, 2, 3),
          "The impact of the distance between adjacent intermediate points on iMacSR's training performance.",
          "spacing"),
}


@dataclass
class FigureData:
    id: str  # "3" | "4"
    name: str  # file stem: "fig3", or "fig3_<model>_<dataset>" when there are several groups
    model: str
    dataset: str
    x: str  # the runs-frame column on the x axis: num_points | spacing
    x_label: str
    convention: str
    caption: str
    data: pd.DataFrame  # one row per (x, metric): mean, std, n (percent), run_ids, seeds, missing
    baseline: pd.DataFrame  # one row per metric: the conventional runs' mean, std, n, run_ids, missing
    findings: pd.DataFrame
    metric: str = "mIoU"  # the metric the finding is checked on
    notes: list[str] = field(default_factory=list)
    placement: Placement | None = field(default=None, repr=False)
    scope: str = "any grid"  # where the runs were looked for: "grid demo" | "any grid"

    def seeds(self) -> list[int]:
        """The seeds of the runs behind the points and the baseline."""
        return sorted({int(s) for f in (self.data, self.baseline) for ss in f["seeds"] for s in ss})

    def title(self) -> str:
        """'DeepLabv3+ on Synthetic · grid demo · seeds 0, 1, 2'."""
        seeds = self.seeds()
        return (f"Fig. {self.id}: {paper.model_label(self.model)} on {paper.dataset_label(self.dataset)} \u00b7 "
                f"{scope_note(self.scope)} \u00b7 " + (f"seeds {', '.join(map(str, seeds))}" if seeds else "no seeds"))


def figure_3(runs: pd.DataFrame, convention: str = "dataset", scope: str = "any grid", metric: str = "mIoU") -> list[FigureData]:
    """Fig. 3: iMacSR runs by points.count, one figure per (model, dataset)."""
    return _figures("3", runs, convention, scope, metric)


def figure_4(runs: pd.DataFrame, convention: str = "dataset", scope: str = "any grid", metric: str = "mIoU") -> list[FigureData]:
    """Fig. 4: iMacSR runs by points.spacing, one figure per (model, dataset)."""
    return _figures("4", runs, convention, scope, metric)


def figure_placement(fig: str, runs: pd.DataFrame) -> tuple[Placement, bool]:
    x, _, shown, _, _ = SPECS[fig]
    imacsr = runs[runs["method"] == "imacsr"]
    if fig == "4":  # one point has no spacing (resolve fixes it at 1): not a Fig. 4 run
        imacsr = imacsr[imacsr["num_points"] > 1]
    chosen, by_label = select_for(imacsr, "figure", fig)
    others = imacsr.drop(chosen.index)
    groups = sorted({(m, d) for m, d in zip(chosen["model"], chosen["dataset"])},
                    key=lambda g: (order_key(g[0], paper.MODELS), order_key(g[1], paper.DATASETS)))
    cells = []
    for m, d in groups:
        here = chosen[(chosen["model"] == m) & (chosen["dataset"] == d)]
        xs = sorted(set(shown) | {int(v) for v in here[x].dropna()})
        cells += [(m, d, v) for v in xs]
    placement = Placement(
        what=f"Fig. {fig}",
        key_names=("model", "dataset", x),
        cells=cells,
        key=lambda r: (r["model"], r["dataset"], int(r[x])) if not _isnan(r[x]) else None,
        label=lambda c: f"{paper.model_label(c[0])}/{c[1]}/{'points' if x == 'num_points' else 'spacing'}={c[2]}",
        runs=chosen,
        others=others,
    )
    return placement, by_label


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _figures(fig: str, runs: pd.DataFrame, convention: str, scope: str, metric: str) -> list[FigureData]:
    x, x_label, _, paper_caption, _ = SPECS[fig]
    placement, by_label = figure_placement(fig, runs)
    cols = [metric_column(m, convention) for m in METRICS]
    frame = aggregate(placement.runs, placement.cells, placement.key, placement.key_names, cols,
                      placement.label, placement.what, scope, others=placement.others)
    frame["metric"] = frame["metric"].map(dict(zip(cols, METRICS)))
    groups = list(dict.fromkeys(zip(frame["model"], frame["dataset"])))
    out = []
    for model, dataset in groups:
        data = frame[(frame["model"] == model) & (frame["dataset"] == dataset)].reset_index(drop=True)
        here = placement.runs[(placement.runs["model"] == model) & (placement.runs["dataset"] == dataset)]
        baseline, base_notes = _baseline(fig, runs, here, model, dataset, cols, scope)
        notes = [f"Runs: {scope_note(scope)}; " + (
            f"those its grids label for Fig. {fig} (figure = \"{fig}\")." if by_label
            else f"no run is labelled for Fig. {fig}, so the iMacSR runs no grid labels count by their specs."
        )] + base_notes
        first = data[data["metric"] == METRICS[0]]
        notes += [f"{x} = {r[x]}: {r['missing']}." for _, r in first[first["n"] == 0].iterrows()]
        notes += [f"{x} = {r[x]}: also {r['pending']} (not in the mean)."
                  for _, r in first[first["pending"] != ""].iterrows()]
        notes += code_notes(first)
        notes.append(f"The paper's Fig. {fig} is an image whose numbers its text does not give: its finding "
                     f"(Section IV-C) is stated with our verdict.")
        caption = (
            f"{paper.model_label(model)} on {paper.dataset_label(dataset)}: metrics in % against the {x_label} "
            f"(mean \u00b1 std over seeds), {convention_caption(convention)}; dashed: conventional training. "
            f"The paper's Fig. {fig}: \u201c{paper_caption}\u201d"
        )
        out.append(FigureData(
            id=fig, name=f"fig{fig}" if len(groups) == 1 else f"fig{fig}_{model}_{dataset}",
            model=model, dataset=dataset, x=x, x_label=x_label, convention=convention, caption=caption,
            data=data, baseline=baseline, findings=check_figure(fig, data, metric), metric=metric,
            notes=notes, placement=placement, scope=scope,
        ))
    return out


def _baseline(fig: str, runs: pd.DataFrame, imacsr: pd.DataFrame, model: str, dataset: str,
              cols: Sequence[str], scope: str) -> tuple[pd.DataFrame, list[str]]:
    """The conventional runs to draw as the reference line: those (labelled for the figure, if any
    are) whose spec equals the iMacSR runs' in everything but the method, the points and the seed."""
    conv = runs[(runs["method"] == "conventional") & (runs["model"] == model) & (runs["dataset"] == dataset)]
    labelled, by_label = select_for(conv, "figure", fig)
    conv = labelled if by_label else conv  # else any with the same settings will do, whatever its grid
    done = imacsr[imacsr["state"] == "succeeded"]
    ref = done["spec"].iloc[0] if len(done) else (imacsr["spec"].iloc[0] if len(imacsr) else None)
    notes: list[str] = []
    if ref is not None and len(conv):
        def differs(spec: dict) -> dict[str, list]:
            return {k: v for k, v in spec_differences([ref, spec]).items()
                    if not k.startswith(("method.", "points."))}
        fitting = conv[[not differs(s) for s in conv["spec"]]]
        if fitting.empty:
            notes.append(
                f"No reference line: the conventional runs differ from the iMacSR runs in "
                f"{describe_differences(differs(conv['spec'].iloc[0]))}."
            )
        conv = fitting
    frame = aggregate(conv, [(model, dataset)], lambda r: (r["model"], r["dataset"]), ("model", "dataset"),
                      cols, lambda c: f"{paper.model_label(c[0])}/Conventional/{c[1]}", f"Fig. {fig} baseline", scope)
    frame["metric"] = frame["metric"].map(dict(zip(cols, METRICS)))
    if frame["n"].eq(0).all() and not notes:
        notes.append(f"No reference line: conventional {paper.model_label(model)}/{dataset}: "
                     f"{frame['missing'].iloc[0]}.")
    return frame, notes


def check_figure(fig: str, data: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's finding for the figure, as a Holm-corrected family of t-tests (stats.py), on
    ``metric``.

    Fig. 3 ("a moderate number of points is best"): every inner count against each end of the
    tested range (1 and 5, or whatever the grid's smallest and largest are). Supported when some
    inner count beats both ends; contradicted when one end beats every inner count. Fig. 4 ("two
    bases is best"): spacing 2 against each other spacing; supported when it beats all of them,
    contradicted when any beats it.
    """
    x, _, shown, _, name = SPECS[fig]
    f = data[data["metric"] == metric]
    cells = {int(r[x]): r for _, r in f.iterrows()}
    xs = sorted(k for k, r in cells.items() if r["n"] > 0)  # the values measured (a run finished)
    absent = [k for k in sorted(set(shown) | set(cells)) if k not in xs]
    notes = [f"checked on the {name} measured ({', '.join(map(str, xs))}); not measured: "
             f"{', '.join(map(str, absent))}"] if absent and xs else []
    rows = []
    for finding in paper.findings(f"fig{fig}"):
        combine = None
        comps: list[stats.Comparison] = []
        if fig == "3":
            ends, inner = (xs[0], xs[-1]) if xs else (), xs[1:-1]
            comps = [cell_compare(cells.get(k), cells.get(e), f"{k} vs {e} points") for k in inner for e in ends]
            combine = partial(stats.combine_inside_best, n_inner=len(inner))
            rule = "some inner count beats both ends"
            if not inner:
                notes.append("needs at least three measured counts")
        else:
            if 2 in xs:
                comps = [cell_compare(cells.get(2), cells.get(o), f"spacing 2 vs {o}") for o in xs if o != 2]
            rule = "all"
            if not comps:
                notes.append("needs spacing 2 and another spacing measured")
        fam = stats.family(comps, combine=combine, rule=rule, notes=notes,
                           empty=stats.INCONCLUSIVE if xs else stats.NO_SPREAD)
        ours = ", ".join(f"{k}: {fmt(r['mean'])} (n={r['n']})" for k, r in sorted(cells.items()) if r["n"]) \
            or "no points to compare"
        rows.append(finding_row(finding, metric, fam, ours))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


# ---- drawing ----------------------------------------------------------------------------------


MIN_SPAN = 2.0  # points of percent: a y-axis never zooms a spread smaller than this to full height


def y_limits(fd: FigureData, metric: str) -> tuple[float, float]:
    """The y range of a panel: every mean +- std of the points and the baseline's band, padded by
    10%, and at least MIN_SPAN points tall (centred), so seed noise does not fill the height."""
    d = fd.data[(fd.data["metric"] == metric) & (fd.data["n"] > 0)]
    b = fd.baseline[(fd.baseline["metric"] == metric) & (fd.baseline["n"] > 0)]
    lo: list[float] = []
    hi: list[float] = []
    for f in (d, b):
        std = f["std"].fillna(0.0)
        lo += list(f["mean"] - std)
        hi += list(f["mean"] + std)
    if not lo:
        return 0.0, 100.0
    low, high = min(lo), max(hi)
    pad = 0.1 * (high - low)
    low, high = low - pad, high + pad
    if high - low < MIN_SPAN:
        mid = (low + high) / 2.0
        low, high = mid - MIN_SPAN / 2.0, mid + MIN_SPAN / 2.0
    return low, high


def verdict_lines(fd: FigureData, width: int = 84) -> list[str]:
    """The finding of the paper and our verdict, as printed under the figure."""
    import textwrap

    out = []
    for r in fd.findings.itertuples():
        text = (f"Paper (Section IV-C): {r.claim}. Ours ({r.metric}): {r.verdict}"
                f"{_verdict_tail(r.statistics)}" + "".join(f"; {n}" for n in r.notes) + ".")
        out += textwrap.wrap(text, width)
    return out


def _verdict_tail(statistics: str) -> str:
    """' (Holm-corrected over 6 comparisons, α = 0.05)' from a family's description."""
    head = statistics.split(";")[0]
    return head[head.index(" ("):] if " (" in head else ""


def draw(fd: FigureData) -> Any:
    """The figure: 2 x 2 panels (mIoU, mF1, mPrecision, mRecall) at paper column width; a title with
    model, dataset, grid and seeds; iMacSR with error bars (std over seeds) and n under each x; the
    conventional baseline as a dashed line drawn above the points (visible where it meets one) with
    its +-std band, both in the legend; x positions without a finished run marked with a grey x on
    the axis; y ranges from ``y_limits``; the verdict on the paper's finding under the panels."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    lines = verdict_lines(fd)
    legend_rows = 2 if len(fd.baseline) and (fd.baseline["n"] > 0).any() else 1
    top_in, bottom_in, panels_in = 0.2 + 0.12 * legend_rows, 0.08 + 0.1 * len(lines), 2.9
    fig = Figure(figsize=(COLUMN_WIDTH_IN, top_in + panels_in + bottom_in), dpi=100, layout="constrained")
    head, body, foot = fig.subfigures(3, 1, height_ratios=[top_in, panels_in, bottom_in])
    axes = body.subplots(2, 2, sharex=True)
    xs_all = sorted(set(int(v) for v in fd.data[fd.x]))
    first = fd.data[fd.data["metric"] == fd.metric].set_index(fd.x)
    ticks = [f"{x}\nn={int(first.loc[x, 'n'])}" if x in first.index else str(x) for x in xs_all]
    handles: dict[str, Any] = {}
    for ax, metric in zip(axes.flat, METRICS):
        d = fd.data[(fd.data["metric"] == metric)].sort_values(fd.x)
        have = d[d["n"] > 0]
        pts = ax.errorbar(have[fd.x], have["mean"], yerr=have["std"].fillna(0.0), fmt="o-", ms=3, lw=1,
                          capsize=2, color="C0", zorder=2)
        handles.setdefault("iMacSR: mean \u00b1 std over seeds", pts)
        gone = d[d["n"] == 0]
        if len(gone):
            mark, = ax.plot(gone[fd.x], [0.02] * len(gone), "x", color="0.5", ms=4, clip_on=False,
                            transform=ax.get_xaxis_transform())
            handles.setdefault("no finished run", mark)
        b = fd.baseline[fd.baseline["metric"] == metric]
        if len(b) and b["n"].iloc[0] > 0:
            mean, std, n = float(b["mean"].iloc[0]), float(b["std"].iloc[0]), int(b["n"].iloc[0])
            # above the points (zorder) so that it stays visible where it passes through one
            line = ax.axhline(mean, ls="--", lw=1.0, color="0.15", zorder=4)
            handles.setdefault(f"Conventional: mean (n={n})", line)
            if not math.isnan(std):
                ax.axhspan(mean - std, mean + std, color="0.85", lw=0, zorder=0)
                handles.setdefault(f"Conventional: \u00b1 std band (n={n})", Patch(color="0.85", lw=0))
        ax.set_ylim(*y_limits(fd, metric))
        ax.set_title(metric, fontsize=7, pad=2)
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_xticks(xs_all, ticks)
        ax.grid(True, lw=0.3, color="0.9")
    head.suptitle(fd.title(), fontsize=7, y=0.97, va="top")
    body.supxlabel(fd.x_label, fontsize=7)
    body.supylabel("% (dataset-level)" if fd.convention == "dataset" else "% (per-image, eq. 13)", fontsize=6.5)
    order = sorted(handles, key=lambda lab: ("iMacSR" not in lab, "Conventional" not in lab))
    # two per row: three entries do not fit one row at column width
    head.legend([handles[lab] for lab in order], order, loc="lower center", ncol=min(2, len(order)),
                fontsize=5.5, frameon=False, borderaxespad=0.1)
    foot.text(0.03, 0.92, "\n".join(lines), fontsize=5.5, va="top", ha="left", linespacing=1.3)
    return fig


def save(fd: FigureData, out_dir: str | Path) -> list[Path]:
    """Write <name>.png (300 dpi) and <name>.pdf, plus <name>.csv with the data behind the plot."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = draw(fd)
    paths = [out / f"{fd.name}.png", out / f"{fd.name}.pdf", out / f"{fd.name}.csv"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    paths[2].write_text(to_csv(fd))
    return paths


# ---- the data as text -------------------------------------------------------------------------


def tidy(fd: FigureData) -> pd.DataFrame:
    """Points and baseline in one frame (series = iMacSR | Conventional), run ids as text."""
    pts = fd.data.assign(series="iMacSR")
    base = fd.baseline.assign(series="Conventional")
    f = pd.concat([pts, base], ignore_index=True)
    f[fd.x] = f[fd.x].astype("Int64")  # the baseline rows have no x; keep the others integers
    return csv_columns(f, "figure", fd.id, fd.convention)


def to_csv(fd: FigureData) -> str:
    return tidy(fd).to_csv(index=False, float_format="%.6f")


def text_rows(fd: FigureData) -> tuple[list[str], list[list[str]]]:
    """The plot's numbers as a table: one row per x value and one for the baseline."""
    header = [SPECS[fd.id][4]] + list(METRICS)
    rows = []
    for v in sorted(set(int(x) for x in fd.data[fd.x])):
        d = fd.data[fd.data[fd.x] == v].set_index("metric")
        rows.append([str(v)] + [fmt_cell(d.loc[m]) for m in METRICS])
    b = fd.baseline.set_index("metric")
    rows.append(["Conventional"] + [fmt_cell(b.loc[m]) if m in b.index else DASH for m in METRICS])
    return header, rows


def to_dict(fd: FigureData) -> dict[str, Any]:
    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{k: jsonable(v) for k, v in r.items()} for r in frame.to_dict("records")]

    return {
        "figure": fd.id, "name": fd.name, "model": fd.model, "dataset": fd.dataset, "x": fd.x,
        "x_label": fd.x_label, "convention": fd.convention,
        "convention_text": convention_caption(fd.convention), "caption": fd.caption,
        "points": records(fd.data), "baseline": records(fd.baseline), "metric": fd.metric,
        "findings": fd.findings.to_dict("records"), "notes": fd.notes,
    }


def render(fd: FigureData, fmt: str) -> str:
    """The data behind the figure as text: 'md', 'latex', 'csv' or 'json'."""
    import json

    if fmt == "csv":
        return to_csv(fd)
    if fmt == "json":
        return json.dumps(to_dict(fd), indent=2, ensure_ascii=False) + "\n"
    header, rows = text_rows(fd)
    title = f"Fig. {fd.id} data"
    if fmt == "md":
        out = [f"**{title}.** {fd.caption}", ""]
        out += md_table(header, rows, "l" + "r" * len(METRICS))
        out += ["", f"Paper's finding (Section IV-C) against ours:", ""] + md_findings(fd.findings)
        out += [""] + [f"- {n}" for n in fd.notes]
        return "\n".join(out).rstrip() + "\n"
    if fmt == "latex":
        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(fd.caption)}}}",
                 f"\\label{{tab:imacsr-{fd.name}}}", "\\small", "\\begin{tabular}{l" + "r" * len(METRICS) + "}",
                 "\\toprule", " & ".join(latex_escape(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(latex_escape(c) for c in row) + " \\\\" for row in rows]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        lines += [f"% {r.finding} ({r.metric}): {r.verdict}; {r.ours}; {r.statistics}" for r in fd.findings.itertuples()]
        lines += [f"% {n}" for n in fd.notes]
        return "\n".join(lines) + "\n"
    from imacsr_cli.errors import ImacsrError

    raise ImacsrError(f"unknown format {fmt!r}; expected md, latex, csv or json")


def rich_figure(fd: FigureData) -> Any:
    """The data behind the figure for the terminal (the figure itself needs --out)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    header, rows = text_rows(fd)
    t = RichTable(title=f"Fig. {fd.id} data: {paper.model_label(fd.model)} on {paper.dataset_label(fd.dataset)} (%)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        t.add_row(*row)
    parts: list[Any] = [Text(fd.caption, style="dim"), t]
    for r in fd.findings.itertuples():
        parts += [Text(f"{r.finding}: \u201c{r.paper}\u201d \u2014 ours: {r.statistics.split('; ')[0]}; {r.ours}")]
        parts += [Text(f"  \u2022 {t}", style="dim") for t in r.tests]
    parts += [Text(f"\u2022 {n}", style="dim") for n in fd.notes]
    return Group(*parts)
