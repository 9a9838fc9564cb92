"""`imacsr runs show|logs|retry|cancel` on a database filled through the Store API."""

from __future__ import annotations

import pytest
from test_status import fill
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.store import Store


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path}/imacsr.db"
    fill(url, runs_root=str(tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "a0000000000a"
    run_dir.mkdir(parents=True)
    (run_dir / "train.log").write_text("line one\nline two\n")
    (run_dir / "result.json").write_text("{}")
    return url


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_show_a_run_by_prefix(db, tmp_path):
    r = invoke("runs", "show", "a000", "--db", db)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "run a0000000000a"
    assert "  state:      succeeded" in lines
    assert "  epoch:      2/2" in lines
    assert "  code:       imacsr 0.1.0, commit 0123456789ab (dirty)" in lines  # from its result.json
    assert "  grids:      g1 [table=iv]; g2 [-]" in lines
    assert "  mIoU 43.21  mF1 50.00  mPrecision 60.00  mRecall 55.00" in lines
    assert "train loss by epoch: 1: 2.5000  2: 2.0000" in lines
    assert '  method.name = "conventional"' in lines
    run_dir = tmp_path / "runs" / "a0000000000a"
    assert f"  result:     {run_dir / 'result.json'}" in lines
    assert f"  checkpoint: {run_dir / 'checkpoint.pt'}  (missing)" in lines
    assert [ln.split()[1] for ln in lines[lines.index("events (last 6):") + 2:]] == [
        "enqueued", "claimed", "started", "epoch", "epoch", "succeeded"]
    failed = invoke("runs", "show", "c0000000000c", "--db", db)
    assert "  state:      failed (crashed)" in failed.output
    assert "  code:" not in failed.output  # no result, no code version
    assert "message:\n  exit code 1: RuntimeError: boom\n  Traceback (most recent call last):\n" in failed.output


def test_show_unknown_or_ambiguous(db):
    r = invoke("runs", "show", "zzzz", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: no run 'zzzz'; `imacsr status --runs` lists them\n")


def test_logs(db):
    r = invoke("runs", "logs", "a0000000000a", "--db", db)
    assert (r.exit_code, r.output) == (0, "line one\nline two\n")
    r = invoke("runs", "logs", "d000", "--db", db)
    assert r.exit_code == 2 and r.output.startswith("error: run d0000000000d has no train.log yet (")


def test_logs_follow_until_the_run_ends(db, tmp_path):
    # d is queued: follow waits for it; a line appended later is printed; cancelling the run from
    # "another terminal" ends the follow. Each step waits for the follower to print, not for a time.
    import os
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "runs" / "d0000000000d" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text("started\n")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "imacsr_cli", "runs", "logs", "d0000000000d", "--follow",
                          "--db", db, "--runs-dir", str(tmp_path / "runs")], cwd=repo, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "started\n"
    with open(log, "a") as fh:
        fh.write("epoch 1\n")
    assert p.stdout.readline() == "epoch 1\n"
    with Store.open(db) as store:
        store.cancel("d0000000000d")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert out == ""
    assert err == "-- run d0000000000d cancelled (cancelled)\n"


def test_retry(db):
    r = invoke("runs", "retry", "c000", "--db", db)
    assert (r.exit_code, r.output) == (0, "c0000000000c queued again\n`imacsr run-grid GRID` trains them\n")
    with Store.open(db) as store:
        run = store.get("c0000000000c")
        assert (run.state, run.attempts, run.reason) == ("queued", 0, None)
    r = invoke("runs", "retry", "c000", "--db", db)
    assert r.output == "c0000000000c is already queued; nothing to do\n"
    r = invoke("runs", "retry", "a000", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: run a0000000000a succeeded; only failed or cancelled runs can "
                                          "be retried\n")
    r = invoke("runs", "retry", "--failed", "--cancelled", "--grid", "g2", "--db", db)
    assert (r.exit_code, r.output) == (0, "e0000000000e queued again\n1 run queued again\n"
                                          "`imacsr run-grid GRID` trains them\n")
    r = invoke("runs", "retry", "--db", db)
    assert r.exit_code == 2


def test_cancel_a_queued_run(db):
    r = invoke("runs", "cancel", "d000", "--db", db)
    assert (r.exit_code, r.output) == (0, "d0000000000d cancelled (was queued)\n")
    r = invoke("runs", "cancel", "a000", "--db", db)
    assert (r.exit_code, r.output) == (0, "a0000000000a is already succeeded; nothing to cancel\n")
    with Store.open(db) as store:
        assert store.get("d0000000000d").state == "cancelled"
