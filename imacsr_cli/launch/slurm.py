"""Slurm as an executor, through submitit: one Slurm job per run; its job id is the run's handle.

- ``SlurmResources``: where a job runs (partition, time, gpus, cpus per task, mem, account, qos, extra
  sbatch flags), from the grid file's ``[slurm]`` table and the CLI. Never part of a RunSpec: resources
  change where a run runs, not its run id.
- ``TrainerTask``: what submitit runs inside the job: ``python -m imacsr_cli.train RUN_DIR`` as a child
  process that inherits the job's environment (SLURM_JOB_ID, CUDA_VISIBLE_DEVICES from the allocation;
  no IMACSR_PARENT_PID: a Slurm job outlives its scheduler on purpose). It is *checkpointable*: near the
  time limit or on preemption Slurm signals the job (``--signal=USR2@signal_delay_s``), the trainer
  checkpoints and exits, and submitit requeues the same job id, which resumes from the checkpoint.
- ``SlurmMonitor``: one thread that asks ``sacct`` for the states of the jobs in flight and runs
  ``scancel``, every command with a timeout, so that the scheduler's loop never waits on Slurm.
- ``SlurmExecutor`` / ``SlurmJob``: the Executor protocol of executor.py. ``poll`` classifies an ended job:
  result.json is the truth; TIMEOUT, PREEMPTED, NODE_FAIL, BOOT_FAIL, DEADLINE (Slurm ended the job, not
  the run's fault) set ``requeue_reason`` so the run goes back to the queue without spending a retry;
  otherwise the exit code is the trainer's own (its end event), else sacct's.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imacsr_cli.errors import ImacsrError, SpecError
from imacsr_cli.launch.executor import Slot, trainer_command
from imacsr_cli.rundir import End, RunPaths, lock_holder, package_root, read_events

#: Keys of a grid file's [slurm] table.
SLURM_KEYS = ("partition", "time", "gpus", "cpus_per_task", "mem", "account", "qos", "signal_delay_s", "extra")
#: States of a job that is not over yet (sacct's words).
LIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED",
                         "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD"})
#: States in which the job waits for an allocation (no trainer runs: waiting is not a hang).
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                            "RESV_DEL_HOLD", "SUSPENDED"})
#: Ends that Slurm imposed on a healthy run: back to the queue, resume from the checkpoint, no retry spent.
REQUEUE_STATES = frozenset({"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"})
#: The signal of Slurm's warning before a time limit or a preemption (``--signal=USR2@N``, submitit's).
WARNING_SIGNAL = signal.SIGUSR2.name
COMMAND_TIMEOUT_S = 30.0  # every sacct / scancel call
POLL_S = 1.0  # how often the monitor asks sacct
#: Reads an end must stand for when the trainer was stopped by a signal imacsr did not send: that is
#: how a requeue looks while it passes (``scontrol requeue``, submitit's own before the time limit),
#: and on a loaded controller the job can read COMPLETED for seconds before it is PENDING again.
SETTLE_READS = 20
MAX_TIME_LIMIT_REQUEUES = 20  # submitit requeues a job that reaches its time limit at most this often
_TIME_RE = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class SlurmResources:
    """What each job of a grid asks Slurm for. ``time`` is in minutes; ``extra`` are sbatch flags
    (``--constraint=a100``) passed as given."""

    partition: str | None = None
    time: int | None = None
    gpus: int = 0
    cpus_per_task: int | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    signal_delay_s: int = 120
    extra: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: dict[str, Any], source: str = "grid") -> SlurmResources:
        """Validate a grid file's [slurm] table (a one-line SpecError naming the file and key)."""
        where = f"{source} [slurm]"
        unknown = [k for k in table if k not in SLURM_KEYS]
        if unknown:
            raise SpecError(f"{where}: unknown key '{unknown[0]}'; expected one of {', '.join(SLURM_KEYS)}")
        out: dict[str, Any] = {}
        for key in ("partition", "mem", "account", "qos"):
            if key in table:
                value = table[key]
                if not isinstance(value, str) or not value.strip():
                    raise SpecError(f"{where}: key '{key}': expected a non-empty string, got {value!r}")
                out[key] = value.strip()
        if "time" in table:
            out["time"] = parse_time(table["time"], f"{where}: key 'time'")
        for key, low in (("gpus", 0), ("cpus_per_task", 1), ("signal_delay_s", 1)):
            if key in table:
                value = table[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise SpecError(f"{where}: key '{key}': expected an integer >= {low}, got {value!r}")
                out[key] = value
        if "extra" in table:
            extra = table["extra"]
            if not isinstance(extra, list) or not all(isinstance(f, str) and f.startswith("--") for f in extra):
                raise SpecError(f"{where}: key 'extra': expected a list of sbatch flags like "
                                f"[\"--constraint=a100\"], got {extra!r}")
            out["extra"] = tuple(extra)
        return cls(**out)

    def override(self, **values: Any) -> SlurmResources:
        """These resources with the CLI's options (None = keep the grid file's)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None and v != ()})

    def submitit_parameters(self) -> dict[str, Any]:
        """``submitit.SlurmExecutor.update_parameters`` arguments."""
        params: dict[str, Any] = {"signal_delay_s": self.signal_delay_s, "stderr_to_stdout": True}
        for key in ("partition", "cpus_per_task", "mem", "account", "qos"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.time is not None:
            params["time"] = self.time
        else:
            params["time"] = 0  # submitit's default is 5 minutes; 0 = no limit of ours (the partition's)
        if self.gpus:
            params["gres"] = f"gpu:{self.gpus}"
        extra: dict[str, Any] = {}
        for flag in self.extra:
            name, eq, value = flag[2:].partition("=")
            extra[name.replace("-", "_")] = value if eq else True
        if extra:
            params["additional_parameters"] = extra
        return params

    def describe(self) -> str:
        parts = [f"partition {self.partition}" if self.partition else "default partition"]
        parts.append(f"time {self.time} min" if self.time else "no time limit of ours")
        if self.gpus:
            parts.append(f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}")
        if self.cpus_per_task:
            parts.append(f"{self.cpus_per_task} CPUs")
        if self.mem:
            parts.append(f"mem {self.mem}")
        for key in ("account", "qos"):
            if getattr(self, key):
                parts.append(f"{key} {getattr(self, key)}")
        parts += list(self.extra)
        return ", ".join(parts)


def parse_time(value: Any, what: str) -> int:
    """Minutes from an integer or a Slurm time string ("90", "1:30:00", "2-00:00:00")."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(f"{what}: expected at least 1 minute, got {value}")
        return value
    m = _TIME_RE.match(str(value).strip()) if isinstance(value, str) else None
    if not m:
        raise SpecError(f"{what}: expected minutes or a Slurm time like \"1:30:00\" or \"2-00:00:00\", got {value!r}")
    days, a, b, c = m.groups()
    if c is not None:  # [D-]H:M:S
        h, mi, s = int(a or 0), int(b), int(c)
    elif a is not None:  # M:S, or D-H:M with days
        h, mi, s = (int(a), int(b), 0) if days else (0, int(a), int(b))
    else:
        h, mi, s = (int(b), 0, 0) if days else (0, int(b), 0)
    minutes = int(days or 0) * 1440 + h * 60 + mi + (1 if s else 0)
    if minutes < 1:
        raise SpecError(f"{what}: expected at least 1 minute, got {value!r}")
    return minutes


# ---- inside the job -------------------------------------------------------------------------------
class TrainerTask:
    """The callable submitit runs in the job: the trainer as a child process; checkpointable."""

    def __init__(self, argv: list[str], stdout: str, run_dir: str | None = None):
        self.argv = argv
        self.stdout = stdout
        self.run_dir = run_dir or str(Path(stdout).parent)  # tasks pickled before run_dir: trainer.out's folder
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"argv": self.argv, "stdout": self.stdout, "run_dir": self.run_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["argv"], state["stdout"], state.get("run_dir"))

    def __call__(self) -> int:
        env = dict(os.environ)  # the job's own: SLURM_*, CUDA_VISIBLE_DEVICES of the allocation
        env.pop("IMACSR_PARENT_PID", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        paths, wait = RunPaths(Path(self.run_dir)), _wait_s()
        with open(self.stdout, "ab") as out:
            def say(line: str) -> None:
                out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
                out.flush()

            say(f"launch in Slurm job {os.environ.get('SLURM_JOB_ID', '?')} on {os.uname().nodename} "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r})")
            # A requeued job starts again while the previous attempt's trainer may still be exiting
            # (see wait_for_unlocked): started now, the trainer would exit 'locked' and lose the attempt.
            holder = wait_for_unlocked(paths, 0.0)
            if holder is not None:
                say(f"RUN_DIR is locked by pid {holder or '?'} (an earlier attempt still exiting?); "
                    f"waiting up to {wait:g} s")
                holder = wait_for_unlocked(paths, wait)
                say("RUN_DIR is free" if holder is None else "RUN_DIR is still locked: starting the trainer anyway "
                    "(it exits 'locked' and the scheduler takes the run back)")
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          env=env)
        return self._proc.wait()

    def checkpoint(self) -> Any:
        """Called by submitit when the job is about to hit its time limit or is preempted: let the trainer
        finish its checkpoint (Slurm's signal reached it too; it stops with its checkpoint intact), then
        requeue this same task (same job id), which resumes from that checkpoint."""
        import submitit

        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                # Inside __call__'s proc.wait() this cannot reap the trainer (that wait holds the Popen's
                # lock), so it waits the whole time; a /proc watch that returned early once let the
                # requeue kill the trainer before its end event (see docs/design-notes.md).
                proc.wait(timeout=_wait_s())
            except (OSError, subprocess.TimeoutExpired):
                pass
        return submitit.helpers.DelayedSubmission(TrainerTask(self.argv, self.stdout, self.run_dir))


def _wait_s() -> float:
    """How long the job waits for its trainer: to checkpoint after a warning, and for an earlier
    attempt's trainer to let go of RUN_DIR (IMACSR_CHECKPOINT_WAIT_S, default 60, at least 5)."""
    value = os.environ.get("IMACSR_CHECKPOINT_WAIT_S", "")
    return max(5.0, float(value)) if value.isdigit() else 60.0


def wait_for_unlocked(paths: RunPaths, timeout: float, every: float = 0.5) -> int | None:
    """Wait until nobody holds the flock on RUN_DIR/.lock, at most ``timeout`` seconds
    (0: just look); return None once it is free, else the holder's pid (0 if unknown).

    A requeued job starts again while the previous attempt's trainer may still be exiting: Slurm's
    process tracking can lose a process whose parent died first (proctrack/linuxproc), and after a
    node failure the old node may still run it. A trainer started then exits at once, 'locked',
    and the attempt is lost."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(paths.lock, os.O_RDWR)  # flock over NFS is a write lock: it needs a writable descriptor
        except FileNotFoundError:
            return None  # never locked: a first attempt
        except OSError:
            return None  # let the trainer say what is wrong with RUN_DIR
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None  # free (closing the descriptor releases it at once)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return lock_holder(paths) or 0
        finally:
            os.close(fd)
        time.sleep(every)


# ---- the scheduler's side -------------------------------------------------------------------------
class SlurmMonitor:
    """Job states from sacct and scancel calls, in one background thread, each command with a timeout."""

    def __init__(self, poll: float = POLL_S):
        self.poll = poll
        self._states: dict[str, tuple[str, str]] = {}  # job id → (state, ExitCode)
        self._unconfirmed: dict[str, str] = {}  # job id → an end state read once, not yet published
        self._watch: set[str] = set()
        self._todo: list[list[str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.errors = 0
        self.last_error = ""
        self.reads = 0  # answered reads of sacct and squeue so far (SlurmJob counts an end's age in them)
        self._thread = threading.Thread(target=self._loop, name="slurm-monitor", daemon=True)
        self._thread.start()

    def watch(self, job_id: str) -> None:
        with self._lock:
            self._watch.add(job_id)
        self._wake.set()

    def state(self, job_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._states.get(job_id)

    def scancel(self, job_id: str, sig: str | None = None) -> None:
        """Queue ``scancel`` (``--signal=SIG`` to the job's steps, where the trainer runs); returns at once."""
        cmd = ["scancel"] + ([f"--signal={sig}"] if sig else []) + [job_id]
        with self._lock:
            self._todo.append(cmd)
        self._wake.set()

    def refresh(self) -> None:
        """Ask sacct and squeue now (the monitor thread does this every ``poll`` seconds). An end is
        published only when two reads in a row agree on it: a requeue passes through ended-looking
        states, and ending a healthy run on one of them would fail it."""
        with self._lock:
            ids = sorted(self._watch)
        if not ids:
            return
        states = job_states(ids)
        if states is None:
            return
        with self._lock:
            self.reads += 1
            for job, st in states.items():
                if st[0] not in LIVE_STATES and self._unconfirmed.pop(job, None) != st[0]:
                    self._unconfirmed[job] = st[0]
                    continue
                self._unconfirmed.pop(job, None)
                self._states[job] = st

    def close(self) -> None:
        self._stop = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            with self._lock:
                todo, self._todo = self._todo, []
            for cmd in todo:
                try:
                    subprocess.run(cmd, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
                except (OSError, subprocess.SubprocessError) as exc:
                    self.errors += 1
                    self.last_error = f"{' '.join(cmd)}: {exc}"
            try:
                self.refresh()
            except Exception as exc:  # never let the thread die: the scheduler would wait forever
                self.errors += 1
                self.last_error = str(exc)
            self._wake.wait(self.poll)
            self._wake.clear()


def sacct_states(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """job id → (state, ExitCode) of the jobs sacct knows; None when sacct fails or times out."""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobIDRaw,State,ExitCode", "-j", ",".join(job_ids)],
                             capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    states: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0]:
            states[parts[0]] = (parts[1].split()[0] if parts[1] else "UNKNOWN", parts[2])
    return states


def squeue_states(job_ids: list[str]) -> dict[str, str] | None:
    """job id → state of the jobs Slurm's controller still holds live; None when squeue did not answer
    (a timeout, a busy controller), which is not the same as "holds none of them"."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T"], capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        # squeue -j of one job the controller no longer holds fails with this; that is an answer.
        return {} if "Invalid job id" in done.stderr else None
    return {i: st for i, _, st in (line.strip().partition("|") for line in done.stdout.splitlines()) if i and st}


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """job id → (state, ExitCode): the controller's word (squeue) for a job it holds live, else sacct's;
    None unless both answered.

    sacct alone is not enough: accounting is written asynchronously, and a job that requeues itself
    (submitit, before its time limit) shows there as CANCELLED for a moment while the controller
    already holds it again as PENDING; an end read from that moment would fail a healthy run. So an
    end is believed only when squeue answered too (a busy controller may time out)."""
    states = sacct_states(job_ids)
    live = squeue_states(job_ids) if states is not None else None
    if states is None or live is None:
        return None
    for job, state in live.items():
        if state in LIVE_STATES:
            states[job] = (state, "")
    return states


def job_state(job_id: str) -> str | None:
    """A job's state now: squeue for a job Slurm still holds (sacct may not list a pending job yet),
    else sacct; None when neither answers."""
    state = (squeue_states([job_id]) or {}).get(job_id)
    if state:
        return state
    st = (sacct_states([job_id]) or {}).get(job_id)
    return st[0] if st else None


def cancel_job(job_id: str) -> str:
    """``imacsr runs cancel`` of a Slurm run: scancel a pending job, SIGTERM a running one's trainer (it
    stops with its checkpoint; the job then ends). Also when no scheduler watches it any more. Returns
    what was done, as a note for the user."""
    state = job_state(job_id) or "UNKNOWN"
    if state not in LIVE_STATES:
        return f"; its Slurm job {job_id} is already {state}"
    cmd = ["scancel", job_id] if state in WAITING_STATES else ["scancel", "--signal=TERM", job_id]
    try:
        subprocess.run(cmd, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"; `{' '.join(cmd)}` failed ({exc}); its scheduler stops it at its next heartbeat"
    return f"; Slurm job {job_id} " + ("cancelled (it was pending)" if state in WAITING_STATES
                                        else "sent SIGTERM (its trainer stops with its checkpoint)")


def _stop_signal(end: End | None) -> str | None:
    """The signal that stopped an interrupted trainer: its end's ``signal``, or, in the events of a
    trainer older than that field (a job submitted before an upgrade), the name in its message."""
    if end is None or end.status != "interrupted":
        return None
    if end.signal:
        return end.signal
    name = end.message.removeprefix("received ")
    return name if name != end.message and name.startswith("SIG") else None


@dataclass
class SlurmJob:
    """A run's Slurm job, polled through the monitor (never blocks)."""

    run_id: str
    paths: RunPaths
    slot: Slot
    job_id: str
    monitor: SlurmMonitor
    started: float = field(default_factory=time.time)
    pid: int | None = None  # no local process: the handle is the job id
    requeue_reason: str | None = None  # set by poll when Slurm ended the job (TIMEOUT, PREEMPTED, ...)
    signalled: bool = False  # imacsr (this scheduler) signalled the job: its end is not Slurm's doing
    end_state: str | None = None
    settle_reads: int = SETTLE_READS
    _end_read: int | None = None  # the monitor's read count when an unsettled end was first seen

    @property
    def handle(self) -> str:
        return f"slurm:{self.job_id}"

    @property
    def waiting(self) -> bool:
        """In Slurm's queue (pending, requeued): no trainer runs, so no progress is expected."""
        st = self.monitor.state(self.job_id)
        return st is None or st[0] in WAITING_STATES

    def poll(self) -> int | None:
        st = self.monitor.state(self.job_id)
        if st is None or st[0] in LIVE_STATES:
            self._end_read = None  # an end seen before was a requeue passing: the same job goes on
            return None
        state, exit_code = st
        if self.paths.result.exists():
            self.end_state = state
            return 0
        end = self._trainer_end()
        # A trainer stopped by a signal imacsr did not send: Slurm's warning (or a requeue's SIGTERM)
        # reached it, or only the submitit wrapper, whose checkpoint handler sent the SIGTERM.
        stopped_by = _stop_signal(end)
        warned = (state not in REQUEUE_STATES and stopped_by is not None
                  and (stopped_by == WARNING_SIGNAL or not self.signalled))
        if warned and not self._settled():
            return None
        first, self.end_state = self.end_state is None, state
        if first:
            # However it ended, the job id must not come back: scancel is a no-op for an ended job, and
            # it stops one that submitit requeued after all while imacsr puts the run back in its queue.
            self.monitor.scancel(self.job_id)
        if state in REQUEUE_STATES:
            self.requeue_reason = f"Slurm ended job {self.job_id} with {state}"
        elif warned:
            # The warning stopped a healthy trainer and the job was not requeued (submitit's scontrol
            # requeue failed, or the job ended first): imacsr's queue takes the run back.
            self.requeue_reason = f"Slurm warned job {self.job_id} and ended it ({state})"
        if end is not None and isinstance(end.exit_code, int):
            return int(end.exit_code)
        if state == "CANCELLED":
            return -signal.SIGTERM
        if state == "OUT_OF_MEMORY":
            return -signal.SIGKILL
        code, _, sig = exit_code.partition(":")
        if sig.isdigit() and int(sig):
            return -int(sig)
        return int(code) if code.isdigit() and int(code) else 1

    def _settled(self) -> bool:
        """Whether the job's end has stood for ``settle_reads`` of the monitor's reads."""
        if self._end_read is None:
            self._end_read = self.monitor.reads
        return self.monitor.reads - self._end_read >= self.settle_reads

    def _trainer_end(self) -> End | None:
        events, _ = read_events(self.paths.events, 0)
        ends = [e for e in events if isinstance(e, End) and e.time >= self.started - 1.0]
        return ends[-1] if ends else None

    def signal(self, sig: int) -> None:
        self.signalled = True
        st = self.monitor.state(self.job_id)
        if sig == signal.SIGKILL or st is None or st[0] in WAITING_STATES:
            # A pending job has no trainer to signal (and scancel --signal on it retries for a minute).
            self.monitor.scancel(self.job_id)
        elif st[0] in LIVE_STATES:
            self.monitor.scancel(self.job_id, signal.Signals(sig).name.removeprefix("SIG"))


class SlurmExecutor:
    """One Slurm job per run (submitit), at most ``max_jobs`` in flight (one slot each)."""

    name = "slurm"

    def __init__(self, resources: SlurmResources, max_jobs: int, folder: str | Path, python: str | None = None):
        try:
            import submitit
        except ImportError:
            raise ImacsrError("--executor slurm needs submitit: pip install 'imacsr[slurm]'") from None
        if max_jobs < 1:
            raise ImacsrError(f"--max-jobs must be at least 1, got {max_jobs}")
        self.resources = resources
        self.slots = [Slot(i) for i in range(max_jobs)]
        self.python = python or sys.executable
        self.folder = Path(folder).absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        # A run resumes from its checkpoint after each time-limit requeue, so allow many (submitit's default: 3).
        self._ex = submitit.SlurmExecutor(folder=str(self.folder / "%j"), python=self.python,
                                          max_num_timeout=MAX_TIME_LIMIT_REQUEUES)
        root = str(package_root())
        # The job's python unpickles TrainerTask: this checkout first on its path, like a local trainer's.
        self._ex.update_parameters(job_name="imacsr", setup=[f'export PYTHONPATH="{root}${{PYTHONPATH:+:$PYTHONPATH}}"'],
                                   **resources.submitit_parameters())
        self.monitor = SlurmMonitor()

    def submit(self, run_id: str, paths: RunPaths, slot: Slot, env: dict[str, str] | None = None) -> SlurmJob:
        paths.root.mkdir(parents=True, exist_ok=True)
        task = TrainerTask(trainer_command(self.python, paths.root, package_root()), str(paths.stdout),
                           str(paths.root))
        self._ex.update_parameters(job_name=f"imacsr-{run_id}")
        try:
            job = self._ex.submit(task)
        except Exception as exc:  # sbatch refused (bad partition, account...): the message is Slurm's
            raise OSError(f"sbatch failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}") from None
        self.monitor.watch(job.job_id)
        return SlurmJob(run_id=run_id, paths=paths, slot=slot, job_id=job.job_id, monitor=self.monitor)

    def attach(self, handle: str | None, run_id: str, paths: RunPaths, slot: Slot,
               started: float | None) -> SlurmJob | None:
        """The job of ``handle`` ("slurm:<id>") if Slurm still runs or queues it (a previous scheduler's
        job: watch it instead of submitting a duplicate), else None."""
        if not handle or not handle.startswith("slurm:"):
            return None
        job_id = handle.split(":", 1)[1]
        state = job_state(job_id)
        if state not in LIVE_STATES:
            return None
        self.monitor.watch(job_id)
        with self.monitor._lock:
            self.monitor._states[job_id] = (state, "")
        return SlurmJob(run_id=run_id, paths=paths, slot=slot, job_id=job_id, monitor=self.monitor,
                        started=started or 0.0)

    def close(self) -> None:
        self.monitor.close()
