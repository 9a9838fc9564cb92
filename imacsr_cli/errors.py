"""Errors a user can cause, and the exit codes shared by the trainer and the scheduler.

Library code raises these; the CLI turns them into one line on stderr and an exit code.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class ImacsrError(Exception):
    """Base of every error that is the user's to fix. ``str(err)`` is the whole one-line message."""

    exit_code = 1


class SpecError(ImacsrError):
    """A run spec or grid file is invalid (unknown key, wrong type, impossible points...)."""

    exit_code = 2


class DataError(ImacsrError):
    """A dataset root is missing, incomplete or broken."""

    exit_code = 2


class StoreError(ImacsrError):
    """The results database cannot be opened, is of an unknown schema, or a query is invalid."""

    exit_code = 2


class UsageError(ImacsrError):
    """A command-line option's value is invalid or options do not fit together (exit 2, like a bad spec)."""

    exit_code = 2


class RunFailed(ImacsrError):
    """A training run (or a grid of them) did not succeed."""

    exit_code = 1


class NotFound(ImacsrError):
    """A run, grid or file named by the user does not exist."""

    exit_code = 2


# Exit codes of the trainer process (python -m imacsr_cli.train RUN_DIR). The scheduler reads them
# to classify a failure; keep both sides on these names.
EXIT_OK = 0
EXIT_CRASH = 1  # an unexpected exception (traceback in train.log)
EXIT_BAD_SPEC = 2  # spec.json invalid, unknown model or dataset, missing data root
EXIT_NONFINITE = 3  # loss became NaN or inf
EXIT_OOM = 4  # out of memory (CUDA or CPU allocator)
EXIT_LOCKED = 5  # another trainer holds RUN_DIR/.lock
EXIT_INTERRUPTED = 6  # SIGTERM/SIGINT or parent gone; the last checkpoint is intact
