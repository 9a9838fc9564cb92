"""Runs frame from the database, mean ± std over seeds, spec differences, missing-cell reasons."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imacsr_cli.errors import NotFound
from imacsr_cli.report import frames
from imacsr_cli.spec.runspec import RunSpec


def test_mean_std_is_sample_std_and_nan_for_one_seed():
    assert frames.mean_std([]) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True), 0)
    mean, std, n = frames.mean_std([47.0])
    assert (mean, n) == (47.0, 1) and math.isnan(std)
    mean, std, n = frames.mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and n == 4
    assert std == pytest.approx(math.sqrt(5 / 3))  # ddof = 1


def test_spec_differences_ignore_the_seed_and_derived_point_names():
    a = {"points": {"count": 1, "names": ["stem"], "spacing": 1}, "train": {"seed": 0, "epochs": 2}}
    b = {"points": {"count": 3, "names": ["stem", "layer1.0", "layer1.1"], "spacing": 1},
         "train": {"seed": 1, "epochs": 2}}
    assert frames.spec_differences([a, b]) == {"points.count": [1, 3]}
    assert frames.describe_differences({"points.count": [1, 3]}) == "points.count (1, 3)"
    assert frames.describe_differences({"a.b": ["x", "y"], "c.d": [1.0, 2.5], "e": [(1,), (2,)]}) == \
        "a.b (x, y), c.d (1.0, 2.5) and e ([1], [2])"
    c = {"points": {"count": 1, "names": ["layer1.0"], "spacing": 1}, "train": {"seed": 0, "epochs": 2}}
    assert frames.spec_differences([a, c]) == {"points.names": [("layer1.0",), ("stem",)]}
    assert frames.spec_differences([a, a]) == {}


def test_identity_spec_drops_fields_that_do_not_change_the_result():
    spec = RunSpec.from_dict({"data": {"name": "synthetic", "workers": 4, "root": "/x"}}).to_dict()
    ident = frames.identity_spec(spec)
    assert "workers" not in ident["data"] and "root" not in ident["data"]
    assert frames.identity_spec({"unknown": 1}) == {"unknown": 1}  # another schema: kept as stored


def test_labels_select_runs_and_runs_labelled_for_something_else_stay_out():
    cells = {"g": [{"figure": "3"}, {"table": "VI", "series": "II"}]}
    assert frames.labelled_for(cells, "table", "vi")
    assert frames.labelled_for(cells, "figure", "3") and frames.labelled_for(cells, "figure", "Fig. 3")
    assert not frames.labelled_for(cells, "table", "iv")
    runs = pd.DataFrame({"cells": [cells, {}]})
    chosen, by_label = frames.select_for(runs, "table", "vi")
    assert by_label and len(chosen) == 1
    chosen, by_label = frames.select_for(runs, "table", "iv")  # nothing for IV: the unlabelled runs
    assert not by_label and list(chosen.index) == [1]


def _runs(states: list[tuple[str, str | None, float | None]]) -> pd.DataFrame:
    recs, metrics = [], {}
    for i, (state, reason, v) in enumerate(states):
        spec = RunSpec.from_dict({"train": {"seed": i}}).to_dict()
        recs.append({"run_id": f"r{i}", "model": "deeplabv3plus", "dataset": "synthetic", "method": "imacsr",
                     "seed": i, "state": state, "reason": reason, "spec": spec})
        if v is not None:
            metrics[f"r{i}"] = {"mIoU": v}
    return frames.runs_from_records(recs, metrics)


def _cell(runs: pd.DataFrame, scope: str = "any grid") -> dict:
    f = frames.aggregate(runs, [("x",)], lambda r: ("x",), ("k",), ["mIoU"], lambda c: "X", "Table T", scope)
    return f.iloc[0].to_dict()


def test_missing_cells_say_why():
    assert _cell(_runs([]))["missing"] == "not in any grid"
    assert _cell(_runs([]), "grid demo")["missing"] == "not in grid demo"
    c = _cell(_runs([("queued", None, None), ("running", None, None), ("queued", "orphaned", None)]))
    assert (c["n"], c["missing"]) == (0, "1 running, 2 queued")
    assert math.isnan(c["mean"])
    c = _cell(_runs([("failed", "oom", None), ("failed", "crashed", None), ("cancelled", "cancelled", None)]))
    assert c["missing"] == "1 failed: crashed, 1 failed: oom, 1 cancelled"
    c = _cell(_runs([("succeeded", None, None)]))
    assert c["missing"] == "no mIoU recorded"


def test_a_cell_averages_the_finished_seeds_and_notes_the_rest():
    c = _cell(_runs([("succeeded", None, 0.40), ("succeeded", None, 0.42), ("running", None, None)]))
    assert (c["n"], c["run_ids"], c["seeds"], c["missing"]) == (2, ("r0", "r1"), (0, 1), None)
    assert c["mean"] == pytest.approx(41.0) and c["std"] == pytest.approx(math.sqrt(2))
    assert c["pending"] == "1 running"


def test_runs_frame_reads_specs_labels_and_both_conventions(report_db):
    url, ids = report_db
    runs = frames.runs_frame(url)
    assert set(frames.FINAL_NAMES) <= set(runs.columns)
    row = runs.set_index("run_id").loc[ids[("city", "imacsr")][0]]
    assert row["mIoU"] == pytest.approx(0.4768) and row["paper/mIoU"] == pytest.approx(0.4868)
    assert (row["method"], row["num_points"], row["position"], row["spacing"]) == ("imacsr", 3, "input", 1)
    assert row["cells"] == {"table_iv": [{"table": "iv"}]}
    shared = runs[runs["cells"].map(len) == 3]  # 2 points at the input: in vi, fig3 and fig4
    assert len(shared) == 2 and set(shared["cells"].iloc[0]) == {"vi", "fig3", "fig4"}
    assert runs.set_index("run_id").loc[ids["synthia_failed"], "reason"] == "oom"

    only = frames.runs_frame(url, grid="fig4")
    assert len(only) == 6 and all(set(c) == {"fig4"} for c in only["cells"])
    long = frames.metrics_long(only)
    assert set(long["metric"]) == set(frames.FINAL_NAMES) and len(long) == 6 * 8


def test_runs_frame_refuses_unknown_grids_and_missing_databases(report_db, tmp_path):
    url, _ = report_db
    with pytest.raises(NotFound, match="no grid 'nope'.*grids: fig3, fig4, table_iv, vi"):
        frames.runs_frame(url, grid="nope")
    with pytest.raises(NotFound, match="no results database"):
        frames.runs_frame(str(tmp_path / "absent.db"))


def test_identities_computed_once_per_seedless_spec_equal_the_full_conversion():
    # runs_from_records converts a spec once per spec-without-seed; every shipped grid's runs, at
    # several seeds, must come out exactly as identity_spec converts each in full.
    import json
    from pathlib import Path

    from imacsr_cli.spec.grid import GridSpec

    memo: dict = {}
    experiments = Path(__file__).resolve().parents[2] / "experiments"
    grids = sorted(p for p in experiments.rglob("*.toml") if p.parent.name != "runs")  # runs/: single specs
    assert grids
    seen = 0
    for path in grids:
        for row in GridSpec.load(path).valid_rows()[:40]:
            for seed in (0, 7, 2**31 - 1):
                tree = row.spec.to_dict()
                tree["train"]["seed"] = seed
                text = json.dumps(tree)
                assert frames._identity_by_seedless(text, memo) == frames.identity_spec(text)
                seen += 1
    assert seen > 100 and len(memo) < seen / 3
    assert frames._identity_by_seedless({"unknown": 1}, memo) == {"unknown": 1}
