"""Plan-time checks of run-grid, before anything is enqueued or launched: which runs cannot find their
data, and which "running" runs are really orphans that the scheduler will resume.
"""

from __future__ import annotations

from pathlib import Path
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
