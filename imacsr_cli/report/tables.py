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

import pandas as pd

from imacsr_cli.errors import ImacsrError, NotFound
from imacsr_cli.report import paper
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
        notes.append(f"std {DASH}: a single seed gives no spread.")
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
