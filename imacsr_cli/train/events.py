"""events.jsonl: the trainer's running account of a run, one JSON object per line.

Every line has ``event`` and ``time`` (Unix seconds). The kinds, in the order they appear:

- ``start``: ``run_id``, ``pid``, ``host``, ``device``, ``epochs``, ``steps_per_epoch``,
  ``resumed_from`` (the last finished epoch of the checkpoint, 0 for a fresh start).
- ``heartbeat``: ``epoch`` (1-based, the one in progress), ``step``, ``steps``, ``loss`` (last batch).
  At most one every ``HEARTBEAT_SECONDS``; a scheduler takes silence as a sign of a hang.
- ``epoch``: ``epoch``, ``epochs``, ``train`` (mean losses of the epoch, one key per term:
  ``loss``, ``ce``, ``mi/<point>``, ``ne/<point>``; and the diagnostics ``diag/...`` of
  imacsr_cli/train/diagnostics.py), ``val`` (metrics of the evaluation, dataset-level
  convention: ``mIoU``, ``mF1``, ``mPrecision``, ``mRecall``, in [0, 1]; empty when the epoch was not
  evaluated), ``lr``, ``seconds``, ``images_per_s``.
- ``end``: ``status`` ("succeeded" | "failed" | "interrupted"), ``reason`` (for failures: "nonfinite",
  "oom", "crash", "interrupted", "locked", "bad_spec"), ``message`` (one line), ``exit_code``.

A line is written whole and flushed; a reader must skip a last line that does not parse (the writer may
be mid-line when it is read).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

HEARTBEAT_SECONDS = 5.0


class EventWriter:
    """Appends events to events.jsonl; ``listener`` (e.g. a progress bar) sees each one too."""

    def __init__(self, path: Path, listener: Callable[[dict[str, Any]], None] | None = None):
        self._fh = open(path, "a", buffering=1, encoding="utf-8")
        self._last_heartbeat = 0.0
        self._listener = listener

    def emit(self, event: str, **fields: Any) -> None:
        record = json_safe({"event": event, "time": time.time(), **fields})
        self._fh.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self._listener:
            self._listener(record)

    def progress(self, **fields: Any) -> None:
        """Per-step progress: always to the listener, to the file as a heartbeat when one is due."""
        if self._listener:
            self._listener({"event": "step", "time": time.time(), **fields})
        self.heartbeat(**fields)

    def heartbeat(self, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if force or now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            self.emit("heartbeat", **fields)

    def close(self) -> None:
        self._fh.close()


def json_safe(obj: Any) -> Any:
    """NaN and inf become null (strict JSON); tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte ``offset`` on, and the offset to continue from (after the last whole line)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    events: list[dict[str, Any]] = []
    consumed = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line still being written
        consumed += len(line)
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + consumed
