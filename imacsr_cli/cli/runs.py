"""`imacsr runs show|logs|retry|cancel`: one run at a time (a unique prefix of its id works)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from imacsr_cli import metric_names as mn
from imacsr_cli.cli.options import db_option
from imacsr_cli.cli.status import age, cells_text, table
from imacsr_cli.units import METRIC_NAMES, metric_text

runs_app = typer.Typer(help="Show, follow, retry or cancel single runs.", no_args_is_help=True)

_DB = db_option()
_RUNS_DIR = typer.Option(Path("results/runs"), "--runs-dir",
                         help="Where run directories are, for runs not started yet.")


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix (at least 4 characters)."),
    events: int = typer.Option(20, "--events", help="How many of the last events to show."),
    db: str = _DB,
    runs_dir: Path = _RUNS_DIR,
) -> None:
    """A run's spec, state, metrics, files and last events."""
    from imacsr_cli.launch.rerun import result_missing, run_paths
    from imacsr_cli.spec.ranges import check_option
    from imacsr_cli.store import Store

    check_option("--events", events)
    with Store.open(db, create=False) as store:
        r = store.run(run_id, events=events)
        metrics = store.metrics_frame([r["run_id"]], split="train", names=[mn.LOSS])
    paths = run_paths(r, runs_dir)
    now = time.time()
    out = [f"run {r['run_id']}", ""]
    state = r["state"] + (f" ({r['reason']})" if r["reason"] else "")
    if result_missing(r, runs_dir):
        state += (f" — but {paths.result} is gone (directory deleted?); `imacsr runs rerun {r['run_id']}` or "
                  f"`imacsr run-grid GRID --retrain-missing` trains it again")
    info = [
        ("state", state),
        ("epoch", f"{r['epoch']}/{r['epochs']}"),
        ("attempts", r["attempts"]),
        ("grids", "; ".join(f"{g['grid']} [{cells_text(g['cell'])}]" for g in r["grids"]) or "-"),
    ]
    if r["owner"]:
        where = f"trainer pid {r['trainer_pid'] or '-'}" if not r.get("handle") else r["handle"].replace(":", " job ", 1)
        info.append(("owner", f"{r['owner']} on {r['host'] or '-'} ({where} on {r['slot'] or '-'})"))
    elif r.get("handle"):
        info.append(("job", r["handle"].replace(":", " job ", 1)))
    for key, label in (("created_at", "created"), ("started_at", "started"), ("finished_at", "finished"),
                       ("heartbeat_at", "heartbeat")):
        if r[key]:
            info.append((label, f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r[key]))} "
                                f"({age(now - r[key])} ago)"))
    if r["exit_code"] is not None:
        info.append(("exit code", r["exit_code"]))
    if r["retries"]:
        info.append(("retries", r["retries"]))
    if r["code"] is not None:
        info.append(("code", r["code"].describe()))
    out += [f"  {k + ':':<12}{v}" for k, v in info]
    if r["message"]:
        out += ["", "message:"] + [f"  {line}" for line in str(r["message"]).splitlines()]
    out += ["", "spec:"] + [f"  {line}" for line in _spec_lines(r["spec"])]
    if r["final"]:
        main = [k for k in mn.MAIN if k in r["final"]]
        out += ["", "final metrics (dataset level):",
                "  " + "  ".join(metric_text(k, r["final"][k]) for k in main)]
        paper = [k for k in mn.MAIN if mn.convention_name(k, mn.PAPER) in r["final"]]
        if paper:
            out.append("  eq. (13) per image: " + "  ".join(
                metric_text(k, r["final"][mn.convention_name(k, mn.PAPER)]) for k in paper))
    elif r["last_val"]:
        out += ["", "last evaluation: " + "  ".join(metric_text(k, v) for k, v in r["last_val"].items()
                                                   if v is not None)]
    if not metrics.empty:
        out += ["", "train loss by epoch: " + "  ".join(f"{int(e)}: {v:.4f}" for e, v in
                                                        zip(metrics["epoch"], metrics["value"]))]
    out += ["", "files:"]
    files = [(name, getattr(paths, name))
             for name in ("root", "spec", "events", "checkpoint", "result", "log", "stdout")]
    for name, p in files:
        out.append(f"  {name + ':':<12}{p}{'' if p.exists() else '  (missing)'}")
    if r["events"]:
        out += ["", f"events (last {len(r['events'])}):"]
        rows = [[time.strftime("%H:%M:%S", time.localtime(e["time"])), e["kind"], e["reason"] or "",
                 (e["detail"] or "").splitlines()[0] if e["detail"] else ""] for e in r["events"]]
        out += ["  " + line for line in table(["TIME", "EVENT", "REASON", "DETAIL"], rows).splitlines()]
    typer.echo("\n".join(out))


def _spec_lines(spec: dict[str, Any]) -> list[str]:
    lines = []
    for section, values in spec.items():
        if isinstance(values, dict):
            lines += [f"{section}.{k} = {json.dumps(v)}" for k, v in values.items()]
        else:
            lines.append(f"{section} = {json.dumps(values)}")
    return lines


@runs_app.command("logs")
def logs(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    db: str = _DB,
    runs_dir: Path = _RUNS_DIR,
) -> None:
    """Print the run's train.log (and follow it while the run is queued or running)."""
    from imacsr_cli.errors import NotFound
    from imacsr_cli.launch.rerun import run_paths
    from imacsr_cli.rundir import RunPaths
    from imacsr_cli.store import Store

    with Store.open(db, create=False) as store:
        rec = store.get(run_id)
        path = run_paths(rec, runs_dir).log
        if not follow:
            if not path.exists():
                raise NotFound(f"run {rec.run_id} has no train.log yet ({path}); it is {rec.state}")
            sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
            return
        offset = 0
        try:
            while True:
                offset = _copy_from(path, offset)
                rec = store.get(rec.run_id)
                if rec.state not in ("queued", "running"):
                    offset = _copy_from(path, offset)
                    typer.echo(f"-- run {rec.run_id} {rec.state}" + (f" ({rec.reason})" if rec.reason else ""),
                               err=True)
                    return
                if rec.run_dir and Path(rec.run_dir) != path.parent:  # started since we looked
                    path, offset = RunPaths(Path(rec.run_dir)).log, 0
                time.sleep(0.5)
        except KeyboardInterrupt:
            return


def _copy_from(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return offset
    if data:
        sys.stdout.write(data.decode("utf-8", errors="replace"))
        sys.stdout.flush()
    return offset + len(data)


@runs_app.command("retry")
def retry(
    run_id: str = typer.Argument(None, help="Run id or a unique prefix."),
    failed: bool = typer.Option(False, "--failed", help="Every failed run (of --grid, or of all grids)."),
    grid: str = typer.Option(None, "--grid", help="With --failed: only this grid's runs."),
    cancelled: bool = typer.Option(False, "--cancelled", help="With --failed: cancelled runs too."),
    force: bool = typer.Option(False, "--force", help="Train a succeeded run again (as `runs rerun`)."),
    db: str = _DB,
    runs_dir: Path = _RUNS_DIR,
) -> None:
    """Queue a failed or cancelled run again (with a fresh retry budget); run-grid then trains it."""
    from imacsr_cli.errors import UsageError
    from imacsr_cli.store import Store

    if run_id is not None and failed:
        raise UsageError("runs retry: give a run id or --failed, not both")
    if run_id is None and not failed:
        what = "--grid selects among failed runs: add --failed" if grid or cancelled else "give a run id or --failed"
        raise UsageError(f"runs retry: {what}")
    if run_id is not None and (grid or cancelled):
        raise UsageError("runs retry: --grid and --cancelled go with --failed, not with a run id")
    if force and run_id is None:
        raise UsageError("runs retry: --force takes a run id (one succeeded run to train again)")
    with Store.open(db, create=False) as store:
        if run_id is not None:
            full = store.resolve_id(run_id)
            state = store.get(full).state
            if force and state == "succeeded":
                _rerun(store, full, runs_dir)
                ids = [full]
            elif state == "succeeded":
                raise UsageError(f"run {full} succeeded; `imacsr runs rerun {full}` (or retry --force) trains "
                                 f"it again, keeping the old result aside")
            else:
                ids = [full] if store.retry(full) else []
                typer.echo(f"{full} queued again" if ids else f"{full} is already {state}; nothing to do")
        else:
            if grid is not None:
                store.grid(grid)
            ids = store.retry_failed(grid, include_cancelled=cancelled)
            for r in ids:
                typer.echo(f"{r} queued again")
            typer.echo(f"{len(ids)} run{'s' if len(ids) != 1 else ''} queued again")
    if ids:
        typer.echo("`imacsr run-grid GRID` trains them")


@runs_app.command("rerun")
def rerun(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix of a succeeded run."),
    db: str = _DB,
    runs_dir: Path = _RUNS_DIR,
) -> None:
    """Train a succeeded run again from scratch; its old result, checkpoint and events are kept aside."""
    from imacsr_cli.store import Store

    with Store.open(db, create=False) as store:
        _rerun(store, store.resolve_id(run_id), runs_dir)
    typer.echo("`imacsr run-grid GRID` trains it")


def _rerun(store: Any, run_id: str, runs_dir: Path) -> None:
    from imacsr_cli.launch.rerun import rerun as rerun_run

    full, moved = rerun_run(store, run_id, runs_dir)
    kept = f"; kept aside: {', '.join(p.name for p in moved)}" if moved else ""
    typer.echo(f"{full} queued to be trained again{kept}")


@runs_app.command("cancel")
def cancel(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
    db: str = _DB,
) -> None:
    """Cancel a queued or running run; a running trainer on this host gets SIGTERM."""
    from imacsr_cli.launch.cancel import cancel_run
    from imacsr_cli.store import Store

    with Store.open(db, create=False) as store:
        c = cancel_run(store, run_id)
    if not c.cancelled:
        typer.echo(f"{c.run_id} is already {c.was}; nothing to cancel")
        return
    note = ""
    if c.signalled_pid is not None:
        note = f"; SIGTERM sent to its trainer (pid {c.signalled_pid})"
    elif c.remote_host is not None:
        note = f"; its scheduler on {c.remote_host} stops the trainer at its next heartbeat"
    elif c.slurm_note:
        note = c.slurm_note
    typer.echo(f"{c.run_id} cancelled (was {c.was}){note}")


@runs_app.command("plot")
def plot(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
    out: Path = typer.Option(None, "--out", help="Where to write the figures (default results/plots/<run_id>)."),
    db: str = _DB,
) -> None:
    """Draw one run's per-point diagnostics, training curves and convergence (PNG, PDF and CSV)."""
    from imacsr_cli.errors import NotFound
    from imacsr_cli.report import extra as ext
    from imacsr_cli.store import Store

    with Store.open(db, create=False) as store:
        rec = store.get(run_id)
    extra = ext.build_extra(["diagnostics", "curves", "convergence"], db=db, run_ids=[rec.run_id])
    if not extra.figures:
        raise NotFound(f"run {rec.run_id} has no per-epoch rows yet (it is {rec.state}); nothing to plot")
    for path in ext.write_extra(extra, out or Path("results/plots") / rec.run_id):
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
