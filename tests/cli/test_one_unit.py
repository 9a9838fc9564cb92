"""One unit everywhere: a real tiny run through the CLI, and its mIoU read back from every output.

The record (result.json, events.jsonl, the database) holds the fraction; every display and export
shows the same number in percent (imacsr_cli/units.py): run-grid progress, status (table and JSON),
runs show (metrics and events), runs logs (train.log), the `imacsr train` progress bar, and the
report's table, CSV and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
from orchhelp import events, grid_file, imacsr  # noqa: E402

from imacsr_cli import units  # noqa: E402

pytestmark = pytest.mark.slow


def test_a_runs_miou_is_the_same_number_in_every_output(tmp_path):
    grid_file(tmp_path, "unit")
    r = imacsr(["run-grid", "unit.toml", "--jobs", "1"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    run_id = run_dir.name
    fraction = json.loads((run_dir / "result.json").read_text())["metrics"]["dataset"]["mIoU"]
    assert 0.0 <= fraction <= 1.0  # the record: a fraction
    shown = units.fmt_metric(fraction)  # "47.78"
    assert re.fullmatch(r"\d{1,3}\.\d\d", shown)
    as_text = f"mIoU {shown}%"

    # the record's other copies: the last epoch event and the database (through status --json)
    last = [e for e in events(run_dir) if e["event"] == "epoch"][-1]
    assert last["val"]["mIoU"] == pytest.approx(fraction)

    # run-grid progress: every epoch line and the success line
    assert f"{run_id} epoch 2/2 loss " in r.stdout and f"{as_text}" in r.stdout.split(f"{run_id} epoch 2/2")[1]
    assert f"{run_id} succeeded: {as_text}" in r.stdout

    # status: the table under "mIoU (%)", and JSON under final/mIoU_pct
    st = imacsr(["status", "--runs"], tmp_path)
    assert st.returncode == 0, st.stderr
    head, row = [ln for ln in st.stdout.splitlines() if ln.startswith(("RUN ", run_id))]
    col = head.index("mIoU (%)")
    assert row[col:col + len("mIoU (%)")].strip() == shown
    doc = json.loads(imacsr(["status", "--runs", "--json"], tmp_path).stdout)
    [rec] = doc["runs"]
    assert rec["final/mIoU_pct"] == pytest.approx(100 * fraction, abs=1e-6)
    assert units.fmt_pct(rec["final/mIoU_pct"]) == shown

    # runs show: the final metrics and the epoch event; runs logs: train.log
    show = imacsr(["runs", "show", run_id], tmp_path).stdout
    assert f"  {as_text}  mF1 " in show
    assert f"epoch 2/2 val {as_text}" in show
    log = imacsr(["runs", "logs", run_id], tmp_path).stdout
    assert re.search(rf"epoch 2/2 loss [\d.]+ {re.escape(as_text)} \(", log), log

    # `imacsr train`'s progress bar, fed this run's own events
    from imacsr_cli.cli.progress import TrainProgress
    from imacsr_cli.rundir.events import read_events

    bar = TrainProgress()
    for ev in read_events(run_dir / "events.jsonl")[0]:
        bar.on_event(ev)
    assert bar.val == f" {as_text}"

    # the report: table (md), CSV and JSON, in percent and labelled
    md = imacsr(["report", "--table", "iv", "--format", "md"], tmp_path)
    assert md.returncode == 0, md.stderr
    assert f"| {shown} \u00b1 \u2013 (n=1) |" in md.stdout and "Metrics in %" in md.stdout
    rows = list(csv.DictReader(io.StringIO(imacsr(["report", "--table", "iv", "--format", "csv"], tmp_path).stdout)))
    [cell] = [c for c in rows if c["metric"] == "mIoU" and c["n"] == "1"]
    assert units.fmt_pct(float(cell["mean_pct"])) == shown
    doc = json.loads(imacsr(["report", "--table", "iv", "--format", "json"], tmp_path).stdout)
    [cell] = [c for c in doc["cells"] if c["metric"] == "mIoU" and c["n"] == 1]
    assert cell["mean_pct"] == pytest.approx(100 * fraction, abs=1e-6) and units.fmt_pct(cell["mean_pct"]) == shown
