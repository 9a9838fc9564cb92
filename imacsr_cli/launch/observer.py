"""What a Scheduler tells the world: the state of each active run, the Observer it reports to, and
the outcome of a grid (with run-grid's exit code).

The scheduler prints nothing; the CLI (cli/grid.py) implements an Observer that renders progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from imacsr_cli.launch.classify import Outcome
from imacsr_cli.launch.executor import Job, Slot
from imacsr_cli.rundir import End, RunPaths
from imacsr_cli.store import RunRecord


@dataclass
class ActiveRun:
    """A run whose trainer this scheduler started, as the display shows it."""

    run: RunRecord
    job: Job
    paths: RunPaths
    attempt: int
    launched: float  # time.time() at submit
    log_offset: int  # size of train.log at launch: this attempt's lines come after it
    offset: int = 0  # read position in events.jsonl
    last_progress: float = field(default_factory=time.monotonic)
    first_event: bool = False  # an event of this launch was read (--timeout counts from it)
    epochs: int = 0
    epoch: int = 0  # last finished epoch
    current: int = 0  # epoch in progress (1-based)
    step: int = 0
    steps: int = 0
    phase: str = "starting"
    loss: float | None = None
    miou: float | None = None  # a fraction, as events carry it; displays: imacsr_cli/units.py
    resumed_from: int | None = None
    started_at: float | None = None  # time of this attempt's start event
    end: End | None = None  # this attempt's end event
    stop_reason: str | None = None  # shutdown | timeout | lost
    stop_at: float = 0.0  # monotonic time of the SIGTERM
    killed: bool = False
    timeout_msg: str | None = None
    recorded: bool = False  # its success is in the database already (the process may still be exiting)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def slot(self) -> Slot:
        return self.job.slot

    def fraction(self) -> float:
        """How much of the run is done (0..1), counting the epoch in progress."""
        if not self.epochs:
            return 0.0
        partial = self.step / self.steps if self.steps and self.current > self.epoch else 0.0
        return min(1.0, (self.epoch + partial) / self.epochs)

    def shown_epoch(self) -> int:
        """The epoch to show: the one in progress (1-based) while it runs, else the last finished one."""
        if self.current > self.epoch:
            return self.current
        if self.started_at is not None and self.epoch < self.epochs:  # the next epoch runs (no heartbeat yet)
            return self.epoch + 1
        return self.epoch

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from this attempt's pace (a resumed run's earlier epochs do not count)."""
        if self.started_at is None or not self.epochs:
            return None
        now = time.time() if now is None else now
        start_fraction = (self.resumed_from or 0) / self.epochs
        done = self.fraction() - start_fraction
        if done <= 0:
            return None
        return (now - self.started_at) * (1.0 - self.fraction()) / done


def grid_eta(active: list[ActiveRun], queued: int, parallel: int, now: float | None = None) -> float | None:
    """Seconds until this invocation has run its active and queued runs, at the pace of the active ones
    (seconds per whole run, start-up included, averaged), ``parallel`` at a time; never less than the
    longest active run's own ETA. None until some run has made progress."""
    now = time.time() if now is None else now
    paces = []
    for a in active:
        if a.started_at is None or not a.epochs:
            continue
        done = a.fraction() - (a.resumed_from or 0) / a.epochs
        if done > 0:
            paces.append((now - a.started_at) / done)
    if not paces:
        return None
    per_run = sum(paces) / len(paces)
    left = sum(1.0 - a.fraction() for a in active) + max(0, queued)
    longest = max((a.eta(now) or 0.0) for a in active)
    return max(left * per_run / max(1, parallel), longest)


class Observer:
    """What the scheduler reports. Every method is a no-op here; the CLI overrides what it renders."""

    def launched(self, active: ActiveRun) -> None:
        """A trainer was started for ``active`` (attempt ``active.attempt``)."""

    def started(self, active: ActiveRun) -> None:
        """The trainer's start event arrived (``active.resumed_from`` > 0 for a resumed run)."""

    def epoch(self, active: ActiveRun) -> None:
        """An epoch finished and was recorded."""

    def finished(self, run_id: str, outcome: Outcome, note: str = "") -> None:
        """A run ended for this invocation: succeeded, failed, cancelled, or went back to the queue
        (``outcome.verdict == "requeue"``); ``note`` says what happens next ("retry 1/2"...)."""

    def note(self, text: str, run_id: str | None = None) -> None:
        """Anything else worth a line: reclaimed orphans, ingested results, stopping..."""

    def tick(self, counts: dict[str, int], active: list[ActiveRun]) -> None:
        """Called about once a second with the grid's counts by state and the active runs."""


@dataclass
class GridOutcome:
    counts: dict[str, int]  # Store.plan(grid) at the end
    stopped_by: int | None = None  # the signal that stopped the scheduler, if one did
    disk_full: str | None = None  # why the scheduler stopped launching: a trainer found the disk full

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by  # 130 for SIGINT, 143 for SIGTERM: the shell convention
        total = self.counts.get("total", 0)
        return 0 if self.counts.get("succeeded", 0) == total else 1

