"""The SQLite store's rate-limit counters and retention pass (a mixin of SqliteStore)."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

import aiosqlite

from bot.store.base import Pruned, RateLimit, now

# Added to the file on connect, next to the first release's tables.
UPKEEP_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS rate_limits (
    key TEXT PRIMARY KEY, count INTEGER NOT NULL, resets_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_limits_reset ON rate_limits (resets_at);
COMMIT;
"""


class SqliteUpkeep:
    """Needs the store's `_tx()` write transaction."""

    def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    async def rate_hit(self, key: str, limit: int, window: float) -> RateLimit:
        t = now()
        async with self._tx() as db:
            # windows that ended are gone: the attempt starts a new one
            await db.execute("DELETE FROM rate_limits WHERE resets_at<=?", (t,))
            rows = await db.execute_fetchall(
                "INSERT INTO rate_limits (key, count, resets_at) VALUES (?,1,?) "
                "ON CONFLICT(key) DO UPDATE SET count=count+1 RETURNING count, resets_at",
                (key, t + window),
            )
            count, resets_at = next(iter(rows))
        if count <= limit:
            return RateLimit(allowed=True, count=count)
        return RateLimit(allowed=False, count=count, retry_after=max(resets_at - t, 0.0))

    async def prune(self, before: float) -> Pruned:
        async with self._tx() as db:
            diagnoses = await db.execute(
                "DELETE FROM records WHERE kind='diagnosis' AND created_at<?", (before,)
            )
            journals = await db.execute_fetchall(
                "SELECT DISTINCT rollback_id FROM journal WHERE rollback_id IN "
                "(SELECT id FROM records WHERE kind='rollback' AND created_at<?)",
                (before,),
            )
            await db.execute(
                "DELETE FROM journal WHERE rollback_id IN "
                "(SELECT id FROM records WHERE kind='rollback' AND created_at<?)",
                (before,),
            )
            queued = await db.execute_fetchall("SELECT seq, entry FROM outbox")
            stale = [seq for seq, entry in queued if _queued_at(entry) < before]
            await db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in stale])
        return Pruned(diagnoses=diagnoses.rowcount, journals=len(list(journals)), outbox=len(stale))


def _queued_at(entry: str) -> float:
    return float(json.loads(entry).get("at", 0.0))
