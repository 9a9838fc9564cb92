"""Why it works or not: per-point diagnostics, training curves and Theorem 1's convergence shape.

Three figures, each built from the per-epoch rows the trainer logged (split ``train`` and ``val`` of
the metrics table; names in imacsr_cli/metric_names.py), one per (model, dataset) or per
configuration, mean ± std (sample, ddof=1) over the seeds of each configuration:

- ``diagnostics``: one panel per quantity (normalised channel entropy H/log C_m, mean feature norm
  ‖z_m‖, ‖γ‖ of the BatchNorm producing z_m, the MI and NE terms, ‖∇L_T‖²), a line per point, for one
  iMacSR configuration (specs/method.md §4: NE on raw channels can be met by shrinking γ).
- ``curves``: every loss term and the validation mIoU per epoch, iMacSR against conventional.
- ``convergence``: the running mean (1/T) Σ_t ‖∇L_T(θ_t)‖² against the step count T, beside c/√T, the
  shape of the paper's Theorem 1 (eq. 6). The trainer logs the per-epoch mean of ‖∇L_T‖² and the
  epoch's step count S_e, so after epoch E the running mean is Σ_e S_e·g_e / Σ_e S_e at T = Σ_e S_e.
  c is fitted by least squares on log values with the exponent held at −1/2 (log c = mean of
  log(√T · avg(T)), a geometric mean); the free exponent b of avg ∝ T^b is fitted too, per seed.
  The bound's shape holds (supported) if every seed's b ≤ −1/2, fails (contradicted) if every seed's
  b > −1/2, else inconclusive; fewer than 3 epochs: inconclusive.

Configurations: the runs a grid labels for Table IV when there are any (the iMacSR-vs-conventional
pair), else every run; runs whose identity specs differ only in the seed form one configuration.
Values stay in their units: losses unitless, entropy in [0, 1], norms in feature units, mIoU in %.
Nothing here imports torch or prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imacsr_cli import metric_names as names
from imacsr_cli.report import paper
from imacsr_cli.report.frames import (
    SEED_KEY,
    flatten,
    mean_std,
    open_store,
    runs_frame,
    select_for,
    spec_differences,
)

FIGURES = ("diagnostics", "curves", "convergence")
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
THEOREM_EXPONENT = -0.5
COLUMN_WIDTH_IN = 3.5


@dataclass(frozen=True)
class Panel:
    key: str  # the quantity: entropy, feature_norm, ... (the data frame's ``panel``)
    title: str
    ylabel: str
    log_y: bool = False
    log_x: bool = False


@dataclass
class InsightFigure:
    id: str  # diagnostics | curves | convergence
    name: str  # file stem
    model: str
    dataset: str
    title: str
    caption: str
    panels: list[Panel]
    # one row per (panel, series, line, x): mean, std, n over seeds, run_ids, seeds
    data: pd.DataFrame
    x_label: str = "epoch"
    fits: pd.DataFrame | None = None  # convergence: one row per series (c, exponent, verdict...)
    notes: list[str] = field(default_factory=list)
    run_ids: tuple[str, ...] = ()


DATA_COLUMNS = ["panel", "series", "line", "x", "mean", "std", "n", "run_ids", "seeds"]


# ---- reading ------------------------------------------------------------------------------------


@dataclass
class History:
    """What the insight figures read: the runs frame and their per-epoch rows (train and val)."""

    runs: pd.DataFrame  # report.frames runs frame (one row per run, with ``spec`` and ``cells``)
    epochs: pd.DataFrame  # run_id, epoch, split, name, value (train and val only)


def history(db: Any = None, grid: str | None = None, run_ids: Sequence[str] | None = None) -> History:
    """The runs (of ``grid``, or only ``run_ids``) and their per-epoch metric rows, in one store."""
    store = open_store(db)
    try:
        runs = runs_frame(store, grid)
        if run_ids is not None:
            runs = runs[runs["run_id"].isin(list(run_ids))].reset_index(drop=True)
        rows = store.metrics_frame(list(runs["run_id"]), grid=None) if len(runs) else None
    finally:
        if store is not db:
            store.close()
    if rows is None or rows.empty:
        rows = pd.DataFrame(columns=["run_id", "epoch", "split", "name", "value"])
    rows = rows[rows["split"].isin(["train", "val"])].reset_index(drop=True)
    return History(runs, rows)


@dataclass
class Series:
    """One configuration: runs equal in everything but the seed."""

    model: str
    dataset: str
    method: str
    label: str
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    spec: dict[str, Any]
    points: tuple[str, ...]


def _code_label(cells: dict[str, list[dict[str, Any]]]) -> str | None:
    """The `code` label a grid gave the run ("ours", "author", ...), if any."""
    for labels in cells.values():
        for label in labels:
            if isinstance(label, dict) and label.get("code"):
                return f"code {label['code']}"
    return None


def _defaults() -> dict[str, Any]:
    from imacsr_cli.spec.runspec import field_docs

    return {k: v for k, (v, _doc) in field_docs().items()}


_DEFAULTS = _defaults()  # a key left out of an identity spec (a legacy default) has its default value


def _signature(spec: dict[str, Any]) -> str:
    flat = {k: v for k, v in flatten(spec).items() if k != SEED_KEY}
    return json.dumps(flat, sort_keys=True, default=str)


def configurations(runs: pd.DataFrame) -> list[Series]:
    """The configurations to draw: Table IV's runs when a grid labels any, else all runs; grouped by
    identity spec without the seed, ordered by (model, dataset, conventional first)."""
    chosen, _ = select_for(runs, "table", "iv")
    if chosen.empty:
        chosen = runs
    groups: dict[tuple, list[int]] = {}
    for idx, r in chosen.iterrows():
        groups.setdefault((r["model"], r["dataset"], r["method"], _signature(r["spec"])), []).append(idx)
    out = []
    for (model, dataset, method, _sig), idx in groups.items():
        rows = chosen.loc[idx].sort_values(["seed", "run_id"])
        spec = rows["spec"].iloc[0]
        pts = tuple(spec.get("points", {}).get("names", []) or []) if method == "imacsr" else ()
        out.append(Series(model, dataset, method, paper.method_label(method), tuple(rows["run_id"]),
                          tuple(int(s) for s in rows["seed"]), spec, pts))
    # Two configurations of one method in one (model, dataset): say how they differ, by the grid's
    # `code` label when it has one (ablations/author_code.toml), else by the differing spec keys.
    codes = {rid: _code_label(cells) for rid, cells in zip(chosen["run_id"], chosen["cells"])}
    by_key: dict[tuple, list[Series]] = {}
    for s in out:
        by_key.setdefault((s.model, s.dataset, s.method), []).append(s)
    for same in by_key.values():
        if len(same) > 1:
            diffs = spec_differences([o.spec for o in same])
            for s in same:
                code = codes.get(s.run_ids[0])
                mine = flatten(s.spec)
                s.label += f" ({code})" if code else " (" + ", ".join(
                    f"{k}={mine.get(k, _DEFAULTS.get(k, '(unset)'))}" for k in diffs) + ")"
    out.sort(key=lambda s: (s.model, s.dataset, s.method != "conventional", s.label))
    return out


def _values(h: History, run_ids: Sequence[str], split: str, name: str) -> dict[str, dict[int, float]]:
    """{run_id: {epoch: value}} of one metric (NaN and missing rows left out)."""
    rows = h.epochs[(h.epochs["split"] == split) & (h.epochs["name"] == name) & h.epochs["run_id"].isin(run_ids)]
    out: dict[str, dict[int, float]] = {r: {} for r in run_ids}
    for run_id, epoch, value in zip(rows["run_id"], rows["epoch"], rows["value"]):
        if value is not None and not math.isnan(float(value)):
            out[run_id][int(epoch)] = float(value)
    return out


def _aggregate(per_run: dict[str, dict[float, float]], seeds: dict[str, int], panel: str, series: str,
               line: str, scale: float = 1.0) -> list[dict[str, Any]]:
    """Rows of mean ± std over the runs at each x (only the runs that have a value there)."""
    xs = sorted({x for vals in per_run.values() for x in vals})
    rows = []
    for x in xs:
        have = sorted((r for r in per_run if x in per_run[r]), key=lambda r: (seeds[r], r))
        mean, std, n = mean_std([per_run[r][x] * scale for r in have])
        rows.append({"panel": panel, "series": series, "line": line, "x": x, "mean": mean, "std": std, "n": n,
                     "run_ids": tuple(have), "seeds": tuple(seeds[r] for r in have)})
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=DATA_COLUMNS)


def _name(fig: str, groups: int, model: str, dataset: str, extra: str = "") -> str:
    return fig if groups == 1 else f"{fig}_{model}_{dataset}{extra}"


# ---- diagnostics --------------------------------------------------------------------------------

DIAG_PANELS = [
    Panel("entropy", "channel entropy H / log C_m", "H / log C_m"),
    Panel("feature_norm", "mean feature norm ‖z_m‖", "‖z_m‖ (feature units)", log_y=True),
    Panel("gamma_norm", "‖γ‖ of the BN producing z_m", "‖γ‖₂"),
    Panel("mi", "MI term L_MI^m", "cross-entropy (nats)"),
    Panel("ne", "NE term L_Reg^m", "Σ p log p (nats)"),
    Panel("grad_norm2", "total gradient ‖∇L_T‖²", "epoch mean", log_y=True),
]
_PER_POINT = {
    "entropy": names.diag_entropy, "feature_norm": names.diag_feature_norm, "gamma_norm": names.diag_gamma_norm,
    "mi": names.mi, "ne": names.ne,
}


def diagnostics(h: History) -> list[InsightFigure]:
    """One figure per iMacSR configuration: a panel per quantity, a line per point."""
    confs = [s for s in configurations(h.runs) if s.method == "imacsr"]
    out = []
    for i, s in enumerate(confs):
        seeds = dict(zip(s.run_ids, s.seeds))
        rows: list[dict[str, Any]] = []
        for key, metric_of in _PER_POINT.items():
            for p in s.points:
                rows += _aggregate(_values(h, s.run_ids, "train", metric_of(p)), seeds, key, s.label, p)
        rows += _aggregate(_values(h, s.run_ids, "train", names.DIAG_GRAD_NORM2), seeds, "grad_norm2", s.label,
                           "all parameters")
        data = _frame(rows)
        if data.empty:
            continue
        same = [c for c in confs if (c.model, c.dataset) == (s.model, s.dataset)]
        extra = f"_{same.index(s) + 1}" if len(same) > 1 else ""
        missing = [p.key for p in DIAG_PANELS if p.key not in set(data["panel"])]
        notes = [f"Runs: {', '.join(s.run_ids)} (seeds {', '.join(map(str, s.seeds))})."]
        if missing:
            notes.append(f"Not logged by these runs: {', '.join(missing)} (runs trained before the trainer logged "
                         f"diagnostics, or points without a BatchNorm for γ).")
        out.append(InsightFigure(
            id="diagnostics", name=_name("diagnostics", len(confs), s.model, s.dataset, extra),
            model=s.model, dataset=s.dataset, title=f"{paper.model_label(s.model)} on {s.dataset}: {s.label}",
            caption=(f"Per-point training diagnostics of {s.label}, {paper.model_label(s.model)} on "
                     f"{paper.dataset_label(s.dataset)}: epoch means, mean \u00b1 std over "
                     f"{len(s.seeds)} seed(s). NE on raw channels is met by raising H/log C_m towards 1, "
                     f"which shrinking the features (‖z_m‖, ‖γ‖) achieves without changing what the network "
                     f"computes (specs/method.md \u00a74)."),
            panels=[p for p in DIAG_PANELS if p.key in set(data["panel"])], data=data, notes=notes,
            run_ids=s.run_ids,
        ))
    return out


# ---- curves -------------------------------------------------------------------------------------

CURVE_PANELS = [
    Panel("loss", "total loss L_T", "nats"),
    Panel("ce", "output CE L_CE", "nats"),
    Panel("mi", "MI terms L_MI^m", "nats"),
    Panel("ne", "NE terms L_Reg^m", "nats"),
    Panel("val_mIoU", "validation mIoU", "mIoU (%, dataset-level)"),
]


def _by_model_dataset(confs: list[Series]) -> dict[tuple[str, str], list[Series]]:
    out: dict[tuple[str, str], list[Series]] = {}
    for s in confs:
        out.setdefault((s.model, s.dataset), []).append(s)
    return out


def curves(h: History) -> list[InsightFigure]:
    """One figure per (model, dataset): every loss term and val mIoU per epoch, each configuration."""
    groups = _by_model_dataset(configurations(h.runs))
    out = []
    for (model, dataset), confs in groups.items():
        rows: list[dict[str, Any]] = []
        for s in confs:
            seeds = dict(zip(s.run_ids, s.seeds))
            rows += _aggregate(_values(h, s.run_ids, "train", "loss"), seeds, "loss", s.label, "")
            rows += _aggregate(_values(h, s.run_ids, "train", "ce"), seeds, "ce", s.label, "")
            for p in s.points:
                rows += _aggregate(_values(h, s.run_ids, "train", _PER_POINT["mi"](p)), seeds, "mi", s.label, p)
                rows += _aggregate(_values(h, s.run_ids, "train", _PER_POINT["ne"](p)), seeds, "ne", s.label, p)
            rows += _aggregate(_values(h, s.run_ids, "val", "mIoU"), seeds, "val_mIoU", s.label, "", scale=100.0)
        data = _frame(rows)
        if data.empty:
            continue
        labels = " against ".join(s.label for s in confs)
        out.append(InsightFigure(
            id="curves", name=_name("curves", len(groups), model, dataset), model=model, dataset=dataset,
            title=f"{paper.model_label(model)} on {dataset}: training curves",
            caption=(f"Training curves, {paper.model_label(model)} on {paper.dataset_label(dataset)}: {labels}. "
                     f"Loss terms are epoch means (unweighted, as logged); validation mIoU in % "
                     f"(dataset-level confusion matrix); mean \u00b1 std over seeds."),
            panels=[p for p in CURVE_PANELS if p.key in set(data["panel"])], data=data,
            notes=[f"{s.label}: runs {', '.join(s.run_ids)}." for s in confs],
            run_ids=tuple(r for s in confs for r in s.run_ids),
        ))
    return out


# ---- convergence (Theorem 1) --------------------------------------------------------------------


def running_mean(grad: dict[int, float], steps: dict[int, float]) -> dict[float, float]:
    """{T: (1/T) Σ_t ‖∇L_T‖²} after each epoch with both values, from per-epoch means and step counts.
    An epoch missing either ends the series (its steps are unknown, so T after it would be wrong)."""
    out: dict[float, float] = {}
    t = 0.0
    total = 0.0
    for epoch in sorted(grad):
        if epoch not in steps or (out and epoch - 1 not in grad):
            break
        t += steps[epoch]
        total += steps[epoch] * grad[epoch]
        out[t] = total / t
    return out


def fit_c(ts: Sequence[float], avg: Sequence[float]) -> float:
    """c of c/√T by least squares on logs with the exponent fixed at −1/2: exp(mean log(√T · avg))."""
    logs = [math.log(a * math.sqrt(t)) for t, a in zip(ts, avg) if a > 0 and t > 0]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def fit_exponent(ts: Sequence[float], avg: Sequence[float]) -> float:
    """b of avg ≈ a·T^b by least squares on (log T, log avg); NaN with fewer than 2 points."""
    pts = [(math.log(t), math.log(a)) for t, a in zip(ts, avg) if a > 0 and t > 0]
    if len(pts) < 2:
        return math.nan
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx > 0 else math.nan


def shape_verdict(exponents: Sequence[float], points: int) -> str:
    """Theorem 1's shape, avg(T) ≤ c/√T, from each seed's fitted exponent (see the module doc)."""
    bs = [b for b in exponents if not math.isnan(b)]
    if points < 3 or not bs:
        return INCONCLUSIVE
    if all(b <= THEOREM_EXPONENT for b in bs):
        return SUPPORTED
    if all(b > THEOREM_EXPONENT for b in bs):
        return CONTRADICTED
    return INCONCLUSIVE


FIT_COLUMNS = ["series", "c", "exponent", "seed_exponents", "points", "verdict", "run_ids"]


def convergence(h: History) -> list[InsightFigure]:
    """One figure per (model, dataset): running mean of ‖∇L_T‖² against T, with each series' c/√T."""
    groups = _by_model_dataset(configurations(h.runs))
    out = []
    for (model, dataset), confs in groups.items():
        rows: list[dict[str, Any]] = []
        fits = []
        for s in confs:
            seeds = dict(zip(s.run_ids, s.seeds))
            grad = _values(h, s.run_ids, "train", names.DIAG_GRAD_NORM2)
            steps = _values(h, s.run_ids, "train", names.DIAG_STEPS)
            per_run = {r: running_mean(grad[r], steps[r]) for r in s.run_ids}
            per_run = {r: v for r, v in per_run.items() if v}
            if not per_run:
                continue
            agg = _aggregate(per_run, seeds, "running_mean", s.label, "(1/T) \u03a3 \u2016\u2207L_T\u2016\u00b2")
            ts = [r["x"] for r in agg]
            means = [r["mean"] for r in agg]
            c = fit_c(ts, means)
            rows += agg
            rows += [{"panel": "running_mean", "series": s.label, "line": "c/\u221aT", "x": t,
                      "mean": c / math.sqrt(t), "std": math.nan, "n": 0, "run_ids": (), "seeds": ()} for t in ts]
            exps = [fit_exponent(list(v), list(v.values())) for v in per_run.values()]
            fits.append({"series": s.label, "c": c, "exponent": fit_exponent(ts, means),
                         "seed_exponents": tuple(exps), "points": len(ts),
                         "verdict": shape_verdict(exps, len(ts)), "run_ids": tuple(per_run)})
        data = _frame(rows)
        if data.empty:
            continue
        fit_frame = pd.DataFrame(fits, columns=FIT_COLUMNS)
        notes = [f"{f['series']}: c = {f['c']:.4g}, fitted exponent b = {f['exponent']:.3f} (seeds: "
                 + ", ".join(f"{b:.3f}" for b in f["seed_exponents"]) + f"); shape of Theorem 1: {f['verdict']}."
                 for f in fits]
        notes.append("Theorem 1 assumes a step size \u03b7/\u221aT; these runs use the spec's schedule "
                     "(Table III: a constant Adam learning rate), so the reference is the bound's shape, not its "
                     "constants.")
        out.append(InsightFigure(
            id="convergence", name=_name("convergence", len(groups), model, dataset), model=model, dataset=dataset,
            title=f"{paper.model_label(model)} on {dataset}: Theorem 1",
            caption=(f"Running mean (1/T) \u03a3_t \u2016\u2207L_T(\u03b8_t)\u2016\u00b2 against the step count T "
                     f"(log-log), {paper.model_label(model)} on {paper.dataset_label(dataset)}, mean \u00b1 std "
                     f"over seeds; dashed: c/\u221aT, the shape of the paper's Theorem 1 (eq. 6), c fitted by least "
                     f"squares on logs with the exponent held at \u22121/2."),
            panels=[Panel("running_mean", "Theorem 1: O(1/\u221aT)", "(1/T) \u03a3 \u2016\u2207L_T\u2016\u00b2",
                          log_y=True, log_x=True)],
            data=data, x_label="T (optimizer steps)", fits=fit_frame, notes=notes,
            run_ids=tuple(r for s in confs for r in s.run_ids),
        ))
    return out


# ---- the author's-code ablation: iMacSR's gain under each code ----------------------------------


GAIN_COLUMNS = ["model", "dataset", "code", "conventional", "conventional_std", "conventional_n", "imacsr",
                "imacsr_std", "imacsr_n", "gain", "relative_gain", "run_ids"]


def code_gains(runs: pd.DataFrame, metric: str = "mIoU") -> pd.DataFrame:
    """For runs a grid labels with a ``code`` (ablations/author_code.toml): per (model, dataset, code),
    conventional and iMacSR final ``metric`` (%, mean ± std over seeds, n), the gain in points and the
    relative gain in % (as the paper computes its 9.19%). Empty when no run has a code label."""
    rows = []
    groups: dict[tuple[str, str, str], dict[str, list[tuple[float, str]]]] = {}
    for r in runs.itertuples():
        code = _code_label(r.cells)
        value = getattr(r, metric, math.nan) if metric in runs.columns else math.nan
        if code is None or r.state != "succeeded" or value is None or math.isnan(value):
            continue
        groups.setdefault((r.model, r.dataset, code.removeprefix("code ")), {}).setdefault(r.method, []).append(
            (float(value) * 100.0, r.run_id))
    for (model, dataset, code), by_method in groups.items():
        conv = mean_std([v for v, _ in by_method.get("conventional", [])])
        ours = mean_std([v for v, _ in by_method.get("imacsr", [])])
        gain = ours[0] - conv[0] if conv[2] and ours[2] else math.nan
        rows.append({"model": model, "dataset": dataset, "code": code, "conventional": conv[0],
                     "conventional_std": conv[1], "conventional_n": conv[2], "imacsr": ours[0],
                     "imacsr_std": ours[1], "imacsr_n": ours[2], "gain": gain,
                     "relative_gain": 100.0 * gain / conv[0] if conv[2] and conv[0] else math.nan,
                     "run_ids": tuple(r for m in by_method.values() for _, r in m)})
    order = {"ours": 0, "softmax": 1, "void": 2, "author": 3}
    rows.sort(key=lambda r: (r["model"], r["dataset"], order.get(r["code"], 9), r["code"]))
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def code_gains_markdown(frame: pd.DataFrame, metric: str = "mIoU") -> str:
    """The gains table as Markdown (the report writes it as author_code.md and shows it in index.html)."""
    def pm(mean: float, std: float, n: int) -> str:
        if not n:
            return "\u2013"
        return f"{mean:.2f}" + ("" if math.isnan(std) else f" \u00b1 {std:.2f}") + f" (n={n})"

    lines = [f"**The author's code: iMacSR's gain over conventional training under each code** ({metric}, %, "
             f"dataset-level; mean \u00b1 std over seeds). ours = CE on logits, K logits; softmax = CE of "
             f"softmax outputs (double softmax); void = an extra void logit; author = both.", "",
             "| Model | Dataset | code | Conventional | iMacSR | gain (points) | relative gain |",
             "| --- | --- | --- | --: | --: | --: | --: |"]
    for r in frame.to_dict("records"):
        gain = "\u2013" if math.isnan(r["gain"]) else f"{r['gain']:+.2f}"
        rel = "\u2013" if math.isnan(r["relative_gain"]) else f"{r['relative_gain']:+.2f}%"
        lines.append(f"| {paper.model_label(r['model'])} | {r['dataset']} | {r['code']} | "
                     f"{pm(r['conventional'], r['conventional_std'], r['conventional_n'])} | "
                     f"{pm(r['imacsr'], r['imacsr_std'], r['imacsr_n'])} | {gain} | {rel} |")
    return "\n".join(lines) + "\n"


BUILDERS = {"diagnostics": diagnostics, "curves": curves, "convergence": convergence}


def build(which: Sequence[str], db: Any = None, grid: str | None = None,
          run_ids: Sequence[str] | None = None) -> list[InsightFigure]:
    """The named insight figures from one read of the database."""
    h = history(db, grid, run_ids)
    return [fig for w in which for fig in BUILDERS[w](h)]


# ---- drawing and writing ------------------------------------------------------------------------


def draw(fig_data: InsightFigure) -> Any:
    """The matplotlib figure (Agg): one panel per quantity; colour = line (point), style = series,
    a band of ±std where there are two seeds or more."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    panels = fig_data.panels
    ncols = 1 if len(panels) == 1 else 2 if len(panels) <= 4 else 3
    nrows = math.ceil(len(panels) / ncols)
    width = COLUMN_WIDTH_IN * (1.0 if ncols == 1 else 2.0)
    fig = Figure(figsize=(width, 1.9 * nrows + 0.7), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    series = list(dict.fromkeys(fig_data.data["series"]))
    lines = [ln for ln in dict.fromkeys(fig_data.data["line"]) if ln and ln != "c/\u221aT"]
    styles = ["-", "--", ":", "-."]
    for ax, panel in zip(axes.flat, panels):
        d = fig_data.data[fig_data.data["panel"] == panel.key]
        for (s, ln), g in d.groupby(["series", "line"], sort=False):
            g = g.sort_values("x")
            if ln == "c/\u221aT":
                ax.plot(g["x"], g["mean"], ls=":", lw=1.1, color=f"C{series.index(s) % 10}", label=f"{s}: c/\u221aT")
                continue
            # a point's line keeps its colour across panels; a whole-model line takes its series' colour
            colour = f"C{lines.index(ln) % 10}" if ln in lines and len(lines) > 1 else f"C{series.index(s) % 10}"
            label = f"{s}: {ln}" if ln and len(series) > 1 else (ln or s)
            ax.plot(g["x"], g["mean"], styles[series.index(s) % len(styles)], color=colour, lw=1, marker="o", ms=2,
                    label=label)
            std = g["std"].fillna(0.0)
            if (g["n"] > 1).any():
                ax.fill_between(g["x"], g["mean"] - std, g["mean"] + std, color=colour, alpha=0.15, lw=0)
        ax.set_title(panel.title, fontsize=7, pad=2)
        ax.set_ylabel(panel.ylabel, fontsize=6)
        if panel.log_y and (d["mean"] > 0).all() and len(d):
            ax.set_yscale("log")
        if panel.log_x and (d["x"] > 0).all() and len(d):
            ax.set_xscale("log")
        ax.tick_params(which="both", labelsize=6, length=2, pad=1)
        if not panel.log_x:  # epochs are whole numbers
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, lw=0.3, color="0.9")
        if len(d):
            ax.legend(fontsize=5, frameon=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.supxlabel(fig_data.x_label, fontsize=7)
    fig.suptitle(fig_data.title, fontsize=7.5)
    return fig


def tidy(fig_data: InsightFigure) -> pd.DataFrame:
    f = fig_data.data.copy()
    f.insert(0, "figure", fig_data.id)
    f["run_ids"] = f["run_ids"].map(lambda v: " ".join(v))
    f["seeds"] = f["seeds"].map(lambda v: " ".join(map(str, v)))
    return f


def save(fig_data: InsightFigure, out_dir: str | Path) -> list[Path]:
    """<name>.png (300 dpi), <name>.pdf and <name>.csv (the data behind the plot; + <name>_fit.csv)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = draw(fig_data)
    paths = [out / f"{fig_data.name}.png", out / f"{fig_data.name}.pdf", out / f"{fig_data.name}.csv"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    paths[2].write_text(tidy(fig_data).to_csv(index=False, float_format="%.6g"), encoding="utf-8")
    if fig_data.fits is not None:
        fits = fig_data.fits.copy()
        fits["seed_exponents"] = fits["seed_exponents"].map(lambda v: " ".join(f"{b:.6g}" for b in v))
        fits["run_ids"] = fits["run_ids"].map(lambda v: " ".join(v))
        paths.append(out / f"{fig_data.name}_fit.csv")
        paths[-1].write_text(fits.to_csv(index=False, float_format="%.6g"), encoding="utf-8")
    return paths


def to_dict(fig_data: InsightFigure) -> dict[str, Any]:
    from imacsr_cli.report.renderers import jsonable

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{k: jsonable(v) for k, v in r.items()} for r in frame.to_dict("records")]

    return {"figure": fig_data.id, "name": fig_data.name, "model": fig_data.model, "dataset": fig_data.dataset,
            "title": fig_data.title, "caption": fig_data.caption, "x_label": fig_data.x_label,
            "panels": [p.__dict__ for p in fig_data.panels], "data": records(fig_data.data),
            "fits": records(fig_data.fits) if fig_data.fits is not None else [], "notes": fig_data.notes}


def describe(fig_data: InsightFigure) -> list[str]:
    """Lines for a terminal: the caption, the last epoch of each line, the fits and notes."""
    lines = [fig_data.caption]
    last = fig_data.data.groupby(["panel", "series", "line"], sort=False).tail(1)
    for r in last.itertuples():
        if r.line == "c/\u221aT":
            continue
        std = "" if r.std != r.std else f" \u00b1 {r.std:.4g}"
        lines.append(f"  {r.panel} {r.series}{(' ' + r.line) if r.line else ''}: {r.mean:.4g}{std} at "
                     f"{'T' if fig_data.id == 'convergence' else 'epoch'} {r.x:g} (n={r.n})")
    return lines + [f"  \u2022 {n}" for n in fig_data.notes]


__all__ = ["FIGURES", "History", "InsightFigure", "Panel", "Series", "build", "configurations", "convergence",
           "curves", "describe", "diagnostics", "draw", "fit_c", "fit_exponent", "history", "running_mean", "save",
           "shape_verdict", "to_dict"]
