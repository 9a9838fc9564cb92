"""Training a succeeded run again on purpose, end to end with real trainers: `runs rerun` keeps the
old result aside; a run whose directory was deleted is offered for retraining, not called done."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
from orchhelp import grid_file, imacsr, starts  # noqa: E402

from imacsr_cli.store import Store  # noqa: E402

pytestmark = pytest.mark.slow


def test_deleted_run_dir_is_retrained_on_request_and_rerun_keeps_the_old_result(tmp_path):
    grid_file(tmp_path, "one", epochs=1)
    assert imacsr(["run-grid", "one.toml"], tmp_path).returncode == 0
    with Store.open(f"sqlite:///{tmp_path}/results/imacsr.db", create=False) as store:
        (run_id,) = store.grid_run_ids("one")
        first = store.metrics_frame([run_id], split="final", names=["mIoU"])["value"].tolist()
    run_dir = tmp_path / "results" / "runs" / run_id
    shutil.rmtree(run_dir)

    # Without the flag: nothing is trained, and the plan says why and what to do.
    r = imacsr(["run-grid", "one.toml"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("  1 of the done runs has lost its result.json (run directory deleted?): --retrain-missing trains them "
            "again") in r.stdout.splitlines()
    assert re.search(r"0 trainers started", r.stdout) and not run_dir.exists()
    plan = json.loads(imacsr(["run-grid", "one.toml", "--plan", "--json"], tmp_path).stdout)
    assert [x["state"] for x in plan["runs"]] == ["succeeded, files missing"] and plan["counts"]["missing"] == 1

    r = imacsr(["run-grid", "one.toml", "--retrain-missing"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  1 of the done runs has lost its result.json: trained again (--retrain-missing)" in r.stdout
    assert "1 trainer started" in r.stdout and (run_dir / "result.json").exists()
    with Store.open(f"sqlite:///{tmp_path}/results/imacsr.db", create=False) as store:
        again = store.metrics_frame([run_id], split="final", names=["mIoU"])["value"].tolist()
    assert again == first  # same spec, same seed, on the CPU: the same metrics

    # rerun: the old result, checkpoint and events are renamed aside, the run trains from scratch.
    old = (run_dir / "result.json").read_text()
    r = imacsr(["runs", "rerun", run_id[:6]], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == (f"{run_id} queued to be trained again; kept aside: result.before-rerun-1.json, "
                                        "checkpoint.before-rerun-1.pt, events.before-rerun-1.jsonl")
    r = imacsr(["run-grid", "one.toml"], tmp_path)
    assert r.returncode == 0 and "1 new" not in r.stdout and "1 queued" in r.stdout.splitlines()[0]
    assert (run_dir / "result.before-rerun-1.json").read_text() == old
    assert len(starts(run_dir)) == 1 and starts(run_dir)[0]["resumed_from"] == 0  # a fresh start, not a resume
