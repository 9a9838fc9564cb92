"""The cluster suite: real PostgreSQL and Slurm (see tests/services.py for how they are found)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "launch"))  # orchhelp: tiny grids, the CLI as a subprocess
sys.path.insert(0, str(HERE.parent / "store"))  # storehelp: grid rows

from services import fresh_pg_database  # noqa: E402


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database (skipped with the reason when no server is set up)."""
    with fresh_pg_database() as url:
        yield url
