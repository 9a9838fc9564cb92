"""Executors: where a run's trainer process runs. submitit-like: ``submit`` returns a Job to poll.

A *slot* is one place a trainer can run: a GPU share (``--gpus 0,1 --per-gpu 2`` → four slots) or a
CPU share (``--jobs N`` → N slots with cores // N threads each). The executor starts one trainer
subprocess per submitted run (``trainer_command``: ``python -P -m imacsr_cli.train RUN_DIR``), in its
own session (so Ctrl-C in the terminal reaches the scheduler only, and the scheduler decides what the
trainers get), with IMACSR_PARENT_PID set (so a trainer whose scheduler died stops by itself).

The trainer imports the scheduler's own code, whatever the working directory: ``python -m`` would put
the working directory first on sys.path, so run-grid started inside another checkout would train with
that checkout's ``imacsr_cli``. ``-P`` (Python 3.11+) leaves it out and PYTHONPATH starts with the
folder that holds this package; on 3.10 a ``-c`` bootstrap replaces sys.path[0] with that folder.

Nothing here knows about the database; the scheduler owns that.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imacsr_cli.errors import ImacsrError, UsageError
from imacsr_cli.rundir import RunPaths, package_root

TRAINER_MODULE = "imacsr_cli.train"

@dataclass(frozen=True)
class Slot:
    """One place a trainer runs. ``gpu`` is a CUDA device index as a string; None = CPU."""

    index: int
    gpu: str | None = None
    threads: int | None = None  # IMACSR_THREADS for a CPU slot; None = the trainer's default

    @property
    def label(self) -> str:
        return f"gpu{self.gpu}" if self.gpu is not None else "cpu"

    @property
    def name(self) -> str:  # stored in runs.slot: "gpu1#3", "cpu#0"
        return f"{self.label}#{self.index}"

    def env(self) -> dict[str, str]:
        # A CPU slot gets CUDA_VISIBLE_DEVICES="" so it never grabs a GPU someone else is using.
        env = {"CUDA_VISIBLE_DEVICES": self.gpu if self.gpu is not None else ""}
        if self.threads is not None:
            env["IMACSR_THREADS"] = str(self.threads)
        return env


def detect_gpus() -> list[str]:
    """Visible CUDA devices, without importing torch (that costs seconds at startup)."""
    return gpu_visibility()[0]


def gpu_visibility() -> tuple[list[str], str]:
    """(visible CUDA devices, how that was found), without importing torch.

    CUDA_VISIBLE_DEVICES wins when set ("" or -1 means none); otherwise ``nvidia-smi -L`` lists them;
    without nvidia-smi, the driver's /proc/driver/nvidia/gpus (one folder per GPU).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        # CUDA stops at the first invalid entry ("-1" by convention): what follows is not visible.
        out: list[str] = []
        for d in (d.strip() for d in visible.split(",")):
            if not d or d == "-1":
                break
            out.append(d)
        return out, f"CUDA_VISIBLE_DEVICES={visible!r}"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            text = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        return [str(i) for i, _ in enumerate(ln for ln in text.splitlines() if ln.startswith("GPU "))], "nvidia-smi -L"
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i, _ in enumerate(sorted(proc.iterdir()))], str(proc)
    return [], "no NVIDIA driver found"


def check_visible(gpus: list[str] | None) -> None:
    """UsageError unless every GPU of ``--gpus`` is visible: a GPU that is not would train on the CPU."""
    if not gpus:
        return
    visible, how = gpu_visibility()
    if not visible:
        raise UsageError(f"--gpus {','.join(gpus)}: no GPU is visible ({how}); leave --gpus out or give --gpus cpu")
    missing = [g for g in gpus if g not in visible]
    if missing:
        raise UsageError(f"--gpus {','.join(gpus)}: GPU {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not visible; visible: {', '.join(visible)} ({how})")


def plan_slots(
    jobs: int | None = None,
    gpus: list[str] | None = None,
    per_gpu: int = 1,
    cpu_count: int | None = None,
) -> list[Slot]:
    """The slots of a run-grid invocation.

    - ``gpus`` given (``--gpus 0,1``): ``per_gpu`` slots on each; ``jobs`` then caps the total.
    - else, with GPUs visible and no ``jobs``: one slot per visible GPU (times ``per_gpu``).
    - else CPU: ``jobs`` slots (default 1), each with an equal share of the cores.
    ``gpus=[]`` (``--gpus ""`` or ``--gpus cpu``) forces the CPU.
    """
    if per_gpu < 1:
        raise UsageError(f"--per-gpu must be at least 1, got {per_gpu}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if gpus is None and jobs is None:
        gpus = detect_gpus()
    if gpus:
        slots = [Slot(i, gpu=g) for i, g in enumerate(g for g in gpus for _ in range(per_gpu))]
        slots = slots[:jobs] if jobs else slots
        # Each GPU run's data pipeline gets an equal share of the cores (data.workers = -1 reads it).
        threads = max(1, (cpu_count or available_cores()) // len(slots))
        return [dataclasses.replace(s, threads=threads) for s in slots]
    n = jobs or 1
    threads = max(1, (cpu_count or available_cores()) // n)
    return [Slot(i, threads=threads) for i in range(n)]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_gpus(text: str | None) -> list[str] | None:
    """``--gpus`` value: "0,1" → ["0", "1"]; "" or "cpu" → [] (CPU only); None → auto."""
    if text is None:
        return None
    if text.strip().lower() in ("", "cpu", "none"):
        return []
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    for g in gpus:
        if not g.isdigit():
            raise UsageError(f"--gpus: expected comma-separated device indices like 0,1, got {text!r}")
    return gpus


class Job(Protocol):
    """A submitted run. Polled by the scheduler; never blocks."""

    run_id: str
    paths: RunPaths
    slot: Slot
    pid: int
    started: float  # time.time() at submit

    def poll(self) -> int | None:
        """The exit code once the trainer has exited (negative: killed by that signal), else None."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the trainer and everything it started (DataLoader workers)."""


class Executor(Protocol):
    slots: list[Slot]

    def submit(self, run_id: str, paths: RunPaths, slot: Slot, env: dict[str, str] | None = None) -> Job:
        """Start the trainer of ``paths.root`` (spec.json already written) on ``slot``."""


@dataclass
class LocalJob:
    run_id: str
    paths: RunPaths
    slot: Slot
    process: subprocess.Popen
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: int) -> None:
        if self.process.poll() is not None:
            return
        try:
            # The trainer leads its own process group (start_new_session): signal the whole group so
            # DataLoader workers go with it.
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def trainer_command(python: str, run_dir: Path, root: Path, version: tuple[int, ...] | None = None) -> list[str]:
    """The argv that trains ``run_dir`` with the ``imacsr_cli`` found in ``root`` (and only there
    first: never the working directory's). ``version``: the interpreter's (major, minor), by default
    this one's (the executor runs trainers with its own interpreter)."""
    version = tuple(sys.version_info[:2]) if version is None else tuple(version[:2])
    if version >= (3, 11):
        return [python, "-P", "-m", TRAINER_MODULE, str(run_dir)]
    # Python 3.10 has no -P: with -c, sys.path[0] is the working directory; put the package root there
    # instead and run the module as -m would (sys.argv[0] becomes its file, so argv[1] is RUN_DIR).
    boot = (f"import runpy, sys; sys.path[0] = {str(root)!r}; "
            f"runpy.run_module({TRAINER_MODULE!r}, run_name='__main__', alter_sys=True)")
    return [python, "-c", boot, str(run_dir)]


class LocalExecutor:
    """Trainer subprocesses on this host, one per slot."""

    name = "local"

    def __init__(self, slots: list[Slot], python: str | None = None):
        if not slots:
            raise ImacsrError("no slots to run on")
        self.slots = slots
        self.python = python or sys.executable
        self.host = socket.gethostname()

    def command(self, paths: RunPaths) -> list[str]:
        return trainer_command(self.python, paths.root, package_root())

    def environment(self, slot: Slot, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(slot.env())
        env["IMACSR_PARENT_PID"] = str(os.getpid())
        # The folder that holds this imacsr_cli first, so the trainer imports the scheduler's code
        # whether or not the package is installed (and whatever the working directory: -P).
        root = str(package_root())
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                      if p and p != root])
        env.setdefault("PYTHONUNBUFFERED", "1")
        if extra:
            env.update(extra)
        return env

    def submit(self, run_id: str, paths: RunPaths, slot: Slot, env: dict[str, str] | None = None) -> LocalJob:
        paths.root.mkdir(parents=True, exist_ok=True)
        out = open(paths.stdout, "ab")  # RunPaths.stdout: what escapes train.log
        try:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} launch on {slot.name}\n".encode())
            out.flush()
            process = subprocess.Popen(
                self.command(paths),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(slot, env),
                start_new_session=True,
                close_fds=True,
            )
        finally:
            out.close()  # the child holds its own descriptor
        return LocalJob(run_id=run_id, paths=paths, slot=slot, process=process)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host (zombies count as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not reaped it yet
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def trainer_of(pid: int | None, run_dir: Path) -> bool:
    """Whether ``pid`` is alive on this host and is the trainer of ``run_dir`` (guards pid reuse)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    # -m imacsr_cli.train, or the 3.10 bootstrap that names the module inside its -c code.
    return any(TRAINER_MODULE.encode() in a for a in argv) and any(
        a and Path(a.decode(errors="replace")).resolve() == run_dir.resolve() for a in argv[-2:]
    )


def end_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM a process group we do not hold a Popen for, then SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)
