"""Checkpoints (torch), written atomically through the run directory's one writer.

A checkpoint holds the run's ``run_id`` and ``history`` (the epoch records so far), so a checkpoint
found in RUN_DIR is checked before use (``checkpoint_problem``) and no epoch's history depends on
events.jsonl alone. ``set_aside`` keeps a bad one; ``is_disk_full`` tells ENOSPC behind torch's errors.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import torch

from imacsr_cli.rundir import write_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only=True refuses pickled code: a checkpoint holds tensors, numbers and strings only.
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_problem(state: Any, run_id: str) -> str | None:
    """Why a loaded checkpoint cannot resume run ``run_id`` (None when it can)."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a checkpoint"
    if state.get("run_id") != run_id:
        return f"belongs to run {state.get('run_id') or '(none recorded)'}, not {run_id}"
    missing = [k for k in ("epoch", "trainee") if k not in state]
    if not state.get("final"):
        missing += [k for k in ("optimizer", "schedule", "scaler", "rng_cpu") if k not in state]
    if missing:
        return f"lacks {', '.join(missing)}"
    return None


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.bad-<UTC time>`` beside it (kept for inspection); return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    os.replace(path, target)
    return target


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write ran out of space. torch.save reports ENOSPC as a RuntimeError ("enforce
    fail at inline_container.cc ... unexpected pos"), which carries no errno: then the file system
    of the file being written is checked for free space."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if "No space left on device" in text or "database or disk is full" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def low_on_space(directory: Path, need_bytes: int = 64 << 20) -> bool:
    """Whether the file system of ``directory`` has less than ``need_bytes`` free for us."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < need_bytes
