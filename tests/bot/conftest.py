"""Fixtures of the bot's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store.base import Store
from bot.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A connected store on a new SQLite file."""
    s = SqliteStore(tmp_path / "rollbot.db")
    await s.connect()
    yield s
    await s.close()
