"""Test-only fault injection: IMACSR_TEST_FAULT=<kind>@<epoch>[:once].

Lets the orchestrator's tests make a real trainer crash, hang, diverge or run out of memory at a chosen
epoch without mocking anything. Kinds: crash, hang, nan, oom, slow (at the start of the epoch or in its
steps); kill (SIGKILL to itself after the epoch's event is written, before its checkpoint); stall (at
start-up, after the data and model are built: waits, heartbeating, until RUN_DIR/.fault_release exists;
the epoch is ignored). With ``:once`` the fault fires only if the marker file does not exist yet, and
creates it, so a retried run succeeds.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

KINDS = ("crash", "hang", "nan", "oom", "slow", "kill", "stall")
_OOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


@dataclass(frozen=True)
class Fault:
    kind: str
    epoch: int
    once: bool


def from_env(value: str | None = None) -> Fault | None:
    value = os.environ.get("IMACSR_TEST_FAULT", "") if value is None else value
    if not value:
        return None
    spec, _, flag = value.partition(":")
    kind, _, epoch = spec.partition("@")
    if kind not in KINDS or not epoch.isdigit() or flag not in ("", "once"):
        raise ValueError(f"IMACSR_TEST_FAULT={value!r}: expected <{'|'.join(KINDS)}>@<epoch>[:once]")
    return Fault(kind, int(epoch), flag == "once")


def _fires(fault: Fault, marker: Path) -> bool:
    if fault.once:
        if marker.exists():
            return False
        marker.touch()
    return True


def at_startup(fault: Fault | None, marker: Path, release: Path) -> None:
    """``stall``: block until ``release`` exists (the trainer's start-up heartbeats go on meanwhile)."""
    if fault is None or fault.kind != "stall" or not _fires(fault, marker):
        return
    while not release.exists():
        time.sleep(0.1)


def before_checkpoint(fault: Fault | None, epoch: int, marker: Path) -> None:
    """``kill``: the trainer SIGKILLs itself between the epoch's event and its checkpoint."""
    if fault is not None and fault.kind == "kill" and epoch == fault.epoch and _fires(fault, marker):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # the signal is on its way


def arm(fault: Fault | None, epoch: int, marker: Path) -> Fault | None:
    """The fault to apply during this epoch, or None. Raising faults (crash, oom, hang) act here."""
    if fault is None or epoch != fault.epoch or fault.kind in ("kill", "stall"):
        return None
    if fault.once:
        if marker.exists():
            return None
        marker.touch()
    if fault.kind == "crash":
        raise RuntimeError(f"injected crash at epoch {epoch} (IMACSR_TEST_FAULT)")
    if fault.kind == "oom":
        raise _OOM(f"injected out-of-memory at epoch {epoch} (IMACSR_TEST_FAULT)")
    if fault.kind == "hang":
        while True:  # no heartbeats: a scheduler must see a hang
            time.sleep(3600)
    return fault  # nan and slow act inside the training step
