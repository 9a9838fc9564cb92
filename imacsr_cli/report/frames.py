"""Results database -> tidy pandas frames, and the aggregation of runs into table cells.

Two frames carry everything the tables and figures show:

- the *runs frame* (``runs_frame``): one row per run, with its place (model, dataset, method, points
  count / position / spacing, seed), its state, its identity spec (a dict), the labels its grids gave
  it, and one column per final metric (fractions in [0, 1], NaN when not recorded);
- the *cell frame* (``aggregate``): one row per (cell, metric) with mean, sample std (ddof=1) and n
  over seeds, in percent (x100, as the paper prints), the run ids, seeds and values behind the numbers, and,
  where there is no number, the reason (queued, running, failed, not in any grid), never a zero.

A cell aggregates over seeds only: runs whose identity specs differ in anything else are refused
(MixedCellError), because a mean over different experiments is not a result.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import pandas as pd

from imacsr_cli import metric_names as mn
from imacsr_cli.errors import ImacsrError

METRICS = mn.MAIN
CONVENTIONS = {
    # name -> (prefix of the final metric rows, caption text)
    mn.DATASET: (mn.CONVENTION_PREFIX[mn.DATASET], "dataset-level confusion matrix"),
    mn.PAPER: (mn.CONVENTION_PREFIX[mn.PAPER], "per-image average, eq. (13)"),
}
SEED_KEY = "train.seed"

# Columns of the runs frame that the aggregation relies on (the rest are metric columns).
RUN_COLUMNS = (
    "run_id", "model", "variant", "dataset", "method", "num_points", "position", "spacing", "seed",
    "state", "reason", "message", "spec", "cells", "code",
)


class MixedCellError(ImacsrError):
    """A table cell would average runs whose specs differ in more than the seed."""

    exit_code = 2


def metric_column(metric: str, convention: str = "dataset") -> str:
    """Name of the final metric row for a metric under a convention: mIoU or paper/mIoU."""
    if convention not in CONVENTIONS:
        raise ImacsrError(f"unknown metric convention {convention!r}; expected dataset or paper")
    return CONVENTIONS[convention][0] + metric


def convention_caption(convention: str) -> str:
    return CONVENTIONS[convention][1]


# ---- specs ------------------------------------------------------------------------------------


def identity_spec(spec_json: str | dict[str, Any]) -> dict[str, Any]:
    """The identity part of a stored spec (what the run_id hashes), as a nested dict.

    Fields that change how a run executes but not what it computes (data root, workers...) are left
    out, so two runs never count as "different" for them.
    """
    from imacsr_cli.errors import SpecError
    from imacsr_cli.spec.runspec import identity_dict

    raw = json.loads(spec_json) if isinstance(spec_json, str) else dict(spec_json)
    try:
        return identity_dict(raw, source="stored spec")  # RunSpec.from_dict(...).to_dict(identity_only=True)
    except SpecError:
        return raw  # a spec of another schema version: compare it as stored


def _identity_by_seedless(spec_json: str | dict[str, Any], memo: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``identity_spec`` of a stored spec, computed once per spec *without its seed*: the runs of a
    grid differ mostly by seed, and a report over 20,000 runs converted each in full. The seed is an
    identity key without normalisation, so it is put back as stored. Sections are shared between
    the runs that share them (the reports only read them)."""
    raw = json.loads(spec_json) if isinstance(spec_json, str) else dict(spec_json)
    train = raw.get("train")
    if not isinstance(train, dict) or "seed" not in train:
        return identity_spec(raw)
    seed = train["seed"]
    seedless = {**raw, "train": {k: v for k, v in train.items() if k != "seed"}}
    key = json.dumps(seedless, sort_keys=True)
    if key not in memo:
        memo[key] = identity_spec({**seedless, "train": {**seedless["train"], "seed": 0}})
    hit = memo[key]
    if not isinstance(hit.get("train"), dict) or "seed" not in hit["train"]:
        return identity_spec(raw)  # a spec of another schema version: as stored
    return {**hit, "train": {**hit["train"], "seed": seed}}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become tuples so values are hashable."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


_UNSET = object()

# points.names follows from count/position/spacing: when those differ, naming names too is noise.
_DERIVED = {"points.names": ("points.count", "points.position", "points.spacing")}


def spec_differences(specs: Sequence[dict[str, Any]], ignore: Iterable[str] = (SEED_KEY,)) -> dict[str, list]:
    """Dotted keys whose values differ among the specs -> their distinct values (sorted)."""
    if specs:  # a cell's runs share most sections: flatten only those that differ somewhere
        first = specs[0]
        varying = {k for s in specs for k in {*s, *first} if s.get(k, _UNSET) != first.get(k, _UNSET)}
        specs = [{k: v for k, v in s.items() if k in varying} for s in specs]
    flat = [flatten(s) for s in specs]
    keys = sorted(set().union(*flat)) if flat else []
    skip = set(ignore)
    diffs: dict[str, list] = {}
    for key in keys:
        if key in skip:
            continue
        values = {f.get(key, "(unset)") for f in flat}
        if len(values) > 1:
            diffs[key] = sorted(values, key=lambda v: (str(type(v)), str(v)))
    for derived, sources in _DERIVED.items():
        if derived in diffs and any(s in diffs for s in sources):
            del diffs[derived]
    return diffs


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def describe_differences(diffs: dict[str, list]) -> str:
    """'points.count (1, 3)' or 'points.count (1, 3) and train.epochs (2, 5)'."""
    parts = [f"{key} ({', '.join(format_value(v) for v in values)})" for key, values in diffs.items()]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


# ---- code versions ----------------------------------------------------------------------------


def code_label(code: Any) -> str | None:
    """'imacsr 0.1.0, commit 1a2b3c4d5e6f (dirty)' from the runs.code JSON (text or dict); None when
    the run has no recorded code version (not finished, or finished before schema v3)."""
    if not code:
        return None
    from imacsr_cli.rundir import CodeVersion

    try:
        return CodeVersion.from_dict(json.loads(code) if isinstance(code, str) else code).describe()
    except (ValueError, ImacsrError):
        return None


def code_notes(frame: pd.DataFrame) -> list[str]:
    """One note per cell whose runs were trained by different code versions (marked "mixed code")."""
    notes = []
    if "code_versions" not in frame.columns:
        return notes
    for r in frame[frame["code_versions"].map(len) > 1].drop_duplicates("cell").itertuples():
        notes.append(f"{r.cell}: mixed code: its runs were trained by {'; '.join(r.code_versions)}.")
    return notes


# ---- aggregation ------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; NaN for n = 1: one seed says nothing of the spread) and n."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, 1
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var), n


def _state_summary(rows: pd.DataFrame) -> str:
    """'1 running, 2 queued, 1 failed: oom' for the runs of a cell that have no number (yet)."""
    order = ("running", "queued", "failed", "cancelled", "succeeded")
    counts: Counter[str] = Counter()
    for state, reason in zip(rows["state"], rows["reason"]):
        label = state
        if state in ("failed", "cancelled") and isinstance(reason, str) and reason and reason != state:
            label = f"{state}: {reason}"
        counts[label] += 1

    def rank(label: str) -> tuple[int, str]:
        state = label.split(":")[0]
        return (order.index(state) if state in order else len(order), label)

    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda kv: rank(kv[0])))


def aggregate(
    runs: pd.DataFrame,
    cells: Sequence[tuple[Hashable, ...]],
    key: Callable[[pd.Series], tuple[Hashable, ...] | None],
    key_names: Sequence[str],
    metrics: Sequence[str],
    cell_label: Callable[[tuple[Hashable, ...]], str],
    what: str,
    scope: str,
    check_mixed: bool = True,
    others: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (cell, metric): mean, std, n over seeds (percent), run ids, or why it is missing.

    ``key(run)`` places a run in a cell (None: the run belongs to no cell of this table); ``cells``
    lists every cell the table shows, in order, including ones no run fills. ``what`` names the
    table in messages ("Table IV") and ``scope`` says where runs were looked for ("in grid demo").
    Metric columns of ``runs`` hold fractions; the frame holds percent. ``others`` are runs in scope
    that the grids label for other tables or figures: never counted, but an empty cell that one of
    them would fit says so, rather than "not in grid".
    """
    def place(frame: pd.DataFrame) -> dict[tuple, list[int]]:
        out: dict[tuple, list[int]] = {}
        # Plain dicts, not iterrows(): a pandas Series per run costs more than all the rest.
        for idx, run in zip(frame.index, frame.to_dict("records")):
            k = key(run)
            if k is not None:
                out.setdefault(tuple(k), []).append(idx)
        return out

    placed = place(runs)
    elsewhere = place(others) if others is not None and len(others) else {}

    rows: list[dict[str, Any]] = []
    for cell in cells:
        members = runs.loc[placed.get(tuple(cell), [])]
        done = members[members["state"] == "succeeded"]
        pending = members[members["state"] != "succeeded"]
        if check_mixed and len(done) > 1:
            diffs = spec_differences(list(done["spec"]))
            if diffs:
                raise MixedCellError(
                    f"{what} cell {cell_label(cell)} mixes runs whose specs differ in "
                    f"{describe_differences(diffs)}; restrict with --grid or fix the grid"
                )
        for metric in metrics:
            have = done[done[metric].notna()] if metric in done.columns else done.iloc[0:0]
            have = have.sort_values(["seed", "run_id"])
            values = tuple(float(v) * 100.0 for v in have[metric]) if metric in have else ()
            mean, std, n = mean_std(values)
            if n:
                missing = None
            elif len(done):
                missing = f"no {metric} recorded"
            elif len(pending):
                missing = _state_summary(pending)
            elif tuple(cell) in elsewhere:
                k = len(elsewhere[tuple(cell)])
                missing = f"none for {what}; {k} run{'s' if k > 1 else ''} of other studies fit{'s' if k == 1 else ''}"
            else:
                missing = f"not in {scope}"
            rows.append({
                **dict(zip(key_names, cell)),
                "cell": cell_label(cell),
                "metric": metric,
                "mean": mean,
                "std": std,
                "n": n,
                "run_ids": tuple(have["run_id"]),
                "seeds": tuple(int(s) for s in have["seed"]),
                "values": values,  # percent, one per seed in ``seeds`` order: what the statistics test
                "missing": missing,
                # runs of the cell that add nothing yet (queued, running, failed): worth a footnote
                "pending": _state_summary(pending) if len(pending) and n else "",
                # the code versions behind the numbers (more than one: the cell says "mixed code")
                "code_versions": tuple(sorted({c or "unknown code" for c in have["code"]}))
                if "code" in have and len(have) else (),
            })
    columns = [*key_names, "cell", "metric", "mean", "std", "n", "run_ids", "seeds", "values", "missing", "pending",
               "code_versions"]
    return pd.DataFrame(rows, columns=columns)


# ---- the runs frame ---------------------------------------------------------------------------


def runs_from_records(records: Iterable[dict[str, Any]], metrics: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Build the runs frame from plain dicts (one per run) and final metrics {run_id: {name: value}}.

    Each record needs run_id, model, dataset, method, seed, state and spec (JSON text or dict);
    variant, reason, message and cells ({grid: labels}) are optional. Position and spacing are read
    from the spec (conventional runs have none). This is what ``runs_frame`` uses on the database
    rows, and what tests and notebooks can use on hand-made data.
    """
    metrics = metrics or {}
    rows = []
    names: list[str] = []
    memo: dict[str, dict[str, Any]] = {}
    for rec in records:
        spec = _identity_by_seedless(rec["spec"], memo)
        points = spec.get("points", {}) if rec["method"] == "imacsr" else {}
        row = {
            "run_id": rec["run_id"],
            "model": rec["model"],
            "variant": rec.get("variant") or spec.get("model", {}).get("variant", ""),
            "dataset": rec["dataset"],
            "method": rec["method"],
            "num_points": int(rec.get("num_points") or points.get("count") or 0),
            "position": points.get("position"),
            "spacing": points.get("spacing"),
            "seed": int(rec["seed"]),
            "state": rec["state"],
            "reason": rec.get("reason"),
            "message": rec.get("message"),
            "spec": spec,
            "cells": dict(rec.get("cells") or {}),
            "code": code_label(rec.get("code")),
        }
        for name, value in metrics.get(rec["run_id"], {}).items():
            row[name] = value
            if name not in names:
                names.append(name)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *names])
    for name in names:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def metrics_long(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs frame as one row per (run, final metric): the tidy form for notebooks."""
    value_cols = [c for c in runs.columns if c not in RUN_COLUMNS]
    ids = ["run_id", "model", "variant", "dataset", "method", "num_points", "position", "spacing", "seed", "state"]
    long = runs[ids + value_cols].melt(id_vars=ids, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


# ---- which runs a table or figure considers ---------------------------------------------------


def _norm_label(value: Any) -> str:
    """'IV', 'Table IV', 'iv' -> 'iv'; 3, '3', 'Fig. 3' -> '3'."""
    text = str(value).strip().lower()
    for prefix in ("table", "figure", "fig.", "fig"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
            break
    return text


def labelled_for(cells: dict[str, list[dict[str, Any]]], kind: str, name: str) -> bool:
    """Whether any of a run's grid labels ({grid: [labels, ...]}) puts it in table/figure ``name``."""
    want = _norm_label(name)
    return any(
        isinstance(label, dict) and kind in label and _norm_label(label[kind]) == want
        for labels in cells.values()
        for label in labels
    )


def _labelled_at_all(cells: dict[str, list[dict[str, Any]]]) -> bool:
    return any(isinstance(label, dict) and ("table" in label or "figure" in label)
               for labels in cells.values() for label in labels)


def select_for(runs: pd.DataFrame, kind: str, name: str) -> tuple[pd.DataFrame, bool]:
    """The runs a table/figure considers, and whether grid labels chose them.

    The grids say what their runs were for: when some run in scope is labelled for this table or
    figure (``{"table": "iv"}``, ``{"figure": "3"}``), only the labelled runs count. When none is,
    the runs no grid labels for any table or figure count, placed by their specs alone (then cells
    that mix experiments are likelier, and are refused); a run labelled for Table IV never turns up
    in Fig. 3 by accident.
    """
    if runs.empty:
        return runs, False
    mask = runs["cells"].map(lambda c: labelled_for(c, kind, name))
    if mask.any():
        return runs[mask], True
    return runs[~runs["cells"].map(_labelled_at_all)], False


# ---- reading the database ---------------------------------------------------------------------

# The final metric rows a report may show: both conventions (see CONVENTIONS).
FINAL_NAMES = tuple(p + m for p, _ in CONVENTIONS.values() for m in METRICS)


def open_store(db: Any = None) -> Any:
    """A Store from a Store (returned as is), a URL, a path, or None (env IMACSR_DB, then the default).
    A missing SQLite file is NotFound: reports never create a database."""
    from imacsr_cli.store.store import Store

    if isinstance(db, Store):
        return db
    return Store.open(db, create=False)


def runs_frame(db: Any = None, grid: str | None = None) -> pd.DataFrame:
    """The runs frame of a database (a Store, URL or path): one row per run of ``grid`` (all runs
    without one), metric columns ``mIoU`` ... and ``paper/mIoU`` ... holding fractions (NaN: not
    recorded). With ``grid``, only that grid's labels are in ``cells``."""
    store = open_store(db)
    try:
        records, metrics = store.report_rows(grid, FINAL_NAMES)
    finally:
        if store is not db:
            store.close()
    frame = runs_from_records(records, metrics)
    for name in FINAL_NAMES:  # always present, so a table can say "no paper/mIoU recorded"
        if name not in frame.columns:
            frame[name] = math.nan
    return frame
