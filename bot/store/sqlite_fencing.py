"""Claims of an execution with fencing tokens, for the SQLite store: one row per record holds
the current claim (token, owner, lease end); a write carrying an older token is refused."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

from bot.store.base import ExecutionClaim, Fenced, LockInfo, now

# Added by a later release than the first tables: created if missing, so old files keep working.
FENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS fences (
    name TEXT PRIMARY KEY, token INTEGER NOT NULL, owner TEXT NOT NULL,
    expires_at REAL NOT NULL);
"""


async def check_fence(db: aiosqlite.Connection, record_id: str, fence: int | None) -> None:
    """Raise Fenced when a claim later than `fence` holds the record (inside a write tx)."""
    if fence is None:
        return
    rows = list(
        await db.execute_fetchall("SELECT token, owner FROM fences WHERE name=?", (record_id,))
    )
    if rows and rows[0][0] > fence:
        raise Fenced(record_id, fence, rows[0][0], rows[0][1])


class SqliteFencing:
    """The execution-claim methods of the SQLite store (mixed into SqliteStore)."""

    def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:  # from SqliteStore
        raise NotImplementedError

    async def _read(self, sql: str, args: Any = ()) -> list[Any]:  # from SqliteStore
        raise NotImplementedError

    async def claim_execution(
        self, record_id: str, owner: str, ttl: float
    ) -> ExecutionClaim | None:
        t = now()
        async with self._tx() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT token, owner, expires_at FROM fences WHERE name=?", (record_id,)
                )
            )
            token, holder, expires_at = rows[0] if rows else (0, "", None)
            if holder and holder != owner and expires_at > t:
                return None
            await db.execute(
                "INSERT INTO fences (name, token, owner, expires_at) VALUES (?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET token=excluded.token, owner=excluded.owner, "
                "expires_at=excluded.expires_at",
                (record_id, token + 1, owner, t + ttl),
            )
        return ExecutionClaim(
            token=token + 1, previous_owner=holder, previous_expires_at=expires_at
        )

    async def renew_execution(self, record_id: str, owner: str, token: int, ttl: float) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE fences SET expires_at=? WHERE name=? AND owner=? AND token=?",
                (now() + ttl, record_id, owner, token),
            )
            return cur.rowcount == 1

    async def release_execution(self, record_id: str, owner: str, token: int) -> bool:
        t = now()
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE fences SET expires_at=? WHERE name=? AND owner=? AND token=? "
                "AND expires_at>?",
                (t, record_id, owner, token, t),
            )
            return cur.rowcount == 1

    async def execution_claim(self, record_id: str) -> LockInfo | None:
        rows = await self._read(
            "SELECT token, owner, expires_at FROM fences WHERE name=?", (record_id,)
        )
        if not rows:
            return None
        token, owner, expires_at = rows[0]
        return LockInfo(name=record_id, owner=owner, expires_at=expires_at, token=token)
