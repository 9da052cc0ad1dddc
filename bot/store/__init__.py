"""State store: Redis when REDIS_URL is set, else an SQLite file; the models re-exported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.base import (
    AuditEntry,
    Job,
    JournalEntry,
    LockInfo,
    Pruned,
    RateLimit,
    Record,
    Store,
    now,
)

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "AuditEntry",
    "Job",
    "JournalEntry",
    "LockInfo",
    "Pruned",
    "RateLimit",
    "Record",
    "Store",
    "now",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """An unconnected store for these settings; the caller awaits `connect()`."""
    # imported here so a process loads only the client library of the backend it uses
    if settings.redis_url is not None and settings.redis_url.get_secret_value():
        from bot.store.redis import RedisStore

        return RedisStore(settings.redis_url.get_secret_value())
    from bot.store.sqlite import SqliteStore

    return SqliteStore(settings.rollbot_db)
