"""Grids through a real single-node Slurm (submitit), results in a real PostgreSQL database.

Each test is a tiny grid (32×32 images, a few epochs); what takes time is Slurm's scheduling cycle and
the trainers' torch import. Nothing waits on a wall-clock bound: every wait is for an observable
event (a job state in sacct, a row in the database, a file)."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from orchhelp import PYTHON, env, events, grid_file, starts, wait_for
from services import slurm_available

from imacsr_cli.spec.grid import GridSpec
from imacsr_cli.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _slurm():
    slurm_available()


def _cli(args: list[str], cwd: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "imacsr_cli", *args], cwd=cwd, env=env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(args: list[str], cwd: Path, timeout: float = 1200, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "imacsr_cli", *args], cwd=cwd, env=env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def _run_dir(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "results" / "runs" / run_id


def _sacct(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True,
                         timeout=60).stdout.strip()
    return out.split()[0] if out else ""


def _now(job_id: str) -> str:
    """A live job's state (squeue: sacct may not list a pending job yet), else sacct's."""
    from imacsr_cli.launch.slurm import job_state

    return job_state(job_id) or ""


def _job(store: Store, run_id: str) -> str | None:
    handle = store.get(run_id).handle
    return handle.split(":", 1)[1] if handle and handle.startswith("slurm:") else None


def _ids(url: str, grid: str, n: int) -> list[str]:
    from imacsr_cli.errors import NotFound

    try:
        with Store.open(url, create=False) as store:
            ids = store.grid_run_ids(grid)
    except NotFound:
        return []
    return ids if len(ids) == n else []


def _has_gpus() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, timeout=60).stdout
    return "gpu" in out


def test_a_four_run_grid_through_slurm_then_nothing_twice(tmp_path, pg_url):
    gpus = 1 if _has_gpus() else 0
    path = grid_file(tmp_path, "four", seeds=(0, 1, 2, 3),
                     extra=f'\n[slurm]\ntime = "0:30:00"\ncpus_per_task = 1\nmem = "512M"\ngpus = {gpus}\n')
    plain = GridSpec.from_text(path.read_text().split("\n[slurm]")[0], default_name="four")
    r = _run(["run-grid", "four.toml", "--db", pg_url, "--executor", "slurm", "--max-jobs", "2"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "slots: up to 2 Slurm jobs at once (default partition, time 30 min" in r.stdout
    assert "grid four: 4/4 succeeded — 4 trainers started" in r.stdout
    with Store.open(pg_url) as store:
        ids = store.grid_run_ids("four")
        # the [slurm] table changes where runs run, never what they are
        assert sorted(ids) == sorted(row.run_id for row in plain.expand())
        jobs = [_job(store, i) for i in ids]
        assert all(jobs) and len(set(jobs)) == 4  # one Slurm job per run, its id stored as the handle
        for run_id, job in zip(ids, jobs):
            assert store.get(run_id).state == "succeeded" and store.get(run_id).trainer_pid is None
            assert _sacct(job) == "COMPLETED"
            launch = [ln for ln in (_run_dir(tmp_path, run_id) / "trainer.out").read_text().splitlines()
                      if ln.startswith("--- ")]
            # the trainer ran inside the job, with the allocation's environment (not replaced wholesale)
            assert len(launch) == 1 and f"launch in Slurm job {job} " in launch[0]
            if gpus:  # one of the node's two (fake) GPUs, set by Slurm from the allocation
                assert re.search(r"CUDA_VISIBLE_DEVICES='[01]'\)", launch[0]), launch[0]
    again = _run(["run-grid", "four.toml", "--db", pg_url, "--executor", "slurm"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 runs — 0 new, 4 already done" in again.stdout and "0 trainers started" in again.stdout


def test_kill_9_of_the_scheduler_then_a_restart_reattaches_to_its_jobs(tmp_path, pg_url):
    grid_file(tmp_path, "k9s", seeds=(0, 1), epochs=3)
    args = ["run-grid", "k9s.toml", "--db", pg_url, "--executor", "slurm", "--max-jobs", "2", "--lease", "30"]
    p = _cli(args, tmp_path, IMACSR_TEST_FAULT="slow@2")
    ids = wait_for(lambda: _ids(pg_url, "k9s", 2), 600, "enqueue", proc=p)
    with Store.open(pg_url) as store:
        wait_for(lambda: all(store.get(i).epoch >= 1 for i in ids), 600, "epoch 1 of both runs", proc=p)
        jobs = [_job(store, i) for i in ids]
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert [_now(j) for j in jobs] == ["RUNNING", "RUNNING"]  # a Slurm job outlives its scheduler
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 trainers started" in r.stdout  # nothing submitted again
    for run_id, job in zip(ids, jobs):
        assert f"{run_id} re-attached to slurm:{job}" in r.stdout
    with Store.open(pg_url) as store:
        for run_id, job in zip(ids, jobs):
            assert store.get(run_id).state == "succeeded" and _job(store, run_id) == job
            kinds = store.run_events(run_id)["kind"].tolist()
            assert kinds.count("claimed") == 1 and kinds.count("adopted") == 1 and "reclaimed" not in kinds, kinds
            # every epoch recorded once, including the ones the job trained while no scheduler watched
            assert store.metrics_frame([run_id], split="train", names=["loss"])["epoch"].tolist() == [1, 2, 3]
            assert len(starts(_run_dir(tmp_path, run_id))) == 1  # trained once


class _StateTrace:
    """What squeue and sacct said of a job, each change with its time: a drill that fails under load
    says what Slurm showed the scheduler (the assertion messages print it). It only observes."""

    def __init__(self, job: str):
        self.job, self.lines, self._stop = job, [], threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last = None
        while not self._stop.is_set():
            q = subprocess.run(["squeue", "-h", "-j", self.job, "-o", "%T|%r"], capture_output=True, text=True,
                               timeout=60)
            a = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State,ExitCode", "-j", self.job],
                               capture_output=True, text=True, timeout=60)
            now = f"squeue={q.stdout.strip() or q.stderr.strip()[:60]!r} sacct={a.stdout.strip()!r}"
            if now != last:
                self.lines.append(f"{time.monotonic() - self._t0:7.1f} s  {now}")
                last = now
            self._stop.wait(0.3)

    def close(self) -> str:
        self._stop.set()
        self._thread.join(timeout=120)
        return "\n".join(self.lines)


def _explain(tmp_path: Path, run_id: str, store: Store, out: str, err: str, trace: _StateTrace) -> str:
    """Everything a failed drill leaves: the run's store events, its trainer's events, the grid's output
    and Slurm's states over time."""
    ev = store.run_events(run_id)
    rows = "\n".join(f"  {k}: {d}" for k, d in zip(ev["kind"], ev["detail"]))
    trainer = "\n".join(f"  {e}" for e in events(_run_dir(tmp_path, run_id)))
    stdout = _run_dir(tmp_path, run_id) / "trainer.out"
    printed = stdout.read_text(errors="replace")[-4000:] if stdout.exists() else "(none)"
    return (f"\nstore events:\n{rows}\ntrainer events:\n{trainer}\ntrainer.out:\n{printed}\nrun-grid stdout:\n"
            f"{out}\nstderr:\n{err[-3000:]}\nSlurm states:\n{trace.close()}")


def _resumes_follow_checkpoints(run_dir: Path) -> list[int]:
    """Each start's resumed_from, checked against the epochs finished before it (the checkpoint)."""
    done, resumed = 0, []
    for e in events(run_dir):
        if e["event"] == "start":
            assert e["resumed_from"] == done, (e, done)
            resumed.append(e["resumed_from"])
        elif e["event"] == "epoch":
            done = max(done, int(e["epoch"]))
    return resumed


def test_scontrol_requeue_of_a_running_job_resumes_from_its_checkpoint(tmp_path, pg_url):
    grid_file(tmp_path, "rq", epochs=3)
    p = _cli(["run-grid", "rq.toml", "--db", pg_url, "--executor", "slurm", "--retries", "0"], tmp_path,
             IMACSR_TEST_FAULT="slow@2:once")
    (run_id,) = wait_for(lambda: _ids(pg_url, "rq", 1), 600, "enqueue", proc=p)
    with Store.open(pg_url) as store:
        wait_for(lambda: store.get(run_id).epoch >= 1, 600, "epoch 1", proc=p)
        job = _job(store, run_id)
    trace = _StateTrace(job)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    # A requeued job waits (BeginTime) before it is eligible again; let it start now.
    wait_for(lambda: _now(job) in ("PENDING", "REQUEUED"), 600, "the job to be requeued", proc=p)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False, timeout=60)
    out, err = p.communicate(timeout=1200)
    with Store.open(pg_url) as store:
        why = _explain(tmp_path, run_id, store, out, err, trace)
        assert p.returncode == 0, why
        # the same job, requeued
        assert store.get(run_id).state == "succeeded" and _job(store, run_id) == job, why
        kinds = store.run_events(run_id)["kind"].tolist()
        assert kinds.count("claimed") == 1 and "requeued" not in kinds and "failed" not in kinds, why
        assert store.metrics_frame([run_id], split="train", names=["loss"])["epoch"].tolist() == [1, 2, 3], why
    resumed = _resumes_follow_checkpoints(_run_dir(tmp_path, run_id))
    assert len(resumed) == 2 and resumed[1] >= 1, why  # resumed from its checkpoint, not from scratch


SLOW_GRID = """
[grid]
name = "limit"
seeds = [0]
[base]
model.name = "deeplabv3plus"
data.name = "synthetic"
data.train_size = [32, 32]
data.eval_size = [32, 32]
data.num_train = 40
data.num_val = 2
train.epochs = 3
train.batch_size = 2
points.count = 2
points.position = "input"
points.spacing = 1
[slurm]
time = 3
signal_delay_s = 120
"""


def test_a_time_limit_shorter_than_the_run_checkpoints_requeues_and_succeeds(tmp_path, pg_url):
    # Epoch 2 sleeps 2 s a step (20 steps) on the first attempt only. Slurm warns the job (USR2, 120 s
    # before its 3-minute limit, so during that slow epoch on an idle machine): the trainer checkpoints,
    # submitit requeues the job; or Slurm ends it with TIMEOUT and the scheduler requeues the run.
    (tmp_path / "limit.toml").write_text(SLOW_GRID)
    p = _cli(["run-grid", "limit.toml", "--db", pg_url, "--executor", "slurm", "--retries", "0"], tmp_path,
             IMACSR_TEST_FAULT="slow@2:once")
    (run_id,) = wait_for(lambda: _ids(pg_url, "limit", 1), 600, "enqueue", proc=p)
    with Store.open(pg_url) as store:
        job = wait_for(lambda: _job(store, run_id), 600, "the job's submission", proc=p)
    trace = _StateTrace(job)
    wait_for(lambda: _now(job) == "RUNNING", 600, "the job to run", proc=p)

    def requeued_or_done() -> bool:
        # A job that requeued itself waits (BeginTime, about 2 min) before it is eligible again: let it
        # start now. A job that Slurm ended instead is followed by a new submission, which needs nothing.
        if _now(job) == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False, timeout=60)
            return True
        return p.poll() is not None

    wait_for(requeued_or_done, 1200, "the job to be requeued or the grid to end")
    out, err = p.communicate(timeout=1200)
    with Store.open(pg_url) as store:
        why = _explain(tmp_path, run_id, store, out, err, trace)
        assert p.returncode == 0, why  # with --retries 0: succeeded without spending a retry
        assert store.get(run_id).state == "succeeded", why
        ev = store.run_events(run_id)
        assert "failed" not in set(ev["kind"]), why
        assert not any("retry" in str(d) for d in ev["detail"]), why
        assert store.metrics_frame([run_id], split="train", names=["loss"])["epoch"].tolist() == [1, 2, 3], why
    run_dir = _run_dir(tmp_path, run_id)
    resumed = _resumes_follow_checkpoints(run_dir)
    assert len(resumed) >= 2, why  # interrupted by the time limit and started again
    ends = [e for e in events(run_dir) if e["event"] == "end"]
    assert ends[0]["status"] != "succeeded" and ends[-1]["status"] == "succeeded", why


def test_runs_cancel_of_a_pending_and_of_a_running_job(tmp_path, pg_url):
    # cpus_per_task = every CPU of the node: one job runs, the other waits in Slurm's queue.
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=60).stdout.split()[0])
    grid_file(tmp_path, "cx", seeds=(0, 1), epochs=3, extra=f"\n[slurm]\ncpus_per_task = {cpus}\n")
    p = _cli(["run-grid", "cx.toml", "--db", pg_url, "--executor", "slurm", "--max-jobs", "2"], tmp_path,
             IMACSR_TEST_FAULT="slow@2")
    ids = wait_for(lambda: _ids(pg_url, "cx", 2), 600, "enqueue", proc=p)
    with Store.open(pg_url) as store:
        wait_for(lambda: all(_job(store, i) for i in ids), 300, "both jobs submitted", proc=p)
        jobs = {i: _job(store, i) for i in ids}
        running = wait_for(lambda: [i for i in ids if _now(jobs[i]) == "RUNNING"], 600, "one job running", proc=p)[0]
        (pending,) = [i for i in ids if i != running]
        assert _now(jobs[pending]) == "PENDING"
        wait_for(lambda: starts(_run_dir(tmp_path, running)), 600, "the running trainer's start", proc=p)
        for run_id in (pending, running):
            c = _run(["runs", "cancel", run_id, "--db", pg_url], tmp_path)
            assert c.returncode == 0, c.stdout + c.stderr
        out, err = p.communicate(timeout=600)
        assert p.returncode == 1, out + err  # not every run succeeded
        assert [store.get(i).state for i in (pending, running)] == ["cancelled", "cancelled"]
    assert _sacct(jobs[pending]) == "CANCELLED"
    assert not starts(_run_dir(tmp_path, pending))  # scancel'ed before it ever started
    ends = [e for e in events(_run_dir(tmp_path, running)) if e["event"] == "end"]
    assert ends and ends[-1].get("reason") == "interrupted"  # the running trainer got SIGTERM and stopped
    assert re.search(rf"{pending}.*cancel", out) and re.search(rf"{running}.*cancel", out)
