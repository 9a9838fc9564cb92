"""Scheduler: claim → submit → watch → record, until the runs of one grid are finished.

One loop, one thread, no blocking calls but short database writes: every ``poll`` seconds it

1. fills each free slot with a run claimed atomically from the store (a run whose RUN_DIR already
   holds its result.json is ingested as succeeded instead of trained again: the result file is the
   truth; a result.json that is another run's, empty or corrupt fails the run with reason bad_result);
2. tails each active run's events.jsonl and records every finished epoch (Store.record_epoch), so
   ``imacsr status`` elsewhere is live;
3. classifies each trainer that exited (classify.py) and finishes, retries or requeues its run;
4. kills a trainer that made no progress for ``timeout`` seconds (no new event: heartbeat silence
   counts as a hang), counted from its first event (it heartbeats during start-up; until its first
   event, interpreter and torch start-up get at least STARTUP_ALLOWANCE_S);
5. renews its lease on the runs it owns (Store.heartbeat) and reclaims runs whose owner is gone
   (Store.reclaim_orphans: dead scheduler pid on this host, or a heartbeat older than the lease).

Why kill -9 of the scheduler loses nothing and trains nothing twice:

- metrics reach the database as each epoch ends, and re-ingesting an epoch is idempotent;
- the trainers notice their parent is gone (IMACSR_PARENT_PID) and stop with their checkpoint intact;
- the next scheduler reclaims the dead owner's runs (pid check) and resumes them from the checkpoint;
  a run whose result.json exists is ingested, not retrained (the trainer, too, exits at once then);
- the trainer's flock on RUN_DIR means two trainers never write one directory: a second one exits 5
  ("locked"), and the run goes back to the queue for a few seconds instead of failing.

The scheduler prints nothing: it reports to an ``Observer`` (observer.py; the CLI renders it). The
checks run-grid makes before it enqueues (missing data, orphans) are in plan.py.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

from imacsr_cli import metric_names as mn
from imacsr_cli.errors import ImacsrError, StoreDiskFull
from imacsr_cli.launch import limits
from imacsr_cli.launch.classify import Outcome, classify, tail_lines
from imacsr_cli.launch.executor import Executor, Slot, pid_alive, trainer_of
from imacsr_cli.launch.observer import ActiveRun, GridOutcome, Observer
from imacsr_cli.rundir import (
    HEARTBEAT_SECONDS,
    CheckpointSetAside,
    End,
    Epoch,
    Heartbeat,
    ResultError,
    RunPaths,
    Start,
    codes,
    lock_holder,
    read_events,
    read_result,
    write_spec,
)
from imacsr_cli.store import NotOwner, RunRecord, Store
from imacsr_cli.store.claims import local_ns

LAUNCH_MARK = "--- "  # executor.py starts each launch's section of trainer.out with it
LOCKED_HOLD_S = 3.0  # how long a run whose RUN_DIR was locked waits before it is claimed again
LOCKED_KILL_AFTER = 4  # after this many "locked" exits in a row, SIGKILL the stray local trainer
# Before a trainer's first event (Python and torch start-up, 7-15 s measured on a loaded 2-core machine),
# --timeout is at least this long; from the first event on, --timeout itself.
STARTUP_ALLOWANCE_S = 120.0


class Scheduler:
    """Runs the queued runs of ``grid`` on ``executor``'s slots until none is queued or running."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        grid: str,
        runs_dir: str | Path,
        *,
        timeout: float | None = None,
        retries: int = 0,
        lease: float = limits.DEFAULT_LEASE_S,
        grace: float = 10.0,
        poll: float = limits.DEFAULT_POLL_S,
        observer: Observer | None = None,
    ):
        limits.check_timeout(timeout)
        limits.check_lease(lease, poll)
        limits.check_retries(retries)
        self.store = store
        self.executor = executor
        self.grid = grid
        self.runs_dir = Path(runs_dir).absolute()  # stored in runs.run_dir: valid from any directory
        self.timeout = timeout
        self.retries = retries
        self.lease = lease
        self.grace = grace
        self.poll = poll
        self.observer = observer or Observer()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.ns = local_ns()  # machine + PID namespace: where self.pid means this process
        # A uuid, with a lease row in the schedulers table (host, pid, machine + PID namespace): a pid or a
        # hostname alone is not unique across containers and hosts.
        self.owner = str(uuid.uuid4())
        # A database that is away for less than the lease (a restart, a failover) is waited for.
        store.retry_seconds = max(store.retry_seconds, lease)
        self.active: dict[int, ActiveRun] = {}  # slot index → run
        self._hold: dict[str, float] = {}  # run_id → monotonic time before which it is not claimed
        self._locked: dict[str, int] = {}  # run_id → "locked" exits in a row
        self._oom_gpu: dict[str, str] = {}  # run_id → GPU of its last OOM (retried on another GPU)
        self._stop_signal: int | None = None
        self._disk_full: str | None = None  # a trainer found no space left: launch nothing more
        self._force = False
        self._stopping = False
        # Heartbeats well inside the lease; at least every HEARTBEAT_SECONDS so NotOwner (a cancel or a
        # reclaim) is noticed soon.
        self._hb_every = min(lease / 3.0, HEARTBEAT_SECONDS)
        self._reclaim_every = max(lease / 2.0, 1.0)
        self._next_hb = 0.0
        self._next_reclaim = 0.0
        self._next_tick = 0.0
        self._grid_ids: list[str] = []
        self.launches = 0  # trainers started by this scheduler (tests and the benchmark read it)

    # ---- control ----------------------------------------------------------------------------------
    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop launching, SIGTERM the trainers, requeue their runs, return. Safe in a signal handler
        (it only sets flags); a second request SIGKILLs the trainers without waiting for the grace."""
        if self._stop_signal is not None:
            self._force = True
        else:
            self._stop_signal = signum

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> GridOutcome:
        check_runs_dir(self.runs_dir)
        self.store.register_scheduler(self.owner, host=self.host, pid=self.pid, ns=self.ns,
                                      executor=getattr(self.executor, "name", "local"))
        self._grid_ids = self.store.grid_run_ids(self.grid)
        self._reattach()
        self._reclaim()
        self._next_reclaim = time.monotonic() + self._reclaim_every
        try:
            while True:
                if self._stop_signal is not None and not self._stopping:
                    self._begin_stop()
                if self._force:
                    for a in self.active.values():
                        if not a.killed:
                            a.job.signal(signal.SIGKILL)
                            a.killed = True
                self._watch()
                if not self._stopping and self._disk_full is None:
                    self._fill_slots()  # right after _watch: a slot freed now is filled now
                self._periodic()
                if not self.active:
                    if self._stopping or self._disk_full is not None:
                        break
                    counts = self.store.plan(self.grid)
                    if counts["queued"] == 0 and counts["running"] == 0:
                        break
                time.sleep(self.poll)
        except StoreDiskFull as exc:
            # The database's disk is full, often because a trainer's checkpoint filled it a moment ago
            # (whichever write comes first fails): the same stop as a trainer's disk_full, so a user
            # gets one answer whoever hit it. Trainers are stopped and their runs requeued once the
            # trainers' partial files are gone; a requeue that still finds no space is left to
            # reclaim_orphans on the next start.
            self._disk_full = self._disk_full or f"disk full: no space left for {exc.where} ({exc.detail})"
            self._emergency_stop(codes.DISK_FULL, f"{self._disk_full}; resumes from its checkpoint")
        except BaseException:
            # A bug or a database failure: never leave trainers behind that nobody watches.
            self._emergency_stop()
            raise
        counts = self.store.plan(self.grid)
        try:
            self.store.scheduler_heartbeat(self.owner, ended=True)
        except StoreDiskFull:
            pass  # the lease runs out instead; nothing else is left to record
        self.observer.tick(counts, [])
        return GridOutcome(counts=counts, stopped_by=self._stop_signal, disk_full=self._disk_full)

    def _begin_stop(self) -> None:
        self._stopping = True
        if self.active:
            self.observer.note(f"stopping: SIGTERM to {len(self.active)} trainer(s), waiting up to "
                               f"{self.grace:g} s (again to kill them now)")
        for a in self.active.values():
            self._stop(a, "shutdown")

    def _stop(self, a: ActiveRun, reason: str) -> None:
        if a.stop_reason is None:
            a.stop_reason = reason
            a.stop_at = time.monotonic()
            a.job.signal(signal.SIGTERM)

    def _emergency_stop(self, reason: str = codes.INTERRUPTED,
                        message: str = "scheduler error; resumes from its checkpoint") -> None:
        for a in self.active.values():
            a.job.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(a.job.poll() is None for a in self.active.values()):
            time.sleep(0.1)
        for a in self.active.values():
            a.job.signal(signal.SIGKILL)
            try:
                if not a.paths.result.exists():
                    self.store.requeue(a.run_id, self.owner, reason, message)
            except Exception:  # the database may be what failed; reclaim_orphans will catch up later
                pass

    # ---- 1. claim and launch ----------------------------------------------------------------------
    def _fill_slots(self) -> None:
        free = [s for s in self.executor.slots if s.index not in self.active]
        # A read first: claiming is a write transaction, and idle schedulers should not queue on the lock.
        if not free or not self.store.plan(self.grid)["queued"]:
            return
        for slot in free:
            while slot.index not in self.active:
                run = self._claim(slot)
                if run is None:
                    break  # nothing for this slot (another slot may still take a run it avoids)
                self._launch(run, slot)  # an already finished run is ingested: claim again for this slot

    def _claim(self, slot: Slot) -> RunRecord | None:
        now = time.monotonic()
        self._hold = {r: t for r, t in self._hold.items() if t > now}
        avoid = set(self._hold)
        if slot.gpu is not None and any(s.gpu != slot.gpu for s in self.executor.slots):
            # An OOM is retried on another GPU when there is one (it may have more memory free); on the
            # CPU every slot shares the same memory, so there is nothing to avoid.
            avoid |= {r for r, gpu in self._oom_gpu.items() if gpu == slot.gpu}
        if not avoid:
            return self.store.claim(self.owner, host=self.host, pid=self.pid, ns=self.ns, grid=self.grid)
        allowed = [r for r in self._grid_ids if r not in avoid]
        if not allowed:
            return None
        return self.store.claim(self.owner, host=self.host, pid=self.pid, ns=self.ns, grid=self.grid,
                                run_ids=allowed)

    def _launch(self, run: RunRecord, slot: Slot) -> None:
        paths = RunPaths.of(self.runs_dir, run.run_id)
        if paths.result.exists():
            self._ingest_result(run, paths)
            return
        try:
            write_spec(paths, run.spec)
            log_offset = paths.log.stat().st_size if paths.log.exists() else 0
            job = self.executor.submit(run.run_id, paths, slot)
        except OSError as exc:
            self._finish(run.run_id, Outcome("failed", codes.CRASHED, f"cannot start the trainer: {exc}", None))
            return
        self.launches += 1
        a = ActiveRun(run=run, job=job, paths=paths, attempt=run.attempts, launched=job.started,
                      log_offset=log_offset, epochs=run.epochs, epoch=run.epoch)
        self.active[slot.index] = a
        try:
            self.store.mark_started(run.run_id, self.owner, trainer_pid=job.pid, slot=slot.name, run_dir=paths.root,
                                    handle=getattr(job, "handle", None))
        except NotOwner:  # cancelled between claim and launch
            self._stop(a, "lost")
        self.observer.launched(a)

    def _ingest_result(self, run: RunRecord, paths: RunPaths) -> None:
        """A previous trainer finished this run but nobody recorded it (its scheduler died)."""
        try:
            read_result(paths, run.run_id)
        except (OSError, ResultError) as exc:
            self._finish(run.run_id, Outcome("failed", codes.BAD_RESULT, bad_result_message(run.run_id, exc), None))
            return
        events, _ = read_events(paths.events, 0)
        try:
            for ev in events:
                if isinstance(ev, Epoch):
                    self._record_epoch(run.run_id, ev)
        except NotOwner:
            return
        self._finish(run.run_id, Outcome("succeeded", None, "result.json found: ingested without training", 0))

    # ---- 2. watch ---------------------------------------------------------------------------------
    def _watch(self) -> None:
        for index, a in list(self.active.items()):
            self._read_events(a)
            code = a.job.poll()
            if code is None:
                self._record_early_success(a)
                self._check_progress(a)
                continue
            self._read_events(a)  # whatever it wrote last
            del self.active[index]
            if not a.recorded:
                self._conclude(a, code)

    def _record_early_success(self, a: ActiveRun) -> None:
        """Record a success as soon as the trainer says so and result.json exists, not when the process
        has exited (interpreter teardown takes a while): `imacsr status` is that much more current.
        The slot stays busy until the process is gone."""
        if (a.recorded or a.end is None or a.end.status != "succeeded" or a.stop_reason == "lost"
                or not a.paths.result.exists()):
            return
        a.recorded = True
        self._finish(a.run_id, Outcome("succeeded", None, "", a.end.exit_code or codes.EXIT_OK))

    def _read_events(self, a: ActiveRun) -> None:
        events, a.offset = read_events(a.paths.events, a.offset)
        for ev in events:
            current = ev.time >= a.launched - 1.0  # not from an earlier attempt
            if current:
                a.last_progress = time.monotonic()
                a.first_event = True
            if isinstance(ev, Epoch):
                if a.stop_reason != "lost":
                    try:
                        self._record_epoch(a.run_id, ev)
                    except NotOwner:
                        self._lost(a)
                a.epoch = max(a.epoch, ev.epoch)
                a.epochs = ev.epochs or a.epochs
                a.loss = ev.train.get(mn.LOSS, a.loss)
                a.miou = ev.val.get(mn.MIOU, a.miou)
                if current:
                    self.observer.epoch(a)
            elif not current:
                continue
            elif isinstance(ev, Start):
                a.resumed_from = ev.resumed_from
                a.epoch = ev.resumed_from
                a.epochs = ev.epochs or a.epochs
                a.started_at = ev.time
                a.phase = "train"
                self.observer.started(a)
            elif isinstance(ev, Heartbeat):
                a.current = ev.epoch or a.current
                a.step = ev.step
                a.steps = ev.steps
                a.phase = ev.phase
                if ev.loss is not None:
                    a.loss = ev.loss
            elif isinstance(ev, End):
                a.end = ev
            elif isinstance(ev, CheckpointSetAside):
                self.observer.note(ev.message or "checkpoint set aside", a.run_id)

    def _record_epoch(self, run_id: str, ev: Epoch) -> None:
        self.store.record_epoch(run_id, self.owner, ev.epoch, ev.train, ev.val, epochs=ev.epochs or None)

    def _check_progress(self, a: ActiveRun) -> None:
        now = time.monotonic()
        if a.stop_reason is not None:
            if not a.killed and now - a.stop_at > self.grace:
                a.job.signal(signal.SIGKILL)
                a.killed = True
            return
        if getattr(a.job, "waiting", False):
            a.last_progress = now  # waiting in Slurm's queue is not a hang: --timeout counts from the trainer
        if self.timeout is None:
            return
        limit = self.timeout if a.first_event else max(self.timeout, STARTUP_ALLOWANCE_S)
        if now - a.last_progress > limit:
            if a.first_event:
                a.timeout_msg = (f"no progress for {self.timeout:g} s (no event in events.jsonl; "
                                 f"last phase {a.phase}, epoch {a.current or a.epoch}/{a.epochs or '?'})")
            else:
                a.timeout_msg = (f"no first event {limit:g} s after the launch: the trainer did not start "
                                 f"(see {a.paths.stdout})")
            self._stop(a, "timeout")

    def _lost(self, a: ActiveRun) -> None:
        """The store says we do not own the run any more (cancelled, or reclaimed after a stall)."""
        if a.stop_reason in (None, "timeout"):
            try:
                state = self.store.get(a.run_id).state
            except ImacsrError:
                state = "gone"
            why = "cancelled" if state == "cancelled" else f"taken from this scheduler (now {state})"
            self.observer.note(f"{why}: stopping its trainer", a.run_id)
            a.stop_reason = None  # a timeout no longer matters: the run is not ours to record
            self._stop(a, "lost")

    # ---- 3. conclude ------------------------------------------------------------------------------
    def _conclude(self, a: ActiveRun, code: int) -> None:
        if a.stop_reason == "lost":
            # Not ours any more: no writes. If it had finished, result.json is there for the next owner.
            self._report_not_ours(a.run_id, code)
            return
        end = a.end if a.end and a.end.time >= a.launched - 1.0 else None
        tail = tail_lines(a.paths.log, since=a.log_offset) or tail_lines(a.paths.stdout, after=LAUNCH_MARK)
        outcome = classify(
            code,
            result_exists=a.paths.result.exists(),
            end_event=end,
            log_tail=tail,
            timed_out=a.timeout_msg,
            stopped=a.stop_reason == "shutdown",
        )
        slurm_end = getattr(a.job, "requeue_reason", None)
        if slurm_end and outcome.verdict != "succeeded" and a.stop_reason is None:
            # TIMEOUT, PREEMPTED, NODE_FAIL...: Slurm ended a healthy run; it resumes from its checkpoint
            # and spends no retry.
            outcome = Outcome("requeue", "interrupted", f"{slurm_end}; resumes from its checkpoint", code)
        if outcome.verdict == "requeue" and outcome.reason == codes.LOCKED:
            self._on_locked(a)
        else:
            self._locked.pop(a.run_id, None)
        if outcome.reason == codes.DISK_FULL and self._disk_full is None:
            self._disk_full = outcome.message
            self.observer.note("disk full: launching no more runs; the running ones finish or stop", a.run_id)
        if outcome.verdict == "failed" and outcome.retryable:
            spent, budget = self._retries_spent(a.run_id), self.retries
            if spent < budget:
                if outcome.reason == codes.OOM and a.slot.gpu is not None:
                    self._oom_gpu[a.run_id] = a.slot.gpu
                note = f"retry {spent + 1}/{budget}"
                try:
                    self.store.requeue(a.run_id, self.owner, outcome.reason or codes.CRASHED,
                                       f"{note} after {outcome.reason}: {outcome.message}", retry=True)
                except NotOwner:
                    self._report_not_ours(a.run_id, code)
                    return
                self._report(a.run_id, Outcome("requeue", outcome.reason, outcome.message, code), note)
                return
        self._finish(a.run_id, outcome)

    def _report_not_ours(self, run_id: str, code: int | None) -> None:
        try:
            state = self.store.get(run_id).state
        except ImacsrError:
            state = "gone"
        if state == "cancelled":
            self._report(run_id, Outcome("cancelled", codes.CANCELLED, "cancelled by the user", code))
        else:
            self.observer.note(f"taken from this scheduler (now {state}); nothing recorded", run_id)

    def _on_locked(self, a: ActiveRun) -> None:
        """Another trainer holds RUN_DIR. If it is a local trainer nobody watches (its scheduler died and
        the parent watch has not fired yet, or it ignores it), end it: we own the run now."""
        n = self._locked.get(a.run_id, 0) + 1
        self._locked[a.run_id] = n
        self._hold[a.run_id] = time.monotonic() + LOCKED_HOLD_S
        holder = lock_holder(a.paths)
        if holder and holder != a.job.pid and trainer_of(holder, a.paths.root):
            sig = signal.SIGKILL if n >= LOCKED_KILL_AFTER else signal.SIGTERM
            try:
                os.kill(holder, sig)
                os.kill(holder, signal.SIGCONT)  # a stopped (SIGSTOP, Ctrl-Z) holder must run to see SIGTERM
                self.observer.note(f"RUN_DIR held by an unwatched trainer (pid {holder}): sent {sig.name}", a.run_id)
            except OSError:
                pass

    def _retries_spent(self, run_id: str) -> int:
        """Retries this run used since it was enqueued or last retried by hand (the ``retries`` column,
        so the budget survives a scheduler restart)."""
        try:
            return self.store.get(run_id).retries
        except ImacsrError:
            return self.retries

    def _finish(self, run_id: str, outcome: Outcome) -> None:
        try:
            if outcome.verdict == "succeeded":
                paths = RunPaths.of(self.runs_dir, run_id)
                try:
                    result = read_result(paths, run_id)
                except (OSError, ResultError) as exc:
                    outcome = Outcome("failed", codes.BAD_RESULT, bad_result_message(run_id, exc), outcome.exit_code)
                else:
                    self.store.finish(run_id, self.owner, "succeeded", message=outcome.message or None,
                                      exit_code=outcome.exit_code, final=result)
                    self._report(run_id, outcome)
                    return
            if outcome.verdict == "requeue":
                self.store.requeue(run_id, self.owner, outcome.reason or codes.INTERRUPTED, outcome.message)
            else:
                self.store.finish(run_id, self.owner, "failed", reason=outcome.reason, message=outcome.message,
                                  exit_code=outcome.exit_code)
        except NotOwner:
            self._report_not_ours(run_id, outcome.exit_code)
            return
        self._report(run_id, outcome)

    def _report(self, run_id: str, outcome: Outcome, note: str = "") -> None:
        # Fresh counts first, so the observer's "[done/total]" includes this run.
        self.observer.tick(self.store.plan(self.grid), list(self.active.values()))
        self.observer.finished(run_id, outcome, note)

    # ---- 5. leases, orphans, display --------------------------------------------------------------
    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next_hb:
            self._next_hb = now + self._hb_every
            self.store.scheduler_heartbeat(self.owner)
            for a in list(self.active.values()):
                if a.stop_reason == "lost" or a.recorded:
                    continue
                try:
                    self.store.heartbeat(a.run_id, self.owner)
                except NotOwner:
                    self._lost(a)
        if now >= self._next_reclaim and not self._stopping:
            self._next_reclaim = now + self._reclaim_every
            self._reattach()  # a live Slurm job of a scheduler that died elsewhere: watch it, do not resubmit
            self._reclaim()
        if now >= self._next_tick:
            self._next_tick = now + 1.0
            self.observer.tick(self.store.plan(self.grid), list(self.active.values()))

    def _reattach(self) -> None:
        """Watch again the live jobs of a dead scheduler (Slurm: its jobs outlive it) instead of requeueing
        and submitting duplicates; what they wrote meanwhile is ingested from events.jsonl."""
        attach = getattr(self.executor, "attach", None)
        if attach is None:
            return
        wanted = set(self._grid_ids)
        for run_id in self.store.orphans(self.lease, pid_alive, host=self.host, ns=self.ns):
            if run_id not in wanted:
                continue
            rec = self.store.get(run_id)
            index = next((s.index for s in self.executor.slots if s.index not in self.active),
                         max([*self.active, len(self.executor.slots) - 1]) + 1)  # over --max-jobs: never a duplicate
            slot = next((s for s in self.executor.slots if s.index == index), Slot(index))
            paths = RunPaths.of(self.runs_dir, run_id)
            job = attach(rec.handle, run_id, paths, slot, rec.started_at)
            if job is None or not self.store.adopt(run_id, self.owner, rec.owner, host=self.host, pid=self.pid,
                                                   ns=self.ns):
                continue
            a = ActiveRun(run=rec, job=job, paths=paths, attempt=rec.attempts, launched=job.started,
                          log_offset=0, epochs=rec.epochs, epoch=rec.epoch)
            self.active[index] = a
            self.observer.note(f"re-attached to {job.handle}: its scheduler is gone, the job is not", run_id)

    def _reclaim(self) -> None:
        for run_id in self.store.reclaim_orphans(self.lease, pid_alive, host=self.host, ns=self.ns):
            self.observer.note("reclaimed: its scheduler is gone; it resumes from its checkpoint", run_id)


def bad_result_message(run_id: str, exc: BaseException) -> str:
    return f"{exc}: not ingested; move it out of the run directory, then retry the run (imacsr runs retry {run_id})"


def check_runs_dir(runs_dir: Path) -> None:
    """RUN_DIR's parent must be writable and support flock (the trainer's lock on RUN_DIR/.lock), on every
    host that shares a database: a clear error now instead of trainers that all fail later."""
    import fcntl
    import tempfile

    hint = "run directories must be on a filesystem every scheduler host sees, with flock (NFSv4, Lustre -o flock)"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        fh = tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".flock-check-")
    except OSError as exc:
        raise ImacsrError(f"--runs-dir {runs_dir} is not writable ({exc.strerror or exc}); {hint}") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError as exc:
            raise ImacsrError(f"--runs-dir {runs_dir}: flock fails ({exc.strerror or exc}); {hint}") from None


__all__ = ["ActiveRun", "GridOutcome", "Observer", "Scheduler", "orphaned"]
