"""The real services the cluster tests need (PostgreSQL, Slurm): find them, or skip with the reason.

`.ci/services.sh start` starts both and prints their environment (IMACSR_TEST_PG_URL, SLURM_CONF,
IMACSR_TEST_SLURM). Without them a test that needs one is skipped with a reason that says how to get
it; with IMACSR_REQUIRE_SERVICES=1 (CI, `just test-cluster`) a missing service is a failure instead,
so the cluster suite can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOW = "start them with `.ci/services.sh start` and eval its output (or run `just test-cluster`)"


def required() -> bool:
    return os.environ.get("IMACSR_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> None:
    """Skip (or, with IMACSR_REQUIRE_SERVICES=1, fail) the calling test: ``what`` is missing."""
    if required():
        pytest.fail(f"{what} (IMACSR_REQUIRE_SERVICES=1: a missing service is a failure)", pytrace=False)
    pytest.skip(f"{what}; {HOW}")


def pg_admin_url() -> str:
    """The PostgreSQL server's admin URL (SQLAlchemy form), or skip/fail."""
    url = os.environ.get("IMACSR_TEST_PG_URL")
    if not url:
        unavailable("no PostgreSQL server (IMACSR_TEST_PG_URL is not set)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'imacsr[postgres]')")
    return url


def _libpq(url: str) -> str:
    """The libpq form of a ``postgresql+psycopg://`` URL (for psycopg.connect)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_db(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards (connections and all)."""
    import psycopg

    admin = pg_admin_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(admin, name)
    finally:
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def slurm_available() -> None:
    """Skip/fail unless a Slurm cluster answers (sinfo) and accounting works (sacct)."""
    if not os.environ.get("IMACSR_TEST_SLURM"):
        unavailable("no Slurm cluster (IMACSR_TEST_SLURM is not set)")
    for tool in ("sbatch", "squeue", "sacct", "scancel", "scontrol"):
        if shutil.which(tool) is None:
            unavailable(f"Slurm's {tool} is not on PATH")
    try:
        import submitit  # noqa: F401
    except ImportError:
        unavailable("submitit is not installed (pip install 'imacsr[slurm]')")
    for cmd in (["sinfo", "-h", "-o", "%T"], ["sacct", "-n", "-X", "-S", "now"]):
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            unavailable(f"Slurm does not answer ({' '.join(cmd)}: {exc})")
