"""events.jsonl: the trainer's running account of a run, one JSON object per line, as typed records.

Every line is ``{"event": <kind>, "time": <Unix seconds>, ...fields}``. The kinds, in the order they
appear (the dataclasses below are the schema; their field comments say what each holds):

- ``start`` (Start): once per launch, when the data and model are ready.
- ``heartbeat`` (Heartbeat): at most one every ``HEARTBEAT_SECONDS`` while training or evaluating; a
  scheduler takes silence as a sign of a hang.
- ``epoch`` (Epoch): after each epoch's checkpoint; ``train`` holds the epoch's mean loss terms
  (metric_names: loss, ce, mi/<point>, ne/<point>, and the diagnostics diag/... of
  imacsr_cli/train/diagnostics.py), ``val`` the evaluation's dataset-level metrics
  (mIoU, mF1, mPrecision, mRecall, fractions; empty when the epoch was not evaluated).
- ``end`` (End): how the attempt ended; ``reason`` is one of codes.REASONS (None on success);
  ``signal`` names the signal that stopped it, when one did (absent in files of older trainers).

A line is written whole, flushed and fsynced. ``read_events`` reads from a byte offset, stops before
a last line that is not finished (the writer may be mid-line) and skips a line that does not parse
or is of an unknown kind (a newer trainer may add kinds), so a reader never fails on the file.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time as _time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union

from imacsr_cli.rundir.codes import LEGACY_REASONS

HEARTBEAT_SECONDS = 5.0


def _now() -> float:
    return _time.time()


@dataclass(frozen=True)
class Start:
    kind: ClassVar[str] = "start"
    run_id: str = ""
    pid: int = 0
    host: str = ""
    device: str = ""  # e.g. "NVIDIA H100" or "cpu (x86_64, 2 threads)"
    epochs: int = 0  # planned
    steps_per_epoch: int = 0
    resumed_from: int = 0  # last finished epoch of the checkpoint resumed from; 0 = a fresh start
    points: list[str] = field(default_factory=list)  # the iMacSR points trained
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Heartbeat:
    kind: ClassVar[str] = "heartbeat"
    phase: str = "train"  # train | eval
    epoch: int = 0  # 1-based, the one in progress
    step: int = 0
    steps: int = 0
    loss: float | None = None  # of the last batch (train only)
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Epoch:
    kind: ClassVar[str] = "epoch"
    epoch: int = 0  # 1-based, just finished (its checkpoint is on disk)
    epochs: int = 0  # planned
    train: dict[str, float | None] = field(default_factory=dict)  # mean loss terms of the epoch
    val: dict[str, float | None] = field(default_factory=dict)  # dataset-level metrics, or {}
    lr: float | None = None
    seconds: float | None = None  # training time of the epoch (evaluation excluded)
    images_per_s: float | None = None
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class End:
    kind: ClassVar[str] = "end"
    status: str = "failed"  # succeeded | failed | interrupted
    reason: str | None = None  # codes.REASONS; None on success
    message: str = ""  # one line
    exit_code: int | None = None
    signal: str | None = None  # the signal that stopped the trainer ("SIGTERM", "SIGUSR2"); None otherwise
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class CheckpointSetAside:
    """checkpoint.pt did not load or was another run's: renamed to ``path``; the run starts from scratch."""

    kind: ClassVar[str] = "checkpoint_set_aside"
    path: str = ""
    problem: str = ""
    message: str = ""
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Step:
    """Per-step progress, for a listener only (a progress bar); never written to the file."""

    kind: ClassVar[str] = "step"
    phase: str = "train"
    epoch: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    time: float = field(default_factory=_now)


Event = Union[Start, Heartbeat, Epoch, End, CheckpointSetAside]
KINDS: dict[str, type] = {cls.kind: cls for cls in (Start, Heartbeat, Epoch, End, CheckpointSetAside)}


def to_json(event: Event) -> str:
    """One line of events.jsonl (strict JSON: NaN and inf become null)."""
    record = {"event": event.kind, **json_safe(asdict(event))}
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def parse_event(obj: Any) -> Event | None:
    """A typed event from one decoded line; None for an unknown kind or a malformed record.
    Unknown fields are ignored (a newer trainer may add some); missing ones take their defaults."""
    if not isinstance(obj, dict):
        return None
    cls = KINDS.get(obj.get("event"))
    if cls is None:
        return None
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in obj:
            continue
        value = obj[f.name]
        if not _fits(f.type, value):
            return None
        kwargs[f.name] = value
    if cls is End and kwargs.get("reason") in LEGACY_REASONS:
        kwargs["reason"] = LEGACY_REASONS[kwargs["reason"]]
    return cls(**kwargs)


def _fits(annotation: Any, value: Any) -> bool:
    """Whether a decoded JSON value fits a field annotation (annotations are strings here)."""
    kind = str(annotation)
    if value is None:
        return "None" in kind
    if kind.startswith("dict"):
        return isinstance(value, dict)
    if kind.startswith("list"):
        return isinstance(value, list)
    if kind.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind.startswith("str"):
        return isinstance(value, str)
    return True


class EventWriter:
    """Appends events to events.jsonl; ``listener`` (e.g. a progress bar) sees each one too."""

    def __init__(self, path: Path, listener: Callable[[Event | Step], None] | None = None):
        self._fh = open(path, "a", buffering=1, encoding="utf-8")
        if _ends_mid_line(path):  # a torn last line (a kill mid-write): never glue the next event to it
            self._fh.write("\n")
        self._last_heartbeat = 0.0
        self._listener = listener
        self._mutex = threading.Lock()  # start-up heartbeats come from a thread
        self.started = False  # the ``start`` event was written

    def emit(self, event: Event) -> None:
        with self._mutex:
            self._fh.write(to_json(event) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.started = self.started or isinstance(event, Start)
        if self._listener:
            self._listener(event)

    def progress(self, phase: str, epoch: int, step: int, steps: int, loss: float | None = None) -> None:
        """Per-step progress: always to the listener, to the file as a heartbeat when one is due."""
        if self._listener:
            self._listener(Step(phase=phase, epoch=epoch, step=step, steps=steps, loss=loss))
        self.heartbeat(phase=phase, epoch=epoch, step=step, steps=steps, loss=loss)

    def heartbeat(self, force: bool = False, **fields: Any) -> None:
        now = _time.monotonic()
        if force or now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            self.emit(Heartbeat(**fields))

    def close(self) -> None:
        self._fh.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def json_safe(obj: Any) -> Any:
    """NaN and inf become null (strict JSON); tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def read_events(path: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events from byte ``offset`` on, and the offset to continue from (after the last whole line).
    A missing file is no events yet."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    events: list[Event] = []
    consumed = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line still being written
        consumed += len(line)
        try:
            event = parse_event(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if event is not None:
            events.append(event)
    return events, offset + consumed
