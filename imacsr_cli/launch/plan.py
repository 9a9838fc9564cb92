"""run-grid's plan, before anything is enqueued or launched: the grid's runs, what the database already
knows of them (new / done / failed / running elsewhere / orphaned), and what cannot run (an uninstalled
model or dataset, a missing data root). ``make_plan`` assembles it; the CLI only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imacsr_cli.errors import NotFound
from imacsr_cli.launch.executor import pid_alive
from imacsr_cli.store import STATES, Store


@dataclass
class GridPlan:
    """What run-grid will do. ``store`` is open (and the caller closes it) only when the plan can be
    carried out: not ``plan_only`` and no ``problems``."""

    grid: Any  # spec.grid.GridSpec
    where: str  # the grid file as found
    rows: list[Any]  # GridSpec.expand(): every row, with an error for the ones that cannot run
    valid: list[Any]  # the rows without an error
    problems: list[str]  # one line per cause that keeps some runs from running: nothing is enqueued
    counts: dict[str, int]  # new, queued, running, succeeded, failed, cancelled, total, orphaned,
    # cannot_run (rows with an error), missing (succeeded runs whose result.json is gone)
    store: Store | None = field(default=None, repr=False)
    records: dict[str, Any] = field(default_factory=dict)  # run_id → RunRecord (plan_only, or some succeeded)
    missing: list[str] = field(default_factory=list)  # succeeded runs whose result.json is gone

    def enqueue(self) -> dict[str, int]:
        """Record the grid and queue its runs (idempotent; links to runs no longer in it are pruned)."""
        if self.store is None:
            raise RuntimeError("this plan cannot be carried out (plan only, or runs that cannot run)")
        self.store.upsert_grid(self.grid)
        return self.store.enqueue(self.grid.name, self.valid, prune=True)


def make_plan(path: str, db: str | None, lease: float, *, plan_only: bool = False, overrides: list[str] = (),
              max_runs: int | None = None, runs_dir: str | Path = "results/runs") -> GridPlan:
    """Read and expand the grid at ``path`` (``overrides``: run-grid --set over its [base]; refused
    above ``max_runs`` rows before it is expanded), check what it needs, and count its runs in ``db``.

    Nothing is written to the database (a missing SQLite file is not created) when ``plan_only`` or
    when some runs cannot run. SpecError / NotFound for a bad or missing grid file."""
    from imacsr_cli.launch.rerun import result_missing
    from imacsr_cli.spec.grid import GridSpec

    grid = GridSpec.find(path)
    grid.set_base(list(overrides))
    if max_runs is not None:
        grid.check_size(max_runs)
    rows = grid.expand()
    valid = [r for r in rows if r.error is None]
    problems = grid.check() + missing_data([r.spec for r in valid])
    ids = [r.run_id for r in valid]
    carry_out = not (plan_only or problems)
    try:
        store = Store.open(db, create=carry_out)
    except NotFound:  # a plan on a database that does not exist yet: everything is new; create nothing
        counts = {"new": len(ids), **{s: 0 for s in STATES}, "total": len(ids), "orphaned": 0,
                  "cannot_run": len(rows) - len(valid), "missing": 0}
        return GridPlan(grid, str(grid.path or path), rows, valid, problems, counts)
    try:
        counts = store.plan(run_ids=ids)
        counts["orphaned"] = len(orphaned(store, ids, lease)) if counts["running"] else 0
        records = store.records(ids) if plan_only or counts["succeeded"] else {}
    except BaseException:
        store.close()
        raise
    if not carry_out:
        store.close()
        store = None
    missing = [i for i, rec in records.items() if result_missing(rec, runs_dir)]
    counts["cannot_run"] = len(rows) - len(valid)  # so that the plan's counts add up to its rows
    counts["missing"] = len(missing)
    return GridPlan(grid, str(grid.path or path), rows, valid, problems, counts, store, records, missing)


def orphaned(store: Store, run_ids: list[str], lease: float, host: str | None = None) -> list[str]:
    """Which of ``run_ids`` are running under an owner that is gone (what the scheduler will reclaim:
    ``Store.orphans`` with the scheduler's pid check), without changing anything: for a plan that tells
    "running elsewhere" from "orphaned"."""
    wanted = set(run_ids)
    return [r for r in store.orphans(lease, pid_alive, host=host) if r in wanted]


def missing_data(specs: list[Any]) -> list[str]:
    """Plan-time check of every path the runs read, one line per cause, so a grid fails at once rather
    than one trainer at a time: each dataset root exists, is a directory and has the dataset's layout
    (the dataset reader's own scan, which lists files and decodes none), e.g. "3 runs need dataset
    'cityscapes' at /data/cityscapes, which does not exist"; each ``model.weights`` is a torch
    checkpoint (see ``weights_problem``). Generated datasets (synthetic) need no root."""
    from collections import Counter

    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.errors import DataError

    causes: Counter[str] = Counter()  # the cause, without its run count → runs
    roots: dict[tuple[str, str], str | None] = {}  # (dataset, root) → its problem, checked once
    weights: dict[str, str | None] = {}
    for spec in specs:
        if spec.model.weights:
            if spec.model.weights not in weights:
                weights[spec.model.weights] = weights_problem(spec.model.weights)
            if weights[spec.model.weights]:
                causes[f"key 'model.weights': {weights[spec.model.weights]}"] += 1
        try:
            root = data_registry.data_root(spec.data)
        except DataError as exc:
            causes[str(exc)] += 1
            continue
        if root is None:
            continue
        key = (spec.data.name, str(root))
        if key not in roots:
            roots[key] = _root_problem(spec.data.name, root)
        if roots[key]:
            causes[roots[key]] += 1  # type: ignore[index]
    lines = []
    for cause, n in causes.items():
        runs = f"{n} run{'s' if n != 1 else ''}"
        if cause.startswith("dataset "):  # "3 runs need dataset 'camvid' at R, which ..."
            lines.append(f"{runs} need{'s' if n == 1 else ''} {cause}")
        else:
            lines.append(f"{runs}: {cause}")
    return lines


def _root_problem(name: str, root: Path) -> str | None:
    """None when ``root`` holds dataset ``name`` in its layout, else the cause ("dataset 'camvid' at R,
    which does not exist (...)"), worded for "N runs need ..."."""
    from imacsr_cli.data.check import readers
    from imacsr_cli.errors import DataError

    if not root.exists():
        return f"dataset {name!r} at {root}, which does not exist (set data.root or IMACSR_DATA)"
    if not root.is_dir():
        return f"dataset {name!r} at {root}, which is a file, expected a directory (set data.root or IMACSR_DATA)"
    reader = readers().get(name)
    if reader is None:
        return None
    try:
        reader.scan(root).require_complete()
    except DataError as exc:
        detail = str(exc).removeprefix(f"{name} root {root}: ").removeprefix(f"{name}: ")
        return f"dataset {name!r} at {root}, which is not a {name} tree: {detail}"
    return None


# The first bytes of what torch.save writes: a zip archive (torch >= 1.6) or a pickle (older files).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def weights_problem(path: str) -> str | None:
    """None when ``path`` looks like a torch checkpoint by its first bytes (never unpickled here; the
    trainer loads it with weights_only=True), else what is wrong with it, in the user's words."""
    p = Path(path).expanduser()
    if not p.exists():
        return f"{path} does not exist (expected a local torch checkpoint, e.g. resnet18.pth)"
    if p.is_dir():
        return f"{path} is a directory, expected a torch checkpoint file"
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    if not head.startswith(_CHECKPOINT_MAGIC):
        return f"{path} is not a torch checkpoint (neither a zip archive nor a pickle, by its first bytes)"
    return None
