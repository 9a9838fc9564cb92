"""Training a succeeded run again on purpose (``imacsr runs rerun``, ``runs retry --force``,
``run-grid --retrain-missing``), and finding succeeded runs whose files are gone.

result.json is the truth about success, so a rerun first sets the run's result, checkpoint and events
aside (renamed in the run directory, never deleted), then queues the run: the next trainer starts from
scratch and the old result stays readable beside the new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imacsr_cli.errors import UsageError
from imacsr_cli.rundir import RunPaths


def run_paths(run: Any, runs_dir: str | Path) -> RunPaths:
    """A run's files: its stored run_dir, else RUNS_DIR/<run_id> (a run that never started)."""
    stored = run["run_dir"] if isinstance(run, dict) else run.run_dir
    run_id = run["run_id"] if isinstance(run, dict) else run.run_id
    return RunPaths(Path(stored)) if stored else RunPaths.of(runs_dir, run_id)


def result_missing(run: Any, runs_dir: str | Path) -> bool:
    """A succeeded run whose result.json is not on disk (its directory was deleted, or moved)."""
    state = run["state"] if isinstance(run, dict) else run.state
    return state == "succeeded" and not run_paths(run, runs_dir).result.exists()


def missing_results(run_dirs: Iterable[str]) -> int:
    """How many of these (succeeded runs') directories hold no result.json: os.path on plain strings,
    not a RunPaths each, since `status GRID` makes this check over every succeeded run of the grid."""
    tail = os.sep + RunPaths.RESULT
    return sum(not os.path.exists(d + tail) for d in run_dirs)


def set_aside(paths: RunPaths) -> list[Path]:
    """Rename result.json, checkpoint.pt and events.jsonl to result.before-rerun-N.json (etc., N the
    first number free for all three); returns the new paths. Nothing is deleted."""
    files = [p for p in (paths.result, paths.checkpoint, paths.events) if p.exists()]
    n = 1
    while any(_aside(p, n).exists() for p in (paths.result, paths.checkpoint, paths.events)):
        n += 1
    moved = []
    for p in files:
        target = _aside(p, n)
        p.rename(target)
        moved.append(target)
    return moved


def _aside(p: Path, n: int) -> Path:
    return p.with_name(f"{p.stem}.before-rerun-{n}{p.suffix}")


def rerun(store: Any, run_id: str, runs_dir: str | Path) -> tuple[str, list[Path]]:
    """Queue a succeeded run to be trained again; returns (full run id, the files set aside).
    UsageError for a run that is not succeeded (``runs retry`` is for failed and cancelled runs)."""
    rec = store.get(run_id)
    if rec.state != "succeeded":
        hint = "it is queued already" if rec.state in ("queued", "running") else \
            f"`imacsr runs retry {rec.run_id}` queues a {rec.state} run"
        raise UsageError(f"run {rec.run_id} is {rec.state}, not succeeded; {hint}")
    moved = set_aside(run_paths(rec, runs_dir))
    if not store.rerun(rec.run_id):  # it changed state in between (another user's rerun)
        raise UsageError(f"run {rec.run_id} is no longer succeeded; nothing queued")
    return rec.run_id, moved
