from __future__ import annotations

import pytest

from imacsr_cli.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "imacsr.db"))
    yield s
    s.close()
