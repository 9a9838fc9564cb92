"""Failure taxonomy: what became of a trainer process, from its exit code, its events and its log.

The result file is the truth about success: with RUN_DIR/result.json present the run succeeded,
whatever the exit code says (a trainer killed after writing it has still finished). Everything else
maps onto the reasons stored on the run (docs/contracts.md):

======================  ===========  =====================================================
what happened           reason       what the scheduler does
======================  ===========  =====================================================
exit 1, or unknown      crashed      failed; message = exit code + last lines of the log
exit 2                  bad_spec     failed (retrying cannot help)
exit 3                  nonfinite    failed (same seed, same data: it would diverge again)
exit 4                  oom          retried while --retries allow (on a different slot)
exit 5                  locked       back to the queue, no attempt spent: another trainer
                                     holds RUN_DIR, the run is "running elsewhere"
exit 6                  interrupted  retried while --retries allow (someone else stopped it)
exit 7                  disk_full    back to the queue, no attempt spent; the scheduler stops
                                     launching (it resumes once space is back: run again)
exit 8                  bad_result   failed: RUN_DIR/result.json is not this run's (remedy in
                                     the message); also when the scheduler finds such a file
killed by SIGKILL       killed       retried while --retries allow (host memory: the kernel's
  (not by us)                        OOM killer sends SIGKILL)
we stopped it (Ctrl-C)  interrupted  back to the queue, no attempt spent
no progress > timeout   timeout      failed (a hang does not heal on retry)
owner gone              orphaned     back to the queue (decided by Store.reclaim_orphans)
======================  ===========  =====================================================
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imacsr_cli.rundir import End, codes
from imacsr_cli.rundir.codes import RETRYABLE

Verdict = Literal["succeeded", "failed", "requeue", "cancelled"]

KILLED_MESSAGE = ("killed by SIGKILL, not by imacsr: host memory is the likely cause (the kernel's out-of-memory "
                  "killer sends SIGKILL; see `dmesg`), or someone ran kill -9")

LOG_TAIL_LINES = 12
TRACEBACK_HEAD = "Traceback (most recent call last):"
TRACEBACK_MAX_LINES = 40  # the whole last traceback, up to this many lines


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str | None  # None only for success
    message: str
    exit_code: int | None

    @property
    def retryable(self) -> bool:
        return self.verdict == "failed" and self.reason in RETRYABLE


def classify(
    exit_code: int | None,
    *,
    result_exists: bool,
    end_event: End | None = None,
    log_tail: list[str] | None = None,
    timed_out: str | None = None,
    stopped: bool = False,
    cancelled: bool = False,
) -> Outcome:
    """The outcome of one trainer attempt.

    ``timed_out``: the scheduler killed it for making no progress (the text says how long).
    ``stopped``: the scheduler stopped it because it is shutting down (Ctrl-C, SIGTERM).
    ``cancelled``: the user cancelled the run (imacsr runs cancel).
    """
    if result_exists:
        return Outcome("succeeded", None, "", exit_code)
    end_msg = (end_event.message if end_event else "").strip()
    if cancelled:
        return Outcome("cancelled", codes.CANCELLED, "cancelled by the user", exit_code)
    if timed_out:
        return Outcome("failed", codes.TIMEOUT, timed_out, exit_code)
    if exit_code == codes.EXIT_LOCKED:
        return Outcome("requeue", codes.LOCKED, end_msg or "RUN_DIR is locked by another trainer", exit_code)
    if stopped:
        return Outcome("requeue", codes.INTERRUPTED,
                       "stopped by the scheduler (shutdown); resumes from its checkpoint", exit_code)
    if exit_code == -signal.SIGKILL:
        return Outcome("failed", codes.KILLED, KILLED_MESSAGE, exit_code)
    if exit_code == codes.EXIT_DISK_FULL:
        return Outcome("requeue", codes.DISK_FULL, (end_msg or "disk full: no space left in RUN_DIR")
                       + "; it resumes from its last checkpoint once space is back", exit_code)

    reason = codes.REASON_OF_EXIT.get(exit_code) if exit_code is not None else None
    if reason is None and end_event is not None and end_event.reason in codes.REASONS:
        reason = end_event.reason
    if exit_code == codes.EXIT_OK:
        reason = codes.CRASHED
        end_msg = "exited 0 without writing result.json"
    if reason is None:
        reason = codes.CRASHED
    if reason == codes.CRASHED:
        return Outcome("failed", codes.CRASHED, _crash_message(exit_code, end_msg, log_tail or []), exit_code)
    return Outcome("failed", reason, end_msg or _default_message(reason, exit_code), exit_code)


def _default_message(reason: str, exit_code: int | None) -> str:
    return {
        codes.BAD_SPEC: "bad spec or missing data (see train.log)",
        codes.NONFINITE: "loss became NaN or inf",
        codes.OOM: "out of memory",
        codes.INTERRUPTED: "interrupted (SIGTERM/SIGINT from outside the scheduler)",
    }.get(reason, f"exit code {exit_code}")


def describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "no exit code"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        hint = " (the kernel's OOM killer sends this)" if -exit_code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exit_code}"


def _crash_message(exit_code: int | None, end_msg: str, tail: list[str]) -> str:
    head = describe_exit(exit_code) + (f": {end_msg}" if end_msg else "")
    if not tail:
        return head
    return head + "\n" + "\n".join(tail)


def tail_lines(path: Path, n: int = LOG_TAIL_LINES, max_bytes: int = 16384, after: str | None = None,
               since: int = 0) -> list[str]:
    """The last ``n`` non-empty lines of a text file ([] when missing).

    ``since``: only what was written after this byte offset (one attempt's part of an appended log).
    ``after``: only lines after the last line starting with this marker (one launch's output).
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            start = max(since, size - max_bytes)
            fh.seek(start)
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [ln.rstrip() for ln in data.splitlines()]
    if start > since and lines:
        lines = lines[1:]  # probably cut mid-line
    if after is not None:
        marks = [i for i, ln in enumerate(lines) if ln.startswith(after)]
        if marks:
            lines = lines[marks[-1] + 1:]
    lines = [ln for ln in lines if ln.strip()]
    # A crash's last traceback is worth more than a fixed line count: start at its header when it is near
    # the end (a deeper call stack must not push "Traceback (most recent call last):" out of the message).
    heads = [i for i, ln in enumerate(lines) if ln.startswith(TRACEBACK_HEAD)]
    if heads and len(lines) - heads[-1] <= TRACEBACK_MAX_LINES:
        return lines[heads[-1]:]
    return lines[-n:]
