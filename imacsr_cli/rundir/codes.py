"""Exit codes of the trainer process and the one vocabulary of end reasons.

The trainer's ``end`` event, the scheduler's classification (launch/classify.py) and the store's
``runs.reason`` / ``events.reason`` columns all use the names below; nothing else spells them.
"""

from __future__ import annotations

# Exit codes of `python -m imacsr_cli.train RUN_DIR`.
EXIT_OK = 0
EXIT_CRASH = 1  # an unexpected exception (traceback in train.log)
EXIT_BAD_SPEC = 2  # spec.json invalid, unknown model or dataset, missing data root
EXIT_NONFINITE = 3  # loss became NaN or inf
EXIT_OOM = 4  # out of memory (CUDA or CPU allocator)
EXIT_LOCKED = 5  # another trainer holds RUN_DIR/.lock
EXIT_INTERRUPTED = 6  # SIGTERM/SIGINT or parent gone; the last checkpoint is intact
EXIT_DISK_FULL = 7  # a write found no space left; the last checkpoint is intact, resume once space is back
EXIT_BAD_RESULT = 8  # RUN_DIR/result.json is not this run's (another run's, empty or corrupt); left as is

# End reasons: why a run failed, or why it went back to the queue.
CRASHED = "crashed"  # an unexpected exception or an unknown exit
BAD_SPEC = "bad_spec"  # the spec or the data is wrong: retrying cannot help
NONFINITE = "nonfinite"  # the loss became NaN or inf
OOM = "oom"  # out of memory
LOCKED = "locked"  # another trainer holds RUN_DIR (the run is "running elsewhere")
INTERRUPTED = "interrupted"  # a signal, or the trainer's parent scheduler is gone
TIMEOUT = "timeout"  # the scheduler saw no progress for --timeout seconds
ORPHANED = "orphaned"  # the owner scheduler is gone (Store.reclaim_orphans)
CANCELLED = "cancelled"  # the user cancelled it (imacsr runs cancel)
KILLED = "killed"  # SIGKILL from outside imacsr: most often the kernel's OOM killer (host memory)
DISK_FULL = "disk_full"  # a checkpoint or result write found no space: requeued, the grid stops launching
BAD_RESULT = "bad_result"  # RUN_DIR/result.json is another run's, empty or corrupt: not ingested

#: Every reason, as stored in the database.
REASONS = (CRASHED, OOM, NONFINITE, TIMEOUT, INTERRUPTED, ORPHANED, BAD_SPEC, LOCKED, CANCELLED, KILLED, DISK_FULL,
           BAD_RESULT)

#: What a trainer's exit code says (the trainer writes the same reason into its end event).
REASON_OF_EXIT = {
    EXIT_CRASH: CRASHED,
    EXIT_BAD_SPEC: BAD_SPEC,
    EXIT_NONFINITE: NONFINITE,
    EXIT_OOM: OOM,
    EXIT_LOCKED: LOCKED,
    EXIT_INTERRUPTED: INTERRUPTED,
    EXIT_DISK_FULL: DISK_FULL,
    EXIT_BAD_RESULT: BAD_RESULT,
}
EXIT_OF_REASON = {reason: code for code, reason in REASON_OF_EXIT.items()}

#: Reasons a retry can cure: the run itself is fine, its circumstances were not.
RETRYABLE = frozenset({INTERRUPTED, ORPHANED, OOM, KILLED})

# Reasons written by trainers before this vocabulary was shared (events.jsonl of older runs).
LEGACY_REASONS = {"crash": CRASHED}
