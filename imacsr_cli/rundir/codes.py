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

#: Every reason, as stored in the database.
REASONS = (CRASHED, OOM, NONFINITE, TIMEOUT, INTERRUPTED, ORPHANED, BAD_SPEC, LOCKED, CANCELLED)

#: What a trainer's exit code says (the trainer writes the same reason into its end event).
REASON_OF_EXIT = {
    EXIT_CRASH: CRASHED,
    EXIT_BAD_SPEC: BAD_SPEC,
    EXIT_NONFINITE: NONFINITE,
    EXIT_OOM: OOM,
    EXIT_LOCKED: LOCKED,
    EXIT_INTERRUPTED: INTERRUPTED,
}
EXIT_OF_REASON = {reason: code for code, reason in REASON_OF_EXIT.items()}

#: Reasons a retry can cure: the run itself is fine, its circumstances were not.
RETRYABLE = frozenset({INTERRUPTED, ORPHANED, OOM})

# Reasons written by trainers before this vocabulary was shared (events.jsonl of older runs).
LEGACY_REASONS = {"crash": CRASHED}
