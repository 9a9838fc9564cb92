"""The scheduler under real conditions: several schedulers on one database, kill -9, a RUN_DIR locked
by someone else, cancel from another terminal, `imacsr status` read while a grid runs.

Real SQLite files, real trainer subprocesses, real signals; run-grid runs as a subprocess.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
from pathlib import Path

import pytest
from orchhelp import PATIENCE_S, events, grid_file, imacsr, pid_gone, start, starts, wait_for, wait_for_schema
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.store import Store

pytestmark = pytest.mark.slow


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path}/results/imacsr.db", create=False)


def _run_dir(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "results" / "runs" / run_id


def _wait_enqueued(tmp_path: Path, grid: str, proc) -> list[str]:
    wait_for_schema(tmp_path, 300, proc)
    with _store(tmp_path) as store:
        return wait_for(lambda: store.grid_run_ids(grid), 60, "enqueue", proc=proc)


def test_two_schedulers_on_one_database_never_share_a_run(tmp_path):
    grid_file(tmp_path, "pair", seeds=(0, 1))
    a = start(["run-grid", "pair.toml", "--jobs", "1"], tmp_path)
    b = start(["run-grid", "pair.toml", "--jobs", "1"], tmp_path)
    out_a, err_a = a.communicate(timeout=PATIENCE_S)
    out_b, err_b = b.communicate(timeout=PATIENCE_S)
    assert (a.returncode, b.returncode) == (0, 0), out_a + err_a + out_b + err_b
    launched_a = set(re.findall(r"^(\w{12}) launched", out_a, re.M))
    launched_b = set(re.findall(r"^(\w{12}) launched", out_b, re.M))
    with _store(tmp_path) as store:
        ids = store.grid_run_ids("pair")
        assert len(ids) == 2
        assert launched_a.isdisjoint(launched_b) and launched_a | launched_b == set(ids)
        for run_id in ids:
            kinds = list(store.run_events(run_id)["kind"])
            assert kinds.count("claimed") == 1 and kinds.count("succeeded") == 1, kinds
            assert len(starts(_run_dir(tmp_path, run_id))) == 1


def test_kill_9_of_the_scheduler_then_a_restart_completes_every_run_once(tmp_path):
    grid_file(tmp_path, "k9", sweep={"method.name": ["conventional", "imacsr"]})
    # hang@2:once: each first attempt waits at the start of epoch 2 (after epoch 1's checkpoint) until it
    # is stopped, however slow the machine; the resumed attempt does not hang (the marker).
    p = start(["run-grid", "k9.toml", "--jobs", "2"], tmp_path, IMACSR_TEST_FAULT="hang@2:once")
    ids = _wait_enqueued(tmp_path, "k9", p)
    runner = CliRunner()
    url = f"sqlite:///{tmp_path}/results/imacsr.db"
    reads = 0

    def epoch_one_everywhere() -> bool:
        # `imacsr status` in another "terminal" while the grid writes: never "database is locked".
        nonlocal reads
        res = runner.invoke(app, ["status", "k9", "--runs", "--db", url])
        assert res.exit_code == 0 and "locked" not in res.output, res.output
        reads += 1
        with _store(tmp_path) as store:
            return all(store.get(i).epoch >= 1 for i in ids)

    wait_for(epoch_one_everywhere, 120, "epoch 1 of both runs", proc=p)
    assert reads >= 1
    with _store(tmp_path) as store:
        trainers = [store.get(i).trainer_pid for i in ids]
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    # The trainers notice their parent is gone (IMACSR_PARENT_PID) and stop, checkpoint intact.
    wait_for(lambda: all(pid_gone(t) for t in trainers), 30, "the orphaned trainers to stop")
    with _store(tmp_path) as store:
        assert [store.get(i).state for i in ids] == ["running", "running"]  # as the dead scheduler left them

    r = imacsr(["run-grid", "k9.toml", "--jobs", "2"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 runs — 0 new, 0 already done, 0 failed, 0 running elsewhere, 2 orphaned (to resume)" in r.stdout
    with _store(tmp_path) as store:
        for run_id in ids:
            assert store.get(run_id).state == "succeeded"
            kinds = list(store.run_events(run_id)["kind"])
            assert kinds.count("reclaimed") == 1 and kinds.count("succeeded") == 1, kinds
            train = store.metrics_frame([run_id], split="train", names=["loss"])
            assert list(train["epoch"]) == [1, 2]
            ev = events(_run_dir(tmp_path, run_id))
            # Every epoch trained once: the restart resumed after epoch 1 from the checkpoint.
            assert [e["resumed_from"] for e in ev if e["event"] == "start"] == [0, 1]
            assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [1, 2]
            # the orphan stopped itself: its end names no signal from outside (End.signal)
            first_end = [e for e in ev if e["event"] == "end"][0]
            assert first_end["message"].startswith("parent process ") and first_end["signal"] is None, first_end


def test_a_run_dir_locked_by_another_trainer_is_running_elsewhere_not_a_failure(tmp_path):
    from imacsr_cli.spec.grid import GridSpec

    path = grid_file(tmp_path, "lock")
    (row,) = GridSpec.load(path).expand()
    run_dir = _run_dir(tmp_path, row.run_id)
    run_dir.mkdir(parents=True)
    holder = open(run_dir / ".lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a trainer does for its whole life
    holder.write(f"{os.getpid()}\n")
    holder.flush()
    p = start(["run-grid", "lock.toml"], tmp_path)
    try:
        _wait_enqueued(tmp_path, "lock", p)
        with _store(tmp_path) as store:
            wait_for(lambda: "locked" in set(store.run_events(row.run_id)["reason"].dropna()), 120,
                     "a locked requeue", proc=p)
            assert store.get(row.run_id).state in ("queued", "running")
    finally:
        holder.close()  # the other trainer is done: the next attempt gets the directory
    out, err = p.communicate(timeout=PATIENCE_S)
    assert p.returncode == 0, out + err
    assert f"{row.run_id} locked: back to the queue" in out
    with _store(tmp_path) as store:
        run = store.get(row.run_id)
        assert run.state == "succeeded"
        ev = store.run_events(row.run_id)
        assert "failed" not in set(ev["kind"])


def test_cancel_a_running_run_stops_its_trainer(tmp_path):
    grid_file(tmp_path, "cx")
    p = start(["run-grid", "cx.toml"], tmp_path, IMACSR_TEST_FAULT="hang@1")  # busy until cancelled
    (run_id,) = _wait_enqueued(tmp_path, "cx", p)
    wait_for(lambda: starts(_run_dir(tmp_path, run_id)), 120, "the trainer's start event", proc=p)
    with _store(tmp_path) as store:
        pid = store.get(run_id).trainer_pid
    r = imacsr(["runs", "cancel", run_id[:6]], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{run_id} cancelled (was running); SIGTERM sent to its trainer (pid {pid})\n"
    out, err = p.communicate(timeout=PATIENCE_S)
    assert p.returncode == 1
    assert f"[1/1] {run_id} cancelled (cancelled): cancelled by the user" in out
    assert pid_gone(pid)
    with _store(tmp_path) as store:
        assert (store.get(run_id).state, store.get(run_id).reason) == ("cancelled", "cancelled")
    again = imacsr(["runs", "cancel", run_id], tmp_path)
    assert again.stdout == f"{run_id} is already cancelled; nothing to cancel\n"
