"""`imacsr runs show|logs|retry|cancel` on a database filled through the Store API."""

from __future__ import annotations

import pytest
from test_status import RESULT, fill
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.store import Store


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path}/imacsr.db"
    fill(url, runs_root=str(tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "a0000000000a"
    run_dir.mkdir(parents=True, exist_ok=True)
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
    assert "  mIoU 43.21%  mF1 50.00%  mPrecision 60.00%  mRecall 55.00%" in lines
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
    r = invoke("runs", "show", "ffff", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: no run 'ffff'; `imacsr status --runs` lists them\n")
    r = invoke("runs", "show", "zzzz", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: 'zzzz' is not a run id: ids are hexadecimal, e.g. 3fa2c1d0e9b8 "
                                          "(`imacsr status --runs` lists them)\n")
    # A unique prefix that is too short says the minimum, not "no run".
    r = invoke("runs", "show", "a00", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: run id prefix 'a00' is too short: give at least 4 characters\n")


@pytest.mark.parametrize("command", ["show", "logs", "retry", "cancel", "rerun"])
def test_prefixes_are_matched_literally(db, command):
    """SQL LIKE wildcards are no prefix: `runs cancel ____` once cancelled a run."""
    for pattern in ("____", "%%%%", "a00_", "a00%"):
        r = invoke("runs", command, pattern, "--db", db)
        assert (r.exit_code, r.output) == (2, f"error: {pattern!r} is not a run id: ids are hexadecimal, e.g. "
                                              "3fa2c1d0e9b8 (`imacsr status --runs` lists them)\n")
    with Store.open(db) as store:
        assert [store.get(i).state for i in ("a0000000000a", "b0000000000b", "d0000000000d")] == \
            ["succeeded", "running", "queued"]
    # Upper case is the same hex id.
    assert invoke("runs", "show", "A000", "--db", db).output.startswith("run a0000000000a\n")


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
    assert (r.exit_code, r.output) == (2, "error: run a0000000000a succeeded; `imacsr runs rerun a0000000000a` (or "
                                          "retry --force) trains it again, keeping the old result aside\n")
    r = invoke("runs", "retry", "--failed", "--cancelled", "--grid", "g2", "--db", db)
    assert (r.exit_code, r.output) == (0, "e0000000000e queued again\n1 run queued again\n"
                                          "`imacsr run-grid GRID` trains them\n")


@pytest.mark.parametrize("args, message", [
    ([], "runs retry: give a run id or --failed"),
    (["--grid", "g1"], "runs retry: --grid selects among failed runs: add --failed"),
    (["c000", "--failed"], "runs retry: give a run id or --failed, not both"),
    (["c000", "--grid", "g1"], "runs retry: --grid and --cancelled go with --failed, not with a run id"),
    (["--failed", "--force"], "runs retry: --force takes a run id (one succeeded run to train again)"),
])
def test_retry_usage_errors_say_what_is_missing(db, args, message):
    r = invoke("runs", "retry", *args, "--db", db)
    assert (r.exit_code, r.output) == (2, f"error: {message}\n")


@pytest.mark.parametrize("how", [["rerun"], ["retry", "--force"]])
def test_rerun_a_succeeded_run_keeps_the_old_result_aside(db, tmp_path, how):
    run_dir = tmp_path / "runs" / "a0000000000a"
    (run_dir / "result.json").write_text('{"old": 1}')
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04old")
    r = invoke("runs", *how, "a000", "--db", db, "--runs-dir", str(tmp_path / "runs"))
    assert (r.exit_code, r.output) == (0, "a0000000000a queued to be trained again; kept aside: "
                                          "result.before-rerun-1.json, checkpoint.before-rerun-1.pt\n"
                                          "`imacsr run-grid GRID` trains "
                                          + ("it" if how == ["rerun"] else "them") + "\n")
    assert not (run_dir / "result.json").exists() and not (run_dir / "checkpoint.pt").exists()
    assert (run_dir / "result.before-rerun-1.json").read_text() == '{"old": 1}'
    with Store.open(db) as store:
        run = store.get("a0000000000a")
        assert (run.state, run.attempts, run.epoch) == ("queued", 0, 0)
        assert store.metrics_frame(["a0000000000a"]).empty  # the old metrics do not mix with the new ones
    # A second rerun (after the run succeeded again) does not overwrite the first one's files.
    (run_dir / "result.json").write_text('{"new": 2}')
    with Store.open(db) as store:
        store._write  # noqa: B018  (the state is set through the public API below)
        assert store.claim("o:1:x", pid=1, run_ids=["a0000000000a"]).run_id == "a0000000000a"
        store.finish("a0000000000a", "o:1:x", "succeeded", exit_code=0, final=RESULT)
    assert invoke("runs", "rerun", "a000", "--db", db).exit_code == 0
    assert (run_dir / "result.before-rerun-2.json").read_text() == '{"new": 2}'
    # Only succeeded runs: a failed one is retried, a queued one is queued already.
    r = invoke("runs", "rerun", "c000", "--db", db)
    assert (r.exit_code, r.output) == (2, "error: run c0000000000c is failed, not succeeded; "
                                          "`imacsr runs retry c0000000000c` queues a failed run\n")


def test_a_succeeded_run_whose_directory_was_deleted_says_so(db, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "runs" / "a0000000000a")
    r = invoke("runs", "show", "a000", "--db", db)
    assert r.exit_code == 0
    assert (f"  state:      succeeded — but {tmp_path}/runs/a0000000000a/result.json is gone (directory deleted?); "
            "`imacsr runs rerun a0000000000a` or `imacsr run-grid GRID --retrain-missing` trains it again"
            in r.output.splitlines())
    r = invoke("status", "g2", "--runs", "--db", db)
    lines = r.output.splitlines()
    assert lines[-3].startswith("a0000000000a") and "  result.json missing  " in lines[-3]
    assert lines[-1] == ("1 succeeded run has lost its result.json (run directory deleted?): `imacsr run-grid GRID "
                         "--retrain-missing` or `imacsr runs rerun ID` trains it again")
    r = invoke("status", "g2", "--db", db)  # a grid's summary checks its runs' files too
    assert r.output.splitlines()[-1] == lines[-1]
    r = invoke("status", "--db", db)  # the overview of every grid reads the database only
    assert r.exit_code == 0 and "lost" not in r.output
    r = invoke("status", "--runs", "--json", "--db", db)
    assert {x["run_id"]: x["files_missing"] for x in __import__("json").loads(r.output)["runs"]}["a0000000000a"]


def test_cancel_a_queued_run(db):
    r = invoke("runs", "cancel", "d000", "--db", db)
    assert (r.exit_code, r.output) == (0, "d0000000000d cancelled (was queued)\n")
    r = invoke("runs", "cancel", "a000", "--db", db)
    assert (r.exit_code, r.output) == (0, "a0000000000a is already succeeded; nothing to cancel\n")
    with Store.open(db) as store:
        assert store.get("d0000000000d").state == "cancelled"
