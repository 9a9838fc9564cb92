"""Plan-time checks of run-grid, before anything is enqueued or launched: which runs cannot find their
data, and which "running" runs are really orphans that the scheduler will resume.
"""

from __future__ import annotations

from typing import Any

from imacsr_cli.launch.executor import pid_alive
from imacsr_cli.store import Store


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

