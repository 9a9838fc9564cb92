"""Fixtures: the report database (built once per session) and an empty one to fill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imacsr_cli.store.store import Store
from reportdb import Filler, fill


@pytest.fixture(scope="session")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    path: Path = tmp_path_factory.mktemp("reportdb") / "imacsr.db"
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        ids = fill(store)
    return url, ids


@pytest.fixture
def filler(tmp_path: Path):
    """A fresh, empty database and a Filler on it: (url, filler)."""
    url = f"sqlite:///{tmp_path / 'imacsr.db'}"
    store = Store.open(url)
    yield url, Filler(store)
    store.close()
