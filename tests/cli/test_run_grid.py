"""`imacsr run-grid` end to end: the real CLI in a subprocess, real trainers, real signals.

Each test works in its own tmp_path as the working directory, so the defaults (results/imacsr.db,
results/runs) are exercised. Trainers use the tiny spec (tests/launch/orchhelp.py).
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
from orchhelp import PATIENCE_S, REPO, events, grid_file, imacsr, pid_gone, start, starts, wait_for, wait_for_schema  # noqa: E402

from imacsr_cli.store import Store  # noqa: E402

pytestmark = pytest.mark.slow


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path}/results/imacsr.db", create=False)


def _run_dir(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "results" / "runs" / run_id


def test_run_grid_trains_every_run_then_a_rerun_trains_nothing(tmp_path):
    grid_file(tmp_path, "two", sweep={"method.name": ["conventional", "imacsr"]})
    r = imacsr(["run-grid", "two.toml", "--jobs", "2"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"grid two ({tmp_path}/two.toml): 2 runs — 2 new, 0 already done, 0 failed, 0 running elsewhere"
    assert re.fullmatch(r"slots: 2 on the CPU, \d+ threads? each \(\d+ cores\)", lines[1])
    assert re.fullmatch(r"grid two: 2/2 succeeded — 2 trainers started in \d+s", lines[-1])
    with _store(tmp_path) as store:
        ids = store.grid_run_ids("two")
        assert [store.get(i).state for i in ids] == ["succeeded", "succeeded"]
        assert all(line in r.stdout for i in ids for line in (f"{i} launched on cpu#", f"{i} epoch 2/2 loss "))
        final = store.metrics_frame(ids, split="final", names=["mIoU"])
        assert len(final) == 2 and final["value"].between(0, 1).all()
        history = {i: len(store.run_events(i)) for i in ids}
    files = {i: (_run_dir(tmp_path, i) / "events.jsonl").read_bytes() for i in ids}

    again = imacsr(["run-grid", "two.toml", "--jobs", "2"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 runs — 0 new, 2 already done, 0 failed, 0 running elsewhere" in again.stdout
    assert re.search(r"grid two: 2/2 succeeded — 0 trainers started in \d+s$", again.stdout)
    # Nothing was trained or even claimed: no new trainer events, no new database events.
    assert {i: (_run_dir(tmp_path, i) / "events.jsonl").read_bytes() for i in ids} == files
    with _store(tmp_path) as store:
        assert {i: len(store.run_events(i)) for i in ids} == history


def test_result_file_is_the_truth_about_success(tmp_path):
    """A run whose RUN_DIR holds result.json is ingested, not trained again (here: a new database)."""
    grid_file(tmp_path, "one")
    assert imacsr(["run-grid", "one.toml"], tmp_path).returncode == 0
    r = imacsr(["run-grid", "one.toml", "--db", str(tmp_path / "other.db")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 new" in r.stdout and "0 trainers started" in r.stdout
    assert "succeeded (result.json found: ingested without training)" in r.stdout
    with Store.open(str(tmp_path / "other.db")) as store:
        (run_id,) = store.grid_run_ids("one")
        assert store.get(run_id).state == "succeeded"
        assert set(store.metrics_frame([run_id])["split"]) == {"train", "val", "final"}
    assert len(starts(_run_dir(tmp_path, run_id))) == 1


def test_plan_only_changes_nothing(tmp_path):
    r = imacsr(["run-grid", "demo", "--plan"], tmp_path)  # found in the checkout's experiments/
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    m = re.fullmatch(rf"grid demo \({REPO}/experiments/demo.toml\): (\d+) runs — (\d+) new, 0 already done, "
                     r"0 failed, 0 running elsewhere", first)
    assert m and m.group(1) == m.group(2), first
    assert not (tmp_path / "results").exists()


def test_bad_grid_exits_2_and_enqueues_nothing(tmp_path):
    grid_file(tmp_path, "bad", extra='\n[sweep]\n"points.cnt" = [1, 2]\n')
    r = imacsr(["run-grid", "bad.toml"], tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and "points.cnt" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "results").exists()
    missing = imacsr(["run-grid", "nosuchgrid"], tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: grid file 'nosuchgrid' not found")


def test_rows_that_cannot_run_are_reported_at_plan_time(tmp_path):
    grid_file(tmp_path, "uninstalled", sweep={"model.name": ["deeplabv3plus", "nosuchmodel"]})
    r = imacsr(["run-grid", "uninstalled.toml"], tmp_path)
    assert r.returncode == 2
    assert "cannot run: 1 run needs model 'nosuchmodel', which is not installed (installed: " in r.stdout
    assert r.stderr == "error: grid uninstalled: some runs cannot run (see above); nothing enqueued\n"
    assert not (tmp_path / "results").exists()
    # A dataset whose root is missing is caught here too, not by each trainer in turn.
    grid_file(tmp_path, "nodata", sweep={"data.name": ["synthetic", "camvid"]})
    r = imacsr(["run-grid", "nodata.toml"], tmp_path, IMACSR_DATA=str(tmp_path / "data"))
    assert r.returncode == 2
    assert f"cannot run: 1 run needs dataset 'camvid' at {tmp_path}/data/camvid, which does not exist" in r.stdout
    assert not (tmp_path / "results").exists()


def test_faults_are_classified_and_only_retryable_ones_retried(tmp_path):
    """nan → failed nonfinite (not retried), crash → crashed with the log tail, hang → timeout."""
    cases = {
        "nan": (["--retries", "1"], "nan@1"),
        "crash": (["--retries", "1"], "crash@1"),
        "hang": (["--timeout", "10", "--retries", "1"], "hang@1"),
    }
    procs = {}
    for name, (opts, fault) in cases.items():
        d = tmp_path / name
        d.mkdir()
        grid_file(d, name)
        procs[name] = start(["run-grid", f"{name}.toml", *opts], d, IMACSR_TEST_FAULT=fault)
    outs = {name: p.communicate(timeout=PATIENCE_S) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 1, (name, outs[name])
        assert outs[name][1] == (f"error: grid {name}: 1 of 1 runs did not succeed "
                                 f"(imacsr status {name} --runs; imacsr runs retry --failed)\n")
    runs = {}
    for name in cases:
        with _store(tmp_path / name) as store:
            (run_id,) = store.grid_run_ids(name)
            runs[name] = store.get(run_id)
    nan, crash, hang = runs["nan"], runs["crash"], runs["hang"]
    assert (nan.state, nan.reason, nan.exit_code, nan.attempts) == ("failed", "nonfinite", 3, 1)
    assert nan.message.startswith("loss is nan at epoch 1")
    assert (crash.state, crash.reason, crash.exit_code, crash.attempts) == ("failed", "crashed", 1, 1)
    assert crash.message.splitlines()[0] == "exit code 1: RuntimeError: injected crash at epoch 1 (IMACSR_TEST_FAULT)"
    assert "Traceback (most recent call last):" in crash.message  # the last lines of train.log
    assert f"[1/1] {crash.run_id} failed (crashed): exit code 1" in outs["crash"][0]
    assert (hang.state, hang.reason, hang.attempts) == ("failed", "timeout", 1)
    assert hang.message.startswith("no progress for 10 s")
    # On a loaded machine the 10 s may run out while the trainer still imports torch (no start event
    # yet): either way the one trainer it started is gone.
    hang_start = starts(tmp_path / "hang" / "results" / "runs" / hang.run_id)
    assert len(hang_start) <= 1 and all(pid_gone(s["pid"]) for s in hang_start)
    assert hang.trainer_pid is None or pid_gone(hang.trainer_pid)


def test_oom_is_retried_and_succeeds(tmp_path):
    grid_file(tmp_path, "oom")
    r = imacsr(["run-grid", "oom.toml", "--retries", "1"], tmp_path, IMACSR_TEST_FAULT="oom@1:once")
    assert r.returncode == 0, r.stdout + r.stderr
    with _store(tmp_path) as store:
        (run_id,) = store.grid_run_ids("oom")
        run = store.get(run_id)
        assert (run.state, run.attempts, run.retries) == ("succeeded", 2, 1)
        ev = store.run_events(run_id)
        requeued = ev[ev["kind"] == "requeued"]
        assert list(requeued["reason"]) == ["oom"]
        assert requeued["detail"].iloc[0].startswith("retry 1/1 after oom: injected out-of-memory")
    assert f"{run_id} oom: retry 1/1" in r.stdout
    assert len(starts(_run_dir(tmp_path, run_id))) == 2


def test_ctrl_c_requeues_runs_and_a_rerun_resumes_them(tmp_path):
    grid_file(tmp_path, "sig", sweep={"method.name": ["conventional", "imacsr"]})
    # hang@2:once: the first attempts wait at the start of epoch 2, after epoch 1's checkpoint, until the
    # signal comes (however slow the machine); the resumed ones do not hang (the marker).
    p = start(["run-grid", "sig.toml", "--jobs", "2"], tmp_path, IMACSR_TEST_FAULT="hang@2:once")
    wait_for_schema(tmp_path, 300, p)
    with _store(tmp_path) as store:
        ids = wait_for(lambda: store.grid_run_ids("sig"), 60, "enqueue", proc=p)
        wait_for(lambda: all(store.get(i).epoch >= 1 for i in ids), 120, "epoch 1 of both runs", proc=p)
        pids = [store.get(i).trainer_pid for i in ids]
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=PATIENCE_S)
        assert p.returncode == 130, out + err
        assert "stopped by SIGINT: 2 runs are queued with their checkpoints; run the same command to resume" in err
        assert all(pid_gone(pid) for pid in pids)
        assert [(store.get(i).state, store.get(i).reason) for i in ids] == [("queued", "interrupted")] * 2

    r = imacsr(["run-grid", "sig.toml", "--jobs", "2"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 runs — 0 new, 0 already done, 0 failed, 0 running elsewhere, 2 queued" in r.stdout
    for i in ids:
        assert [s["resumed_from"] for s in starts(_run_dir(tmp_path, i))] == [0, 1]
        assert f"{i} resumed after epoch 1/2" in r.stdout
        ends = [e for e in events(_run_dir(tmp_path, i)) if e["event"] == "end"]
        assert [e["status"] for e in ends] == ["interrupted", "succeeded"]


def test_sigterm_stops_like_ctrl_c_with_exit_143(tmp_path):
    grid_file(tmp_path, "term")
    p = start(["run-grid", "term.toml"], tmp_path)
    (run_id,) = _wait_for_launch(tmp_path, "term", p)
    with _store(tmp_path) as store:
        trainer = store.get(run_id).trainer_pid
    p.send_signal(signal.SIGTERM)  # the trainer may still be importing torch: it must go too
    out, err = p.communicate(timeout=PATIENCE_S)
    assert p.returncode == 143, out + err
    assert "stopped by SIGTERM: 1 runs are queued with their checkpoints" in err
    assert pid_gone(trainer)
    with _store(tmp_path) as store:
        run = store.get(run_id)
        assert (run.state, run.reason) == ("queued", "interrupted")


def _wait_for_launch(tmp_path: Path, grid: str, proc) -> list[str]:
    wait_for_schema(tmp_path, 300, proc)
    with _store(tmp_path) as store:
        ids = wait_for(lambda: store.grid_run_ids(grid), 60, "enqueue", proc=proc)
        wait_for(lambda: all(store.get(i).trainer_pid for i in ids), 60, "launch", proc=proc)
    return ids
