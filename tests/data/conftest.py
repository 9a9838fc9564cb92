"""Every dataset test gets its own split-list cache and no $IMACSR_DATA."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Split lists that fall back to the cache go to a per-test folder, never ~/.cache."""
    monkeypatch.setenv("IMACSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMACSR_DATA", raising=False)

