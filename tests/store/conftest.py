"""The store under test, once per backend: an SQLite file and a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.store.base import Store
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore

Opener = Callable[[], Awaitable[Store]]


def same_backend(store: Store) -> Store:
    """Another instance (own connection) on the same file or server, like another replica."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, RedisStore)
    return RedisStore(store.url, store.prefix)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "rollbot.db")
    else:
        s = RedisStore(request.getfixturevalue("redis_url"))
    await s.connect()
    yield s
    await s.close()


@pytest.fixture
async def open_another(store: Store) -> AsyncIterator[Opener]:
    """Opens more connected instances of the backend under test; closes them afterwards."""
    opened: list[Store] = []

    async def open_one() -> Store:
        other = same_backend(store)
        await other.connect()
        opened.append(other)
        return other

    yield open_one
    for other in opened:
        await other.close()
