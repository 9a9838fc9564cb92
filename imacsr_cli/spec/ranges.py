"""What numbers are allowed: the one table of ranges of every numeric spec key, and the one rule that
checks a number (spec keys, grid seeds and command-line options alike).

A value is allowed when it is finite (NaN and infinity never are) and within its range. The ranges say
what the method, the machine and the database can hold: a count that SQLite's int64 cannot store, a
learning rate of 1e308 or Adam betas outside [0, 1) would otherwise pass the plan and fail each run
late (or silently). ``RunSpec.from_dict`` checks every numeric field here as it reads it, so a grid, a
spec file, spec.json and ``--set`` give the same one-line message, naming the key and the range.

The command line's numbers (``--lease``, ``--timeout``, ``--jobs``...) are checked by the same rule
(``check_option``), against ``option_ranges()``.

Pure: runspec.py imports this module, so it imports nothing of the package at load time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """A closed (or, with ``lo_open``/``hi_open``, half-open) interval of finite numbers."""

    lo: float
    hi: float
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False
    what: str = ""  # the unit or meaning, for the message ("seconds", "pixels")

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def text(self) -> str:
        """'an integer in [1, 100000]', 'a number in (0, 10]', 'a number of seconds in [10, 604800]'."""
        kind = "an integer" if self.integer else "a number"
        if self.what:
            kind = f"{kind} of {self.what}"
        return f"{kind} in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"


def _num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        x = int(x)
    return f"{x:g}" if isinstance(x, float) else str(x)


# Every numeric key of RunSpec (dotted, as written in files). Lists and pairs (betas, sizes, α/λ per
# point) are checked element by element. 0 is each size's and count's "default" sentinel (resolve.py
# fills the dataset's value and then checks what needs the dataset, e.g. at least 8 pixels).
SPEC_RANGES: dict[str, Range] = {
    "data.train_size": Range(0, 8192, integer=True, what="pixels"),
    "data.eval_size": Range(0, 8192, integer=True, what="pixels"),
    "data.scale_range": Range(0, 16),
    "data.num_train": Range(0, 10_000_000, integer=True),
    "data.num_val": Range(0, 10_000_000, integer=True),
    "data.workers": Range(-1, 256, integer=True),  # -1: the slot's share of the cores (CUDA)
    "points.count": Range(0, 64, integer=True),
    "points.spacing": Range(1, 64, integer=True),
    # α may not be negative; λ may (an ablation of the opposite sign, specs/method.md §4).
    "method.alpha": Range(0, 1000),
    "method.lambda": Range(-1000, 1000),
    "optim.lr": Range(0, 10, lo_open=True),
    "optim.betas": Range(0, 1, hi_open=True),
    "optim.weight_decay": Range(0, 10),
    "train.epochs": Range(1, 100_000, integer=True),
    # BatchNorm (ASPP image pooling, every model here) needs two samples per batch in training.
    "train.batch_size": Range(2, 4096, integer=True),
    # torch, numpy and Python all take it; seed × 100003 + epoch (the data order) stays in int64.
    "train.seed": Range(0, 2**31 - 1, integer=True),
    "train.eval_every": Range(1, 100_000, integer=True),
}


def problem(key: str, value: Any) -> str | None:
    """None when ``value`` (a number, or a list of numbers) is allowed for spec key ``key``, else the
    message's tail: "expected a number in (0, 10], got nan". Keys without a range pass."""
    rng = SPEC_RANGES.get(key)
    if rng is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if not rng.allows(v):
            each = " for each value" if isinstance(value, (list, tuple)) else ""
            return f"expected {rng.text()}{each}, got {show(v)}"
    return None


def option_ranges() -> dict[str, Range]:
    """The allowed values of every numeric command-line option."""
    from imacsr_cli.launch.limits import LEASE, RETRIES, TIMEOUT  # the scheduler's timing rules

    day = 86400
    return {
        "--lease": LEASE,
        "--timeout": TIMEOUT,
        "--retries": RETRIES,
        "--jobs": Range(1, 1024, integer=True),
        "--per-gpu": Range(1, 64, integer=True),
        "--max-runs": Range(1, 10_000_000, integer=True),
        "--interval": Range(0.2, day, what="seconds"),
        "--events": Range(0, 1_000_000, integer=True),
        "--classes": Range(1, 1000, integer=True),
    }


def check_option(name: str, value: Any) -> Any:
    """``value`` when option ``name`` allows it (None, an option not given, always does); else
    UsageError "--lease: expected a number of seconds in [5, 604800], got nan"."""
    from imacsr_cli.errors import UsageError

    if value is not None and not option_ranges()[name].allows(value):
        raise UsageError(f"{name}: expected {option_ranges()[name].text()}, got {show(value)}")
    return value


def show(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # nan, inf, -inf
    return repr(v)
