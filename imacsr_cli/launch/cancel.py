"""Cancelling a run: the database first, then its trainer, if it runs on this host.

The order matters: the scheduler that owns the run finds it ``cancelled`` at its next write (NotOwner)
and records nothing more, so the SIGTERM that follows ends an attempt nobody counts as interrupted.
A trainer on another host is stopped by its own scheduler at its next heartbeat.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from imacsr_cli.launch.executor import trainer_of
from imacsr_cli.store import Store


@dataclass(frozen=True)
class Cancellation:
    run_id: str
    was: str  # the state before: queued, running, or (nothing done) succeeded, failed, cancelled
    cancelled: bool  # False: the run had already ended
    signalled_pid: int | None = None  # the local trainer that got SIGTERM
    remote_host: str | None = None  # the host whose scheduler stops the trainer
    slurm_note: str = ""  # what was done to its Slurm job (scancel / SIGTERM), as a note for the user


def cancel_run(store: Store, run_id: str) -> Cancellation:
    """Cancel ``run_id`` (a unique prefix works) and SIGTERM its trainer's process group when it runs
    on this host (checked against /proc, so a reused pid is never signalled)."""
    rec = store.get(run_id)
    if not store.cancel(rec.run_id):
        return Cancellation(rec.run_id, rec.state, False)
    if rec.state == "running" and rec.handle and rec.handle.startswith("slurm:"):
        from imacsr_cli.launch.slurm import cancel_job  # also when no scheduler watches the job any more

        return Cancellation(rec.run_id, rec.state, True, slurm_note=cancel_job(rec.handle.split(":", 1)[1]))
    if rec.state != "running" or not rec.trainer_pid or not rec.run_dir:
        return Cancellation(rec.run_id, rec.state, True)
    if rec.host != socket.gethostname():
        return Cancellation(rec.run_id, rec.state, True, remote_host=rec.host)
    if trainer_of(rec.trainer_pid, Path(rec.run_dir)):
        try:
            os.killpg(rec.trainer_pid, signal.SIGTERM)
        except OSError:
            return Cancellation(rec.run_id, rec.state, True)
        return Cancellation(rec.run_id, rec.state, True, signalled_pid=rec.trainer_pid)
    return Cancellation(rec.run_id, rec.state, True)
