"""`imacsr run-grid PATH`: plan, enqueue (idempotent) and run a grid's runs until they are finished.

Thin: the grid comes from spec.grid, the queue from the store, the running from launch.Scheduler; this
module parses options, prints the plan and renders the scheduler's reports (a rich live display on a
terminal, one plain line per event otherwise).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from imacsr_cli import metric_names as mn
from imacsr_cli.cli.options import db_option

if TYPE_CHECKING:  # pragma: no cover
    from imacsr_cli.launch import ActiveRun, Outcome, Slot

MAX_NOTES = 3  # grid notes (rows that repeat a run...) shown before "and N more"


def run_grid(
    path: str = typer.Argument(..., help="Grid file; looked for as given, then under experiments/."),
    db: str = db_option(),
    runs_dir: Path = typer.Option(Path("results/runs"), "--runs-dir", help="Run directories go to DIR/<run_id>."),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="Runs at once (default: one per visible GPU, else 1)."),
    gpus: str = typer.Option(None, "--gpus", help="GPU indices to use, e.g. 0,1 ('cpu' = none; default: all visible)."),
    per_gpu: int = typer.Option(1, "--per-gpu", min=1, help="Runs at once on each GPU."),
    timeout: float = typer.Option(
        None, "--timeout", help="Kill a run after SECONDS without progress (no event: heartbeat silence is a hang)."
    ),
    retries: int = typer.Option(0, "--retries", min=0, help="Retry a run that was interrupted or ran out of memory."),
    lease: float = typer.Option(60.0, "--lease", help="A running run whose owner is silent this long is reclaimed."),
    plan_only: bool = typer.Option(False, "--plan", help="Print the plan and stop (nothing is enqueued)."),
    executor: str = typer.Option("local", "--executor", help="Where trainers run: local (this host) or slurm."),
    max_jobs: int = typer.Option(None, "--max-jobs", min=1, help="Slurm jobs in flight at once (default 4)."),
    slurm_partition: str = typer.Option(None, "--slurm-partition", help="Slurm partition (grid [slurm] partition)."),
    slurm_time: str = typer.Option(None, "--slurm-time", help="Job time limit: minutes or H:MM:SS ([slurm] time)."),
    slurm_gpus: int = typer.Option(None, "--slurm-gpus", min=0, help="GPUs per job ([slurm] gpus)."),
    slurm_cpus: int = typer.Option(None, "--slurm-cpus", min=1, help="CPUs per job ([slurm] cpus_per_task)."),
    slurm_mem: str = typer.Option(None, "--slurm-mem", help="Memory per job, e.g. 16G ([slurm] mem)."),
    slurm_account: str = typer.Option(None, "--slurm-account", help="Slurm account ([slurm] account)."),
    slurm_qos: str = typer.Option(None, "--slurm-qos", help="Slurm QOS ([slurm] qos)."),
    slurm_flag: list[str] = typer.Option(None, "--slurm-flag", help="An extra sbatch flag, e.g. --slurm-flag=--constraint=a100 (repeatable; [slurm] extra)."),
) -> None:
    """Plan, enqueue and run every run of a grid; exit 0 only when all of them succeeded."""
    from imacsr_cli.errors import ImacsrError, RunFailed, SpecError
    from imacsr_cli.launch import LocalExecutor, Scheduler, limits, parse_gpus, plan_slots
    from imacsr_cli.launch.executor import available_cores
    from imacsr_cli.launch.plan import make_plan

    limits.check_timeout(timeout)
    limits.check_lease(lease)
    limits.check_retries(retries)
    if executor not in ("local", "slurm"):
        raise typer.BadParameter(f"expected local or slurm, got {executor!r}", param_hint="--executor")
    try:
        slots = plan_slots(jobs=jobs, gpus=parse_gpus(gpus), per_gpu=per_gpu)
    except ImacsrError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--gpus") from None

    slurm = None
    if executor == "slurm":  # checked before the plan opens (and maybe creates) the database
        from imacsr_cli.launch.slurm import SlurmResources, parse_time
        from imacsr_cli.spec.grid import GridSpec

        table = GridSpec.find(path)
        slurm = SlurmResources.from_table(table.slurm, str(table.path or path)).override(
            partition=slurm_partition, time=parse_time(slurm_time, "--slurm-time") if slurm_time else None,
            gpus=slurm_gpus, cpus_per_task=slurm_cpus, mem=slurm_mem, account=slurm_account, qos=slurm_qos,
            extra=tuple(slurm_flag or ()))
        from imacsr_cli.launch import Slot as _Slot

        slots = [_Slot(i) for i in range(max_jobs or 4)]
    plan = make_plan(path, db, lease, plan_only=plan_only)
    grid, rows, valid, problems, counts = plan.grid, plan.rows, plan.valid, plan.problems, plan.counts
    typer.echo(_plan_text(grid.name, plan.where, len(rows), counts, slots, available_cores(), slurm))
    for line in grid.warnings[:MAX_NOTES]:
        typer.echo(f"note: {line}")
    if len(grid.warnings) > MAX_NOTES:
        typer.echo(f"note: ... and {len(grid.warnings) - MAX_NOTES} more like these")
    if problems:
        for line in problems:
            typer.echo(f"cannot run: {line}")
        raise SpecError(f"grid {grid.name}: some runs cannot run (see above); nothing enqueued")
    if plan.store is None:
        return
    with plan.store as store:
        plan.enqueue()

        labels = {r.run_id: r.describe() for r in valid}
        observer: _Plain | _Live = _Live(labels, len(valid)) if sys.stdout.isatty() else _Plain(labels, len(valid))
        if slurm is not None:
            from imacsr_cli.launch.slurm import SlurmExecutor

            # Slurm's own files (sbatch scripts, submitit's logs) next to the run directories.
            runner: Any = SlurmExecutor(slurm, len(slots), Path(runs_dir).absolute().parent / "slurm")
        else:
            runner = LocalExecutor(slots)
        scheduler = Scheduler(store, runner, grid.name, runs_dir, timeout=timeout, retries=retries,
                              lease=lease, observer=observer)
        started = time.monotonic()
        previous = {sig: signal.signal(sig, lambda signum, frame: scheduler.request_stop(signum))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with observer:
                outcome = scheduler.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        final = outcome.counts
        elapsed = time.monotonic() - started
        typer.echo(f"grid {grid.name}: {_counts_text(final)} — {scheduler.launches} trainer"
                   f"{'s' if scheduler.launches != 1 else ''} started in {_duration(elapsed)}")
        if outcome.stopped_by is not None:
            typer.echo(f"stopped by {signal.Signals(outcome.stopped_by).name}: {final['queued']} runs are queued "
                       f"with their checkpoints; run the same command to resume", err=True)
            raise typer.Exit(outcome.exit_code)
        if outcome.exit_code != 0:
            bad = final["total"] - final["succeeded"]
            raise RunFailed(f"grid {grid.name}: {bad} of {final['total']} runs did not succeed "
                            f"(imacsr status {grid.name} --runs; imacsr runs retry --failed)")


def _plan_text(name: str, where: str, n_rows: int, counts: dict[str, int], slots: list[Slot], cores: int,
               slurm: Any = None) -> str:
    parts = [f"{counts['new']} new", f"{counts['succeeded']} already done", f"{counts['failed']} failed",
             f"{counts['running'] - counts.get('orphaned', 0)} running elsewhere"]
    if counts.get("orphaned"):
        parts.append(f"{counts['orphaned']} orphaned (to resume)")
    if counts["queued"]:
        parts.append(f"{counts['queued']} queued")
    if counts["cancelled"]:
        parts.append(f"{counts['cancelled']} cancelled")
    lines = [f"grid {name} ({where}): {n_rows} runs — " + ", ".join(parts)]
    if counts["failed"] or counts["cancelled"]:
        lines.append("  failed and cancelled runs stay so: `imacsr runs retry --failed` queues them again")
    gpu = [s for s in slots if s.gpu is not None]
    if slurm is not None:
        lines.append(f"slots: up to {len(slots)} Slurm job{'s' if len(slots) != 1 else ''} at once ({slurm.describe()})")
    elif gpu:
        devices = sorted({s.gpu for s in gpu}, key=int)
        lines.append(f"slots: {len(slots)} on GPU {','.join(devices)} ({len(slots) // len(devices)} per GPU)")
    else:
        lines.append(f"slots: {len(slots)} on the CPU, {slots[0].threads} thread{'s' if slots[0].threads != 1 else ''} "
                     f"each ({cores} cores)")
    return "\n".join(lines)


def _counts_text(counts: dict[str, int]) -> str:
    parts = [f"{counts['succeeded']}/{counts['total']} succeeded"]
    for state in ("failed", "cancelled", "queued", "running"):
        if counts.get(state):
            parts.append(f"{counts[state]} {state}")
    return ", ".join(parts)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}"


class _Plain:
    """One line per event, for logs and pipes (no cursor tricks)."""

    def __init__(self, labels: dict[str, str], total: int):
        self.labels = labels
        self.total = total
        self.counts: dict[str, int] = {}
        self.miou: dict[str, float | None] = {}

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _echo(self, text: str) -> None:
        typer.echo(text)

    def _done(self) -> str:
        c = self.counts
        n = c.get("succeeded", 0) + c.get("failed", 0) + c.get("cancelled", 0)
        return f"[{n}/{c.get('total', self.total)}]"

    # Observer ---------------------------------------------------------------------------------------
    def launched(self, a: ActiveRun) -> None:
        attempt = f", attempt {a.attempt}" if a.attempt > 1 else ""
        self._echo(f"{a.run_id} launched on {a.slot.name}{attempt}: {self.labels.get(a.run_id, '')}")

    def started(self, a: ActiveRun) -> None:
        if a.resumed_from:
            self._echo(f"{a.run_id} resumed after epoch {a.resumed_from}/{a.epochs}")

    def epoch(self, a: ActiveRun) -> None:
        self.miou[a.run_id] = a.miou
        loss = "-" if a.loss is None else f"{a.loss:.4f}"
        self._echo(f"{a.run_id} epoch {a.epoch}/{a.epochs} loss {loss} mIoU {_pct(a.miou)}")

    def finished(self, run_id: str, outcome: Outcome, note: str = "") -> None:
        if outcome.verdict == "succeeded":
            extra = f" ({outcome.message})" if outcome.message else ""
            miou = self.miou.get(run_id)
            self._echo(f"{self._done()} {run_id} succeeded" + (f": mIoU {_pct(miou)}" if miou is not None else "")
                       + extra)
        elif outcome.verdict == "requeue":
            then = note or "back to the queue"
            self._echo(f"{run_id} {outcome.reason}: {then} — {outcome.message.splitlines()[0] if outcome.message else ''}"
                       .rstrip(" —"))
        else:
            lines = outcome.message.splitlines() or [""]
            self._echo(f"{self._done()} {run_id} {outcome.verdict} ({outcome.reason}): {lines[0]}")
            for line in lines[1:]:
                self._echo(f"    {line}")

    def note(self, text: str, run_id: str | None = None) -> None:
        self._echo(f"{run_id} {text}" if run_id else text)

    def tick(self, counts: dict[str, int], active: list[ActiveRun]) -> None:
        self.counts = dict(counts)


class _Live(_Plain):
    """A rich live display: the grid's progress bar and one row per active run; events scroll above."""

    def __init__(self, labels: dict[str, str], total: int):
        super().__init__(labels, total)
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.active: list[ActiveRun] = []
        self.live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render, transient=False)

    def __enter__(self) -> _Live:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def _echo(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def epoch(self, a: ActiveRun) -> None:
        self.miou[a.run_id] = a.miou  # the table shows epochs; no line each

    def tick(self, counts: dict[str, int], active: list[ActiveRun]) -> None:
        self.counts = dict(counts)
        self.active = active

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        c = self.counts
        total = c.get("total", self.total) or 1
        done = c.get("succeeded", 0) + c.get("failed", 0) + c.get("cancelled", 0)
        # Partial credit for the epochs of active runs, so the bar moves between runs.
        partial = sum(a.fraction() for a in self.active)
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=total, completed=done + partial, width=40),
                     Text(f"{done}/{total} done · {c.get('succeeded', 0)} ok · {c.get('failed', 0)} failed · "
                          f"{len(self.active)} running here · {c.get('queued', 0)} queued"))
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("run", "slot", "spec", "epoch", "step", mn.LOSS, mn.MIOU, "ETA"):
            table.add_column(col, no_wrap=True, justify="right" if col in ("epoch", "step", mn.LOSS, mn.MIOU, "ETA")
                             else "left")
        now = time.time()
        for a in sorted(self.active, key=lambda x: x.slot.index):
            step = f"{a.step}/{a.steps}" if a.steps and a.current > a.epoch else "-"
            table.add_row(a.run_id, a.slot.name, self.labels.get(a.run_id, "")[:60],
                          f"{a.epoch}/{a.epochs or '?'}", step, "-" if a.loss is None else f"{a.loss:.3f}",
                          _pct(a.miou), _duration(a.eta(now)))
        return Group(head, table) if self.active else head


def register(app: typer.Typer) -> None:
    app.command("run-grid")(run_grid)
