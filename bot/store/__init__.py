"""State store: pick the backend from the settings (Redis when REDIS_URL is set)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.base import AuditEntry, Job, JournalEntry, LockInfo, Record, Store, now

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["AuditEntry", "Job", "JournalEntry", "LockInfo", "Record", "Store", "now", "open_store"]


def open_store(settings: Settings) -> Store:
    """An unconnected store; the caller awaits connect()."""
    if settings.redis_url is not None:
        from bot.store.redis import RedisStore

        return RedisStore(settings.redis_url.get_secret_value())
    from bot.store.sqlite import SqliteStore

    return SqliteStore(settings.rollbot_db)
