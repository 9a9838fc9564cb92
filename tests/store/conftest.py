from __future__ import annotations

import pytest

from imacsr_cli.store import Store


@pytest.fixture
def store(db_url):
    """An empty Store on each backend (db_url: SQLite, then PostgreSQL when a server is set up)."""
    s = Store.open(db_url)
    yield s
    s.close()
