"""TrainerTask, the callable a Slurm job runs, in this process (no Slurm needed): before it starts the
trainer it waits for an earlier attempt's trainer to let go of RUN_DIR's lock (a requeued job starts
again while that one may still be exiting). The lock holders are real processes holding a real flock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imacsr_cli.launch.slurm import TrainerTask, wait_for_unlocked
from imacsr_cli.rundir import RunPaths

# Holds RUN_DIR/.lock (its pid in the file, as a trainer writes it), says so on stdout, then lets go
# when trainer.out contains argv[2] (never, for an empty argv[2]: then it waits for its stdin to close).
HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1] + "/.lock", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
print("held", flush=True)
out = sys.argv[1] + "/trainer.out"
if not sys.argv[2]:
    sys.stdin.read()
while sys.argv[2] and not (os.path.exists(out) and sys.argv[2] in open(out).read()):
    time.sleep(0.05)
"""
# Stands in for the trainer: says whether RUN_DIR's lock was free when it started.
PROBE = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1] + "/.lock", os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("trainer started: RUN_DIR free")
except BlockingIOError:
    print("trainer started: RUN_DIR locked")
"""


def _holder(run_dir: Path, release_on: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), release_on], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "held\n"  # the lock is held from here on
    return p


def _lines(run_dir: Path) -> list[str]:
    """trainer.out, each of the task's own lines ("--- <date> <time> <text>") as its text."""
    return [ln.split(" ", 3)[-1] if ln.startswith("--- ") else ln
            for ln in RunPaths(run_dir).stdout.read_text().splitlines()]


def _task(run_dir: Path) -> TrainerTask:
    paths = RunPaths(run_dir)
    return TrainerTask([sys.executable, "-c", PROBE, str(run_dir)], str(paths.stdout), str(run_dir))


def test_the_task_waits_for_an_earlier_attempts_trainer_to_release_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMACSR_CHECKPOINT_WAIT_S", "600")  # a bound on a hang, not a speed requirement
    holder = _holder(tmp_path, release_on="waiting up to")  # lets go once the task says it waits
    try:
        assert _task(tmp_path)() == 0
        assert holder.wait(timeout=600) == 0
    finally:
        holder.kill()
        holder.wait()
    lines = _lines(tmp_path)
    assert lines[0].startswith("launch in Slurm job ")
    assert lines[1:] == [f"RUN_DIR is locked by pid {holder.pid} (an earlier attempt still exiting?); waiting up to 600 s",
                         "RUN_DIR is free", "trainer started: RUN_DIR free"]


def test_a_lock_that_outlasts_the_wait_starts_the_trainer_anyway(tmp_path, monkeypatch):
    monkeypatch.setenv("IMACSR_CHECKPOINT_WAIT_S", "5")  # the least it takes
    holder = _holder(tmp_path, release_on="")  # never lets go while the task runs
    try:
        assert _task(tmp_path)() == 0
    finally:
        holder.kill()
        holder.wait()
    lines = _lines(tmp_path)
    assert lines[1:] == [f"RUN_DIR is locked by pid {holder.pid} (an earlier attempt still exiting?); waiting up to 5 s",
                         "RUN_DIR is still locked: starting the trainer anyway (it exits 'locked' and the "
                         "scheduler takes the run back)", "trainer started: RUN_DIR locked"]


def test_a_first_attempt_does_not_wait(tmp_path):
    assert wait_for_unlocked(RunPaths(tmp_path), 600) is None  # no lock file: never locked
    assert _task(tmp_path)() == 0
    lines = _lines(tmp_path)
    assert len(lines) == 2 and lines[1] == "trainer started: RUN_DIR free"


@pytest.mark.parametrize("content, pid", [("4242\n", 4242), ("", 0)])
def test_a_look_at_a_held_lock_names_its_holder(tmp_path, content, pid):
    holder = _holder(tmp_path, release_on="")
    try:
        (tmp_path / ".lock").write_text(content)  # what the holder wrote (or nothing: a full disk)
        assert wait_for_unlocked(RunPaths(tmp_path), 0) == pid
    finally:
        holder.kill()
        holder.wait()
    assert wait_for_unlocked(RunPaths(tmp_path), 600) is None  # free once its holder is gone
