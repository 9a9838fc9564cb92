"""How the Slurm executor reads job states, on scripted ``sacct``/``squeue``/``scancel`` commands.

The real single-node Slurm of tests/cluster cannot be made to show the transients these cases are
about on demand: a controller too busy to answer squeue, and a self-requeueing job that sacct already
lists as CANCELLED. Here the three commands are small scripts on PATH that print what a state file
says, so each case is exact; the code under test (job_states, SlurmMonitor, SlurmJob.poll) is the
shipped one, unpatched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from orchhelp import wait_for

from imacsr_cli.launch.executor import Slot
from imacsr_cli.launch.slurm import WARNING_SIGNAL, SlurmJob, SlurmMonitor, job_state, job_states
from imacsr_cli.rundir import End, RunPaths
from imacsr_cli.rundir.events import EventWriter

# Each command prints its file in the state directory; squeue exits with squeue.rc (and squeue.err on
# stderr) when those exist; scancel appends its arguments to scancel.log.
SCRIPTS = {
    "sacct": 'cat "$FAKE_SLURM/sacct.out"\n',
    "squeue": ('[ -f "$FAKE_SLURM/squeue.err" ] && cat "$FAKE_SLURM/squeue.err" >&2\n'
               'cat "$FAKE_SLURM/squeue.out"\nexit "$(cat "$FAKE_SLURM/squeue.rc" 2>/dev/null || echo 0)"\n'),
    "scancel": 'echo "$@" >> "$FAKE_SLURM/scancel.log"\n',
}


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in SCRIPTS.items():
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    say(state, sacct="", squeue="")
    return state


def say(state: Path, sacct: str | None = None, squeue: str | None = None, squeue_rc: int = 0,
        squeue_err: str = "") -> None:
    if sacct is not None:
        (state / "sacct.out").write_text(sacct)
    if squeue is not None:
        (state / "squeue.out").write_text(squeue)
    (state / "squeue.rc").write_text(str(squeue_rc))
    (state / "squeue.err").write_text(squeue_err)


def test_squeue_overrides_sacct_for_a_job_the_controller_holds_live(slurm):
    say(slurm, sacct="7|CANCELLED by 0|0:15\n8|COMPLETED|0:0\n", squeue="7|PENDING\n")
    assert job_states(["7", "8"]) == {"7": ("PENDING", ""), "8": ("COMPLETED", "0:0")}


def test_no_answer_from_squeue_means_no_states_not_ended_jobs(slurm):
    say(slurm, sacct="7|CANCELLED by 0|0:15\n", squeue="", squeue_rc=1,
        squeue_err="slurm_load_jobs error: Socket timed out on send/recv operation\n")
    assert job_states(["7"]) is None


def test_an_unknown_job_id_is_an_answer(slurm):
    # squeue -j of one job the controller has purged exits 1 with this message: the job is not live.
    say(slurm, sacct="7|COMPLETED|0:0\n", squeue="", squeue_rc=1,
        squeue_err="slurm_load_jobs error: Invalid job id specified\n")
    assert job_states(["7"]) == {"7": ("COMPLETED", "0:0")}
    assert job_state("7") == "COMPLETED"


def test_the_monitor_publishes_an_end_only_when_two_reads_agree(slurm):
    monitor = SlurmMonitor(poll=3600)
    monitor.close()  # no thread: each refresh below is one read
    monitor.watch("7")
    say(slurm, sacct="7|RUNNING|0:0\n", squeue="7|RUNNING\n")
    monitor.refresh()
    assert monitor.state("7") == ("RUNNING", "")
    say(slurm, sacct="7|CANCELLED by 0|0:15\n", squeue="")  # a requeue's passing moment
    monitor.refresh()
    assert monitor.state("7") == ("RUNNING", "")
    say(slurm, sacct="7|CANCELLED by 0|0:15\n", squeue="7|PENDING\n")
    monitor.refresh()
    assert monitor.state("7") == ("PENDING", "")
    say(slurm, sacct="7|FAILED|1:0\n", squeue="")
    monitor.refresh()
    assert monitor.state("7") == ("PENDING", "")
    say(slurm, squeue="", squeue_rc=1, squeue_err="Socket timed out\n")  # no answer: no read at all
    monitor.refresh()
    assert monitor.state("7") == ("PENDING", "")
    say(slurm, squeue="")
    monitor.refresh()
    assert monitor.state("7") == ("FAILED", "1:0")


def _job(tmp_path: Path, monitor: SlurmMonitor, end: End | None) -> SlurmJob:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    job = SlurmJob(run_id="r1", paths=paths, slot=Slot(0), job_id="7", monitor=monitor, started=0.0)
    if end is not None:
        writer = EventWriter(paths.events)
        writer.emit(end)
    return job


def test_a_trainer_stopped_by_slurms_warning_in_a_job_that_was_not_requeued_goes_back_to_the_queue(slurm, tmp_path):
    monitor = SlurmMonitor(poll=0.05)
    try:
        job = _job(tmp_path, monitor, End(status="interrupted", reason="interrupted", message="received SIGUSR2",
                                          exit_code=6, signal=WARNING_SIGNAL))
        monitor.watch("7")
        say(slurm, sacct="7|COMPLETED|0:0\n", squeue="")
        code = wait_for(lambda: job.poll(), what="the job's end")
        assert code == 6 and job.end_state == "COMPLETED"
        assert job.requeue_reason == "Slurm warned job 7 and ended it (COMPLETED)"
        # The job id must not come back by itself while imacsr requeues the run: scancel once.
        wait_for(lambda: (slurm / "scancel.log").exists(), what="scancel")
        job.poll()
        assert (slurm / "scancel.log").read_text() == "7\n"
    finally:
        monitor.close()


def _ended_after_a_foreign_sigterm(slurm: Path, tmp_path: Path) -> tuple[SlurmMonitor, SlurmJob]:
    """Job 7, whose trainer ended "received SIGTERM" (not imacsr's signal), read COMPLETED twice by a
    monitor without a thread (each refresh is one read)."""
    monitor = SlurmMonitor(poll=3600)
    monitor.close()
    job = _job(tmp_path, monitor, End(status="interrupted", reason="interrupted", message="received SIGTERM",
                                      exit_code=6, signal="SIGTERM"))
    monitor.watch("7")
    say(slurm, sacct="7|COMPLETED|0:0\n", squeue="")
    monitor.refresh()
    monitor.refresh()
    return monitor, job


def test_a_requeue_passing_through_an_ended_state_keeps_its_job(slurm, tmp_path):
    # scontrol requeue of a running job under load: the trainer ends "received SIGTERM" (not imacsr's
    # signal), the job reads COMPLETED twice, then PENDING again. It is the same job: not concluded,
    # not cancelled, and its result is the run's.
    monitor, job = _ended_after_a_foreign_sigterm(slurm, tmp_path)
    try:
        assert monitor.state("7") == ("COMPLETED", "0:0")  # published: two reads agree
        for _ in range(job.settle_reads - 1):
            assert job.poll() is None
            monitor.refresh()
        say(slurm, sacct="7|PENDING|0:0\n", squeue="7|PENDING\n")
        monitor.refresh()
        assert job.poll() is None and job.end_state is None and job.requeue_reason is None  # nothing scancelled
        say(slurm, sacct="7|COMPLETED|0:0\n", squeue="")  # it ran again and finished
        job.paths.result.write_text("{}")
        monitor.refresh()
        monitor.refresh()
        assert job.poll() == 0 and job.requeue_reason is None
    finally:
        monitor.close()


def test_an_end_after_a_foreign_signal_is_believed_once_it_has_stood_its_reads(slurm, tmp_path):
    monitor, job = _ended_after_a_foreign_sigterm(slurm, tmp_path)
    for _ in range(job.settle_reads):
        assert job.poll() is None
        monitor.refresh()
    assert job.poll() == 6 and job.requeue_reason == "Slurm warned job 7 and ended it (COMPLETED)"


@pytest.mark.parametrize("end, state, reason", [
    (End(status="interrupted", reason="interrupted", message="received SIGTERM", exit_code=6, signal="SIGTERM"),
     "CANCELLED", "Slurm warned job 7 and ended it (CANCELLED)"),
    # the events of a trainer from before End.signal: the signal is read from the message
    (End(status="interrupted", reason="interrupted", message="received SIGTERM", exit_code=6), "CANCELLED",
     "Slurm warned job 7 and ended it (CANCELLED)"),
    # stopped by its own parent watch (imacsr's stop, not a signal from outside): judged by its exit code
    (End(status="interrupted", reason="interrupted", message="parent process 12 gone", exit_code=6), "CANCELLED",
     None),
    (End(status="failed", reason="crashed", message="boom", exit_code=1), "FAILED", None),
    (None, "TIMEOUT", "Slurm ended job 7 with TIMEOUT"),
])
def test_other_ends_keep_their_meaning(slurm, tmp_path, end, state, reason):
    monitor = SlurmMonitor(poll=0.05)
    try:
        job = _job(tmp_path, monitor, end)
        monitor.watch("7")
        say(slurm, sacct=f"7|{state}|0:0\n", squeue="")
        code = wait_for(lambda: job.poll(), what="the job's end")
        assert code == (end.exit_code if end else 1)
        assert job.requeue_reason == reason
    finally:
        monitor.close()


def test_a_job_with_its_result_succeeded_and_is_not_cancelled(slurm, tmp_path):
    monitor = SlurmMonitor(poll=0.05)
    try:
        job = _job(tmp_path, monitor, None)
        job.paths.result.write_text("{}")
        monitor.watch("7")
        say(slurm, sacct="7|COMPLETED|0:0\n", squeue="")
        assert wait_for(lambda: job.poll() == 0, what="the job's end")
        assert not (slurm / "scancel.log").exists()
    finally:
        monitor.close()
