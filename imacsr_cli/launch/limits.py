"""The rules for run-grid's timing options, in one place: the CLI checks them before it plans and the
Scheduler checks them again when it is built (a library user gets the same answer as a CLI user).

- ``--timeout`` (no progress for that long = a hang): at least two heartbeat intervals, since a healthy
  trainer may write nothing for up to ``HEARTBEAT_SECONDS``.
- ``--lease`` (a running run whose owner is silent that long is reclaimed): at least ``MIN_LEASE_S``
  and at least three of the scheduler's heartbeat intervals, so a busy but healthy scheduler never
  loses its runs to another one.
"""

from __future__ import annotations

from imacsr_cli.errors import UsageError
from imacsr_cli.rundir import HEARTBEAT_SECONDS
from imacsr_cli.spec.ranges import Range, show

MIN_TIMEOUT_S = 2 * HEARTBEAT_SECONDS
MIN_LEASE_S = 5.0
DEFAULT_LEASE_S = 60.0
DEFAULT_POLL_S = 0.2


MAX_SECONDS = 7 * 86400
TIMEOUT = Range(MIN_TIMEOUT_S, MAX_SECONDS, what="seconds")
LEASE = Range(MIN_LEASE_S, MAX_SECONDS, what="seconds")
RETRIES = Range(0, 100, integer=True)


def check_timeout(timeout: float | None) -> None:
    if timeout is not None:
        _check("--timeout", timeout, TIMEOUT)


def check_lease(lease: float, poll: float = DEFAULT_POLL_S) -> None:
    # A slower poll needs a longer lease: three polls at least.
    _check("--lease", lease, Range(max(MIN_LEASE_S, 3 * poll), MAX_SECONDS, what="seconds"))


def check_retries(retries: int) -> None:
    _check("--retries", retries, RETRIES)


def _check(name: str, value: float, rng: Range) -> None:
    """The rule of every number (spec/ranges.py): finite and in range, said the same way."""
    if not rng.allows(value):
        raise UsageError(f"{name}: expected {rng.text()}, got {show(value)}")
