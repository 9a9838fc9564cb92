"""The rules for run-grid's timing options, in one place: the CLI checks them before it plans and the
Scheduler checks them again when it is built (a library user gets the same answer as a CLI user).

- ``--timeout`` (no progress for that long = a hang): at least two heartbeat intervals, since a healthy
  trainer may write nothing for up to ``HEARTBEAT_SECONDS``.
- ``--lease`` (a running run whose owner is silent that long is reclaimed): at least ``MIN_LEASE_S``
  and at least three of the scheduler's heartbeat intervals, so a busy but healthy scheduler never
  loses its runs to another one.
"""

from __future__ import annotations

import math

from imacsr_cli.errors import UsageError
from imacsr_cli.rundir import HEARTBEAT_SECONDS

MIN_TIMEOUT_S = 2 * HEARTBEAT_SECONDS
MIN_LEASE_S = 5.0
DEFAULT_LEASE_S = 60.0
DEFAULT_POLL_S = 0.2


def check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if not math.isfinite(timeout) or timeout < MIN_TIMEOUT_S:
        raise UsageError(f"--timeout: expected at least {MIN_TIMEOUT_S:g} seconds (trainers report every "
                         f"{HEARTBEAT_SECONDS:g} s), got {timeout:g}")


def check_lease(lease: float, poll: float = DEFAULT_POLL_S) -> None:
    minimum = max(MIN_LEASE_S, 3 * poll)
    if not math.isfinite(lease) or lease < minimum:
        raise UsageError(f"--lease: expected at least {minimum:g} seconds (a scheduler renews its lease every "
                         f"few seconds), got {lease:g}")


def check_retries(retries: int) -> None:
    if retries < 0:
        raise UsageError(f"--retries: expected 0 or more, got {retries}")
