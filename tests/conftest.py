"""Fixtures shared by every test folder: the database URL that store and scheduler tests run against."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # tests/services.py

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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`), every test on the real services runs on one worker, one
    after another: one of them restarts PostgreSQL, another fills the single Slurm node on purpose."""
    for item in items:
        params = getattr(item, "callspec", None)
        on_pg = "pg_url" in item.fixturenames or (params is not None and params.params.get("db_url") == "postgresql")
        if on_pg or HERE / "cluster" in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.services)  # `just test` runs these in a pytest of their own
            item.add_marker(pytest.mark.xdist_group("services"))
