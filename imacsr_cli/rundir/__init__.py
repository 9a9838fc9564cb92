"""The run directory: the contract between a trainer and whoever started it (docs/contracts.md).

A run directory (RunPaths) holds spec.json (the input, written by ``write_spec`` only), events.jsonl
(typed records: Start, Heartbeat, Epoch, End; ``EventWriter`` / ``read_events``), checkpoint.pt,
result.json (``Result`` / ``read_result``: its presence means success), train.log and trainer.out.
The trainer's exit codes and the end reasons (codes.py) are shared by the trainer, the scheduler's
classification and the store. ``code_version`` says which code trained a run.

Imports nothing of imacsr but errors and metric_names (and never torch): the trainer, launch, store
and cli all import it, and it imports none of them.
"""

from imacsr_cli.rundir import codes
from imacsr_cli.rundir.code import code_version, package_root
from imacsr_cli.rundir.events import (
    HEARTBEAT_SECONDS,
    CheckpointSetAside,
    End,
    Epoch,
    Event,
    EventWriter,
    Heartbeat,
    Start,
    Step,
    read_events,
)
from imacsr_cli.rundir.files import (
    CodeVersion,
    Result,
    ResultError,
    Scores,
    read_result,
    write_atomic,
    write_json,
    write_spec,
)
from imacsr_cli.rundir.paths import RunPaths, lock_holder

__all__ = [
    "HEARTBEAT_SECONDS",
    "CheckpointSetAside",
    "CodeVersion",
    "End",
    "Epoch",
    "Event",
    "EventWriter",
    "Heartbeat",
    "Result",
    "ResultError",
    "RunPaths",
    "Scores",
    "Start",
    "Step",
    "code_version",
    "codes",
    "lock_holder",
    "package_root",
    "read_events",
    "read_result",
    "write_atomic",
    "write_json",
    "write_spec",
]
