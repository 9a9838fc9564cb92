"""`imacsr run-grid PATH`: plan, enqueue (idempotent) and run a grid's runs until they are finished.

Thin: the grid comes from spec.grid, the queue from the store, the running from launch.Scheduler; this
module parses options, prints the plan and renders the scheduler's reports (a rich live display on a
terminal, one plain line per event otherwise).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from imacsr_cli import metric_names as mn
from imacsr_cli.cli.options import db_option
from imacsr_cli.units import fmt_metric, header, metric_text

if TYPE_CHECKING:  # pragma: no cover
    from imacsr_cli.launch import ActiveRun, Outcome, Slot

MAX_NOTES = 3  # grid notes (rows that repeat a run...) shown before "and N more"


def run_grid(
    path: str = typer.Argument(..., help="Grid file; looked for as given, then under experiments/."),
    db: str = db_option(),
    runs_dir: Path = typer.Option(Path("results/runs"), "--runs-dir", help="Run directories go to DIR/<run_id>."),
    jobs: int = typer.Option(None, "--jobs", "-j", help="Runs at once (default: one per visible GPU, else 1)."),
    gpus: str = typer.Option(None, "--gpus", help="GPU indices to use, e.g. 0,1 ('cpu' = none; default: all visible)."),
    per_gpu: int = typer.Option(1, "--per-gpu", help="Runs at once on each GPU."),
    timeout: float = typer.Option(
        None, "--timeout", help="Kill a run after SECONDS without progress (no event: heartbeat silence is a hang)."
    ),
    retries: int = typer.Option(0, "--retries", help="Retry a run that was interrupted or ran out of memory."),
    lease: float = typer.Option(60.0, "--lease", help="A running run whose owner is silent this long is reclaimed."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                        help="Override a key of [base], e.g. --set train.epochs=1 (repeatable)."),
    max_runs: int = typer.Option(10_000, "--max-runs", help="Refuse a grid of more runs than this."),
    plan_only: bool = typer.Option(False, "--plan", help="List the runs with their state and stop (nothing is enqueued)."),
    as_json: bool = typer.Option(False, "--json", help="With --plan: the plan as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every note about the grid, not a summary."),
    retrain_missing: bool = typer.Option(
        False, "--retrain-missing", help="Train again succeeded runs whose result.json is gone (directory deleted)."),
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
    from imacsr_cli.errors import RunFailed, SpecError, UsageError
    from imacsr_cli.launch import LocalExecutor, Scheduler, limits, parse_gpus, plan_slots
    from imacsr_cli.launch.executor import available_cores, check_visible
    from imacsr_cli.launch.plan import make_plan
    from imacsr_cli.launch.rerun import rerun
    from imacsr_cli.spec.ranges import check_option

    limits.check_timeout(timeout)
    limits.check_lease(lease)
    limits.check_retries(retries)
    if executor not in ("local", "slurm"):
        raise typer.BadParameter(f"expected local or slurm, got {executor!r}", param_hint="--executor")
    for name, value in (("--jobs", jobs), ("--per-gpu", per_gpu), ("--max-runs", max_runs)):
        check_option(name, value)
    if as_json and not plan_only:
        raise UsageError("--json goes with --plan (it prints the plan as JSON)")
    gpu_list = parse_gpus(gpus)
    check_visible(gpu_list)
    slots = plan_slots(jobs=jobs, gpus=gpu_list, per_gpu=per_gpu)
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

    plan = make_plan(path, db, lease, plan_only=plan_only, overrides=overrides, max_runs=max_runs,
                     runs_dir=runs_dir)
    grid, rows, valid, problems, counts = plan.grid, plan.rows, plan.valid, plan.problems, plan.counts
    records, missing = plan.records, plan.missing
    if as_json:
        typer.echo(json.dumps(_plan_json(grid, plan.where, rows, records, missing, counts, slots, problems), indent=2))
        if problems:
            raise typer.Exit(2)
        return
    _say(_plan_text(grid.name, plan.where, len(rows), counts, slots, available_cores(), retrain_missing, slurm))
    for line in _notes(grid.warnings, verbose):
        _say(f"note: {line}")
    if plan_only:
        typer.echo("\n" + _runs_listing(rows, records, missing))
    if problems:
        for line in problems:
            _say(f"cannot run: {line}")
        raise SpecError(f"grid {grid.name}: some runs cannot run (see above); nothing enqueued")
    if plan.store is None:
        return
    with plan.store as store:
        if retrain_missing:
            for run_id in missing:
                rerun(store, run_id, runs_dir)
        plan.enqueue()

        labels = {r.run_id: r.describe() for r in valid}
        observer: _Plain | _Live = (_Live(labels, len(valid), parallel=len(slots)) if sys.stdout.isatty()
                                    else _Plain(labels, len(valid)))
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
        _say(f"grid {grid.name}: {_counts_text(final)} — {scheduler.launches} trainer"
             f"{'s' if scheduler.launches != 1 else ''} started in {_duration(elapsed)}")
        if outcome.stopped_by is not None:
            _say(f"stopped by {signal.Signals(outcome.stopped_by).name}: {final['queued']} runs are queued "
                 f"with their checkpoints; run the same command to resume", err=True)
            raise typer.Exit(outcome.exit_code)
        if outcome.disk_full is not None:
            # A run whose requeue found no space either is still marked running: a later run-grid
            # takes it back from this (then gone) scheduler.
            unrecorded = (f" ({final['running']} still marked running: the next run-grid takes back the "
                          "ones this one stopped)" if final["running"] else "")
            raise RunFailed(f"grid {grid.name}: stopped launching runs: {outcome.disk_full}; {final['queued']} runs "
                            f"are queued with their checkpoints{unrecorded}: free space, then run the same command "
                            "to resume")
        if outcome.exit_code != 0:
            bad = final["total"] - final["succeeded"]
            raise RunFailed(f"grid {grid.name}: {bad} of {final['total']} runs did not succeed "
                            f"(imacsr status {grid.name} --runs; imacsr runs retry --failed)")


def _say(text: str, err: bool = False) -> None:
    """Print plan lines; on a terminal, long ones wrap at a word with an indent (a pipe gets them whole,
    one line each, for scripts and tests)."""
    if (sys.stderr if err else sys.stdout).isatty():
        import shutil
        import textwrap

        width = shutil.get_terminal_size().columns
        text = "\n".join(textwrap.fill(line, width, subsequent_indent="    ", break_on_hyphens=False,
                                        break_long_words=False) if len(line) > width else line
                         for line in text.splitlines())
    typer.echo(text, err=err)


def _plan_text(name: str, where: str, n_rows: int, counts: dict[str, int], slots: list[Slot], cores: int,
               retrain_missing: bool = False, slurm: Any = None) -> str:
    parts = [f"{counts['new']} new", f"{counts['succeeded']} already done", f"{counts['failed']} failed",
             f"{counts['running'] - counts.get('orphaned', 0)} running elsewhere"]
    if counts.get("orphaned"):
        parts.append(f"{counts['orphaned']} orphaned (to resume)")
    if counts["queued"]:
        parts.append(f"{counts['queued']} queued")
    if counts["cancelled"]:
        parts.append(f"{counts['cancelled']} cancelled")
    if counts.get("cannot_run"):  # so that the counts add up to the runs
        parts.append(f"{counts['cannot_run']} cannot run")
    lines = [f"grid {name} ({where}): {n_rows} runs — " + ", ".join(parts)]
    if counts["failed"] or counts["cancelled"]:
        lines.append("  failed and cancelled runs stay so: `imacsr runs retry --failed` queues them again")
    if counts.get("missing"):
        n = counts["missing"]
        what = f"  {n} of the done runs {'has' if n == 1 else 'have'} lost {'its' if n == 1 else 'their'} result.json"
        lines.append(what + (": trained again (--retrain-missing)" if retrain_missing else
                             " (run directory deleted?): --retrain-missing trains them again"))
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


def _notes(warnings: list[str], verbose: bool) -> list[str]:
    """The grid's notes: every one with --verbose; else the rows-that-are-one-run notes as one summary
    line (a shipped grid has many, on every call) and up to MAX_NOTES of the others."""
    from imacsr_cli.spec.grid import SAME_RUN

    if verbose:
        return list(warnings)
    same = [w for w in warnings if f" {SAME_RUN} " in w]
    other = [w for w in warnings if f" {SAME_RUN} " not in w]
    out = other[:MAX_NOTES]
    if len(other) > MAX_NOTES:
        out.append(f"... and {len(other) - MAX_NOTES} more (--verbose lists them)")
    if same:
        out.append(f"{len(same)} row{'s are' if len(same) != 1 else ' is'} the same run as another row, kept once "
                   f"(one run fills several cells; --verbose lists them)")
    return out


def _row_state(row: Any, records: dict[str, Any], missing: list[str]) -> str:
    if row.error is not None:
        return "cannot run"
    rec = records.get(row.run_id)
    if rec is None:
        return "new"
    return "succeeded, files missing" if row.run_id in missing else rec.state


def _runs_listing(rows: list[Any], records: dict[str, Any], missing: list[str]) -> str:
    """--plan: one line per run: id, state, what differs from [base], the cells it fills."""
    from imacsr_cli.cli.status import cells_text, table

    lines = [[r.run_id or "-", _row_state(r, records, missing), r.describe(), cells_text(r.labels)] for r in rows]
    return table(["RUN", "STATE", "DIFFERS FROM [base]", "CELLS"], lines) if lines else "no runs"


def _plan_json(grid: Any, where: str, rows: list[Any], records: dict[str, Any], missing: list[str],
               counts: dict[str, int], slots: list[Slot], problems: list[str]) -> dict[str, Any]:
    return {
        "grid": grid.name, "path": where, "counts": {"runs": len(rows), **counts},
        "slots": [s.name for s in slots],
        "runs": [{"run_id": r.run_id, "state": _row_state(r, records, missing), "overrides": r.overrides,
                  "cells": r.labels, "where": r.sources or [r.where], "error": r.error} for r in rows],
        "notes": list(grid.warnings), "problems": problems,
    }


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
    return fmt_metric(value)  # the one format of a metric (imacsr_cli/units.py)


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
        self._echo(f"{a.run_id} epoch {a.epoch}/{a.epochs} loss {loss} {metric_text('mIoU', a.miou)}")

    def finished(self, run_id: str, outcome: Outcome, note: str = "") -> None:
        if outcome.verdict == "succeeded":
            extra = f" ({outcome.message})" if outcome.message else ""
            miou = self.miou.get(run_id)
            self._echo(f"{self._done()} {run_id} succeeded" + (f": {metric_text('mIoU', miou)}" if miou is not None else "")
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
    """A rich live display: the grid's progress bar with its ETA and one row per active run; events
    scroll above. Fits the terminal's width (80 columns and up): the bar takes what the text leaves,
    and only the spec column is shortened."""

    def __init__(self, labels: dict[str, str], total: int, parallel: int = 1):
        super().__init__(labels, total)
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.parallel = parallel
        self.active: list[ActiveRun] = []
        self.live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render, transient=False)

    def __enter__(self) -> _Live:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def _echo(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False, overflow="fold")

    def epoch(self, a: ActiveRun) -> None:
        self.miou[a.run_id] = a.miou  # the table shows epochs; no line each

    def tick(self, counts: dict[str, int], active: list[ActiveRun]) -> None:
        self.counts = dict(counts)
        self.active = active

    def _render(self) -> Any:
        return render_live(self.counts, self.total, self.active, self.labels, self.parallel, self.console.width,
                           time.time())


LIVE_COLUMNS = ("run", "slot", "epoch", "step", mn.LOSS, header(mn.MIOU), "ETA", "spec")


def render_live(counts: dict[str, int], total: int, active: list[ActiveRun], labels: dict[str, str],
                parallel: int, width: int, now: float) -> Any:
    """The live display for a terminal ``width`` columns wide (a rich renderable)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    from imacsr_cli.launch.observer import grid_eta

    c = counts
    total = c.get("total", total) or 1
    done = c.get("succeeded", 0) + c.get("failed", 0) + c.get("cancelled", 0)
    partial = sum(a.fraction() for a in active)  # the epochs of active runs move the bar between runs
    eta = grid_eta(active, c.get("queued", 0), parallel, now)
    right = f" {done}/{total} done · ETA {_duration(eta)}"
    bar = Table.grid()
    bar.add_row(ProgressBar(total=total, completed=done + partial, width=max(10, min(60, width - len(right) - 1))),
                Text(right, no_wrap=True, overflow="ellipsis"))
    line = Text(f"{c.get('succeeded', 0)} ok · {c.get('failed', 0)} failed · {len(active)} running here · "
                f"{c.get('queued', 0)} queued", no_wrap=True, overflow="ellipsis")
    if not active:
        return Group(bar, line)
    rows = []
    for a in sorted(active, key=lambda x: x.slot.index):
        step = f"{a.step}/{a.steps}" if a.steps and a.current > a.epoch else "-"
        # While the trainer starts up no epoch runs: "-/3", not "0/3" (nor a resumed run's last one).
        epoch = f"{a.shown_epoch() if a.started_at is not None else '-'}/{a.epochs or '?'}"
        rows.append([a.run_id, a.slot.name, epoch, step, "-" if a.loss is None else f"{a.loss:.3f}",
                     _pct(a.miou), _duration(a.eta(now)), labels.get(a.run_id, "")])
    # Every column but the spec keeps its header and values whole; the spec gets what is left (two
    # spaces between columns), shortened with an ellipsis.
    widths = [max(len(col), *(len(r[i]) for r in rows)) for i, col in enumerate(LIVE_COLUMNS)]
    spec_width = max(4, width - sum(widths[:-1]) - 2 * (len(widths) - 1))
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 1))
    for i, col in enumerate(LIVE_COLUMNS):
        table.add_column(col, no_wrap=True, width=min(widths[i], spec_width) if col == "spec" else widths[i],
                         justify="right" if col in ("epoch", "step", mn.LOSS, header(mn.MIOU), "ETA") else "left")
    for r in rows:
        spec = r[-1] if len(r[-1]) <= spec_width else r[-1][: spec_width - 1] + "…"
        table.add_row(*r[:-1], spec)
    return Group(bar, line, table)


def register(app: typer.Typer) -> None:
    app.command("run-grid")(run_grid)
