"""run-grid's plan, before anything is enqueued or launched: the grid's runs, what the database already
knows of them (new / done / failed / running elsewhere / orphaned), and what cannot run (an uninstalled
model or dataset, a missing data root). ``make_plan`` assembles it; the CLI only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    counts: dict[str, int]  # new, queued, running, succeeded, failed, cancelled, total, orphaned
    store: Store | None = field(default=None, repr=False)

    def enqueue(self) -> dict[str, int]:
        """Record the grid and queue its runs (idempotent; links to runs no longer in it are pruned)."""
        if self.store is None:
            raise RuntimeError("this plan cannot be carried out (plan only, or runs that cannot run)")
        self.store.upsert_grid(self.grid)
        return self.store.enqueue(self.grid.name, self.valid, prune=True)


def make_plan(path: str, db: str | None, lease: float, *, plan_only: bool = False) -> GridPlan:
    """Read and expand the grid at ``path``, check what it needs, and count its runs in ``db``.

    Nothing is written to the database (a missing SQLite file is not created) when ``plan_only`` or
    when some runs cannot run. SpecError / NotFound for a bad or missing grid file."""
    from imacsr_cli.spec.grid import GridSpec

    grid = GridSpec.find(path)
    rows = grid.expand()
    valid = [r for r in rows if r.error is None]
    problems = grid.check() + missing_data([r.spec for r in valid])
    ids = [r.run_id for r in valid]
    carry_out = not (plan_only or problems)
    try:
        store = Store.open(db, create=carry_out)
    except NotFound:  # a plan on a database that does not exist yet: everything is new; create nothing
        counts = {"new": len(ids), **{s: 0 for s in STATES}, "total": len(ids), "orphaned": 0}
        return GridPlan(grid, str(grid.path or path), rows, valid, problems, counts)
    try:
        counts = store.plan(run_ids=ids)
        counts["orphaned"] = len(orphaned(store, ids, lease)) if counts["running"] else 0
    except BaseException:
        store.close()
        raise
    if not carry_out:
        store.close()
        store = None
    return GridPlan(grid, str(grid.path or path), rows, valid, problems, counts, store)


def orphaned(store: Store, run_ids: list[str], lease: float, host: str | None = None) -> list[str]:
    """Which of ``run_ids`` are running under an owner that is gone (what the scheduler will reclaim:
    ``Store.orphans`` with the scheduler's pid check), without changing anything: for a plan that tells
    "running elsewhere" from "orphaned"."""
    wanted = set(run_ids)
    return [r for r in store.orphans(lease, pid_alive, host=host) if r in wanted]


def missing_data(specs: list[Any]) -> list[str]:
    """Plan-time check that every dataset the runs read has a root that exists, one line per cause
    ("3 runs need dataset 'cityscapes' at /data/cityscapes, which does not exist"), so a grid fails at
    once rather than one trainer at a time. Generated datasets (synthetic) need nothing."""
    from collections import Counter

    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.errors import DataError

    causes: Counter[tuple[str, str, str]] = Counter()  # (dataset, root, error) → runs
    for spec in specs:
        try:
            root = data_registry.data_root(spec.data)
        except DataError as exc:
            causes[(spec.data.name, "", str(exc))] += 1
            continue
        if root is not None and not root.is_dir():
            causes[(spec.data.name, str(root), "")] += 1
    lines = []
    for (name, root, error), n in causes.items():
        runs = f"{n} run{'s' if n != 1 else ''}"
        if error:
            lines.append(f"{runs}: {error}")
        else:
            lines.append(f"{runs} need{'s' if n == 1 else ''} dataset {name!r} at {root}, which does not exist "
                         f"(set data.root or IMACSR_DATA)")
    return lines

