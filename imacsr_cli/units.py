"""The one unit in which a user reads a metric: percent, two decimals, labelled.

The record (result.json, events.jsonl, the database's metrics) holds fractions in [0, 1], as
torchmetrics and the confusion matrix compute them; every display and export (run-grid progress,
`imacsr train`, train.log, status and its JSON, `runs show` and its events, the report tables, their
CSV and JSON) shows percent, as the paper prints it, through the functions here, so that the same
run's mIoU is the same number everywhere: 0.47781 is "47.78" in a table under "mIoU (%)", "mIoU
47.78%" in a line of text, and 47.781 under the key ``mIoU_pct`` in JSON.

Imports only metric_names: the trainer, the store and the CLI all use it.
"""

from __future__ import annotations

import math
from typing import Any

from imacsr_cli import metric_names as mn

UNIT = "%"
DECIMALS = 2
PCT_SUFFIX = "_pct"
METRIC_NAMES = mn.MAIN  # the metrics shown in percent (and paper/<same>)


def percent(fraction: float) -> float:
    """A fraction in [0, 1] as percent, rounded to 1e-6 points so that 100 * 0.4778 reads 47.78
    in JSON (not 47.780000000000001)."""
    return round(100.0 * float(fraction), 6)


def fmt_pct(value: float | None, missing: str = "-") -> str:
    """A value already in percent, as every display prints it: '47.78'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return f"{float(value):.{DECIMALS}f}"


def fmt_metric(fraction: float | None, missing: str = "-") -> str:
    """A metric from the record (a fraction) as every display prints it: 0.4778 -> '47.78'."""
    if fraction is None:
        return missing
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        return missing
    return fmt_pct(100.0 * f, missing) if math.isfinite(f) else missing


def metric_text(name: str, fraction: float | None) -> str:
    """The metric in a line of text: 'mIoU 47.78%'."""
    shown = fmt_metric(fraction)
    return f"{name} {shown}{UNIT}" if shown != "-" else f"{name} -"


def header(name: str) -> str:
    """A column header: 'mIoU (%)'."""
    return f"{name} ({UNIT})"


def pct_key(name: str) -> str:
    """A JSON key or CSV column: 'mIoU_pct', 'final/mIoU_pct'."""
    return name + PCT_SUFFIX


def is_metric_key(key: str) -> bool:
    """'mIoU', 'final/mIoU', 'val/mF1', 'paper/mIoU', 'final/paper/mRecall': a metric in fractions."""
    return key.rsplit("/", 1)[-1] in METRIC_NAMES


def percent_keys(record: dict[str, Any]) -> dict[str, Any]:
    """A record for JSON output with every metric key renamed ``<key>_pct`` and its fraction made
    percent (None stays None); other keys as they are, in their order."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(key, str) and is_metric_key(key):
            out[pct_key(key)] = _pct_or_none(value)
        else:
            out[key] = value
    return out


def _pct_or_none(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return percent(f) if math.isfinite(f) else None
