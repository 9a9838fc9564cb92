"""Checkpoints (torch), written atomically through the run directory's one writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from imacsr_cli.rundir import write_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only=True refuses pickled code: a checkpoint holds tensors, numbers and strings only.
    return torch.load(path, map_location="cpu", weights_only=True)
