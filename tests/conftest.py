"""Fixtures shared by every test folder: the database URL that store and scheduler tests run against."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services.py

from services import fresh_pg_database  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty results database: a SQLite file, then a fresh PostgreSQL database (skipped, with the
    reason, when no server is set up; a failure under IMACSR_REQUIRE_SERVICES=1)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results' / 'imacsr.db'}"
        return
    with fresh_pg_database() as url:
        yield url
