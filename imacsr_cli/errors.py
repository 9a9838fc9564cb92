"""Errors a user can cause (the trainer's exit codes are in imacsr_cli/rundir/codes.py).

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


class StoreDiskFull(StoreError):
    """A write to the results database found its disk full. ``where`` is the database file and
    ``detail`` SQLite's words; the scheduler stops a grid on it as on a trainer's full disk."""

    def __init__(self, message: str, where: str, detail: str):
        super().__init__(message)
        self.where = where
        self.detail = detail


class RunFailed(ImacsrError):
    """A training run (or a grid of them) did not succeed."""

    exit_code = 1


class NotFound(ImacsrError):
    """A run, grid or file named by the user does not exist."""

    exit_code = 2



class UsageError(ImacsrError):
    """An option value that cannot work (a lease shorter than the heartbeat, a negative retry count...)."""

    exit_code = 2
