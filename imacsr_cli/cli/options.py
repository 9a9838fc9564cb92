"""Options that several commands share, defined once (name, environment variable, help)."""

from __future__ import annotations

import typer

DB_HELP = "Results database URL or SQLite path (env IMACSR_DB; default sqlite:///results/imacsr.db)."


def db_option() -> str:
    """``--db URL`` (or env IMACSR_DB): the results database of every command that reads or writes it."""
    return typer.Option(None, "--db", envvar="IMACSR_DB", show_envvar=False, help=DB_HELP)
