"""Reading RUN_DIR/result.json: the one check of whether a result file is this run's result.

Torch-free, so that the scheduler (which checks a result before it ingests it) never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What a result.json must hold before anything reads its metrics (docs/contracts.md).
RESULT_KEYS = ("run_id", "metrics", "confusion_matrix", "epochs")


def read_result(path: Path, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """RUN_DIR/result.json if it is run ``run_id``'s result: ``(result, None)``; else ``(None, why)``.

    Empty, not JSON, another run's, or without its metrics: never ingested as this run's result.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, "does not exist"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not raw.strip():
        return None, "is empty"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"is not JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"holds a JSON {type(data).__name__}, not a result"
    if data.get("run_id") != run_id:
        return None, f"is the result of run {data.get('run_id') or '(none recorded)'}, not {run_id}"
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        return None, f"lacks {', '.join(missing)}"
    if not isinstance(data["metrics"], dict) or not isinstance(data["metrics"].get("dataset"), dict):
        return None, "has no dataset metrics"
    return data, None
