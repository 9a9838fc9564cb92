"""Table IV (iMacSR against conventional training) and Table VI (position of points).

``table_iv(runs, ...)`` and ``table_vi(runs, ...)`` turn a runs frame (frames.runs_frame) into a
``Table``: a tidy frame with one row per (cell, metric) in percent, a caption that names the metric
convention, and notes. renderers.py writes a Table as Markdown, LaTeX, CSV or JSON text
(``render(table, fmt)``) or as a rich renderable for the terminal (``rich_table(table)``). Nothing
here prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from imacsr_cli.errors import ImacsrError, NotFound
from imacsr_cli.units import fmt_pct
from imacsr_cli.report import paper, stats
from imacsr_cli.report.frames import (
    METRICS,
    aggregate,
    SEED_KEY,
    code_notes,
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
    """A value in percent as every display shows it (imacsr_cli/units.py), an en dash when missing."""
    return fmt_pct(x, DASH)


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
    mixed = ", mixed code" if len(row.get("code_versions") or ()) > 1 else ""  # see the note
    return f"{fmt(row['mean'])} \u00b1 {fmt(row['std'])} (n={row['n']}{mixed})"


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
    findings = _iv_comparisons(frame)


    notes = _iv_notes(frame, placement, by_label, convention, scope)
    caption = (
        f"Ours (mean \u00b1 std over seeds, n runs) beside the published values of the paper's Table IV. "
        f"Metrics in %, {convention_caption(convention)}"
        f"{', as in the paper' if convention == 'paper' else f' (the paper: {paper.PAPER_CONVENTION})'}. "
        f"\u0394 = ours \u2212 paper, in points. Gain in points: iMacSR \u2212 Conventional with its 95% "
        f"confidence interval (paired t-test over shared seeds, else Welch's); relative gain = "
        f"(iMacSR \u2212 Conventional) / Conventional, as the paper computes it. Verdict on the paper's "
        f"direction at \u03b1 = {stats.ALPHA:g}: supported, contradicted or inconclusive."
    )
    return Table("iv", "Table IV: iMacSR against conventional training", caption, frame, convention,
                 scope, notes, findings=findings, placement=placement)


_COUNTS = ("n_conventional", "seeds_needed")
IV_STAT_COLUMNS = ("gain_pts", "gain_low", "gain_high", "p", "test", "n_conventional", "paper_gain_pts",
                   "verdict", "detectable", "seeds_needed", "statistics")


def _iv_comparisons(frame: pd.DataFrame) -> pd.DataFrame:
    """Each (model, dataset, metric): iMacSR against conventional by stats.compare, the claim being
    the sign of the paper's own difference (iMacSR better where the paper has no number). Adds the
    statistics to the iMacSR rows of ``frame`` (in place) and returns them as findings rows."""
    conv = {(r["model"], r["dataset"], r["metric"]): r for _, r in frame[frame["method"] == "conventional"].iterrows()}
    stat: dict[str, list[Any]] = {c: [] for c in IV_STAT_COLUMNS}
    rows = []
    for _, r in frame.iterrows():
        if r["method"] != "imacsr":
            for c in IV_STAT_COLUMNS:
                stat[c].append("" if c in ("test", "verdict", "statistics") else None if c in _COUNTS else math.nan)
            continue
        base = conv.get((r["model"], r["dataset"], r["metric"]))
        paper_diff = r["paper"] - base["paper"] if base is not None else math.nan
        target = None if math.isnan(paper_diff) else float(paper_diff)
        claim = -1 if target is not None and target < 0 else 1
        label = f"{paper.model_label(r['model'])}/{r['dataset']} {r['metric']}: iMacSR vs Conventional"
        c = cell_compare(r, base, label, claim=claim, target=target)
        need = c.seeds_needed() if c.test else None
        for col, value in zip(IV_STAT_COLUMNS, (
                c.diff, c.low, c.high, c.p, c.test, c.n_b, paper_diff, c.verdict,
                c.detectable(), need, c.describe())):
            stat[col].append(value)
        says = ("iMacSR beats conventional training" if claim > 0
                else "conventional training beats iMacSR (the paper's own numbers)")
        rows.append({
            "finding": f"IV {paper.model_label(r['model'])}/{r['dataset']}", "claim": says,
            "paper": (f"{stats.signed(target)} points" if target is not None else "no published value"),
            "source": paper.TABLE_IV_SOURCE.cite(), "metric": r["metric"], "verdict": c.verdict,
            "ours": f"{fmt(r['mean'])} (n={r['n']}) vs {fmt(base['mean'])} (n={base['n']})" if base is not None else DASH,
            "statistics": c.describe(), "tests": [c.describe()], "notes": [],
        })
    for col, values in stat.items():  # counts stay integers (None where there is none), not floats
        frame[col] = pd.Series(values, index=frame.index, dtype=object if col in _COUNTS else None)
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


PAPER_IV_ID = "iv-paper"


def paper_table_iv() -> Table:
    """The paper's whole Table IV as published (percent, its eq. (13)), with the gains in points and
    relative, as a Table the renderers write like ours. Needs no database."""
    rows = []
    for (model, method, dataset, metric), value in paper.TABLE_IV.items():
        base = paper.TABLE_IV[(model, "conventional", dataset, metric)]
        gain = method == "imacsr"
        rows.append({"model": model, "method": method, "dataset": dataset, "metric": metric, "value": value,
                     "gain_pts": value - base if gain else math.nan,
                     "gain": paper.relative_gain(value, base) if gain else math.nan})
    frame = pd.DataFrame(rows)
    caption = (
        f"The paper's Table IV as published: {paper.PAPER_CONVENTION}, in %. Gain in points: iMacSR "
        f"\u2212 Conventional; relative gain = (iMacSR \u2212 Conventional) / Conventional, as the paper "
        f"computes it. The paper gives one number per cell, without a spread or a number of seeds."
    )
    notes = [f"Source: {paper.TABLE_IV_SOURCE.cite()}.",
             "`imacsr report --table iv` puts our runs beside these numbers, each cell with its test."]
    return Table(PAPER_IV_ID, "Table IV as published in the paper", caption, frame, "paper", "the paper", notes)


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
    if frame["paper"].isna().all():
        notes.append("None of these cells has a published counterpart: the paper's own Table IV is "
                     "`imacsr report --paper` (written as table_iv_paper.* by `imacsr report --all --out DIR`).")
    if (frame["n"] == 1).any():
        notes.append(f"std {DASH}: a single seed gives no spread, so its comparisons say "
                     f"\u201c{stats.NO_SPREAD}\u201d.")
    for r in frame[frame["pending"] != ""].drop_duplicates("cell").itertuples():
        notes.append(f"{r.cell}: also {r.pending} (not in the mean).")
    notes += code_notes(frame)
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
        notes.append(f"std {DASH}: a single seed gives no spread, so its comparisons say "
                     f"\u201c{stats.NO_SPREAD}\u201d.")
    notes += code_notes(frame)
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


def arm(row: Any) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The values (percent) and seeds of a cell-frame row; none for a row that is not there."""
    if row is None:
        return (), ()
    values = row["values"] if "values" in row else ()
    return tuple(values) if isinstance(values, tuple | list) else (), tuple(row["seeds"]) if "seeds" in row else ()


def cell_compare(a: Any, b: Any, label: str, claim: int = 1, target: float | None = None) -> stats.Comparison:
    """Cell a against cell b (cell-frame rows or None) by the statistics of stats.compare."""
    (va, sa), (vb, sb) = arm(a), arm(b)
    return stats.compare(va, vb, sa, sb, claim=claim, label=label, target=target)


FINDING_COLUMNS = ["finding", "claim", "paper", "source", "metric", "verdict", "ours", "statistics", "tests", "notes"]


def finding_row(finding: paper.Finding, metric: str, fam: stats.Family, ours: str) -> dict[str, Any]:
    return {"finding": finding.id, "claim": finding.claim, "paper": finding.source.quote,
            "source": finding.source.cite(), "metric": metric, "verdict": fam.verdict, "ours": ours,
            "statistics": fam.describe(), "tests": fam.lines()[1:], "notes": list(fam.notes)}


def check_table_vi(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paper's three Table VI findings, each a Holm-corrected family of t-tests (stats.py) with
    the verdict and the numbers behind it.

    VI-I: input against central and against output, in every series (two comparisons per series);
    VI-II: output of series I against II, II against III (the claim: each worse); VI-III: central,
    each series against the previous (the claim: each better). With several (model, dataset) groups,
    one family spans them all (the paper states its patterns for every model).
    """
    f = frame[frame["metric"] == metric]
    cells = {(r["model"], r["dataset"], int(r["num_points"]), r["position"]): r for _, r in f.iterrows()}
    groups = list(dict.fromkeys((m, d) for m, d in zip(f["model"], f["dataset"])))
    rows = []
    for finding in paper.findings("table_vi"):
        comps: list[stats.Comparison] = []
        details: list[str] = []
        for m, d in groups:
            prefix = f"{paper.model_label(m)}/{d} " if len(groups) > 1 else ""
            get = lambda n, p: cells.get((m, d, n, p))  # noqa: E731
            if finding.id == "VI-I":
                for n, s in SERIES.items():
                    for other in ("central", "output"):
                        comps.append(cell_compare(get(n, "input"), get(n, other), f"{prefix}{s} input vs {other}"))
                    details.append(f"{prefix}{s}: " + ", ".join(f"{p} {_mean(get(n, p))}" for p in POSITIONS))
            else:
                pos = "output" if finding.id == "VI-II" else "central"
                ns = list(SERIES)
                for n0, n1 in zip(ns, ns[1:]):
                    a, b = (n0, n1) if pos == "output" else (n1, n0)  # the claim: a beats b
                    comps.append(cell_compare(get(a, pos), get(b, pos), f"{prefix}{pos} {SERIES[a]} vs {SERIES[b]}"))
                details.append(f"{prefix}{pos}: " + ", ".join(f"{s} {_mean(get(n, pos))}" for n, s in SERIES.items()))
        fam = stats.family(comps)
        rows.append(finding_row(finding, metric, fam, "; ".join(details) if details else "no cells to compare"))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def _mean(row: Any) -> str:
    if row is None or not row["n"]:
        return DASH
    return f"{fmt(row['mean'])} (n={row['n']})"


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
