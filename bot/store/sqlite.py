"""Embedded store: one SQLite file (WAL), safe for several processes on one machine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store.base import AuditEntry, Job, JournalEntry, LockInfo, Record, Store, now

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL,
    version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, created_at);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollback_id TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_rb ON journal (rollback_id, seq);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, due_at REAL NOT NULL,
    payload TEXT NOT NULL, owner TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def _record(row: Any) -> Record:
    return Record(
        id=row[0],
        kind=row[1],
        state=row[2],
        data=json.loads(row[3]),
        version=row[4],
        created_at=row[5],
        updated_at=row[6],
    )


def _job(row: Any) -> Job:
    return Job(
        id=row[0],
        kind=row[1],
        due_at=row[2],
        payload=json.loads(row[3]),
        owner=row[4],
        lease_until=row[5],
        attempts=row[6],
    )


class SqliteStore(Store):
    backend = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db: aiosqlite.Connection | None = None
        # one connection per store: serialise this process's transactions on it
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, timeout=30, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=30000")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> bool:
        try:
            async with self._lock:
                assert self._db is not None
                await (await self._db.execute("SELECT 1")).fetchone()
            return True
        except Exception:
            return False

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so read-modify-write is atomic
        across processes as well as across tasks."""
        async with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError("store is not connected")
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        async with self._lock:
            assert self._db is not None
            return list(await (await self._db.execute(sql, args)).fetchall())

    # -- records
    async def create(self, record: Record) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.kind,
                    record.state,
                    json.dumps(record.data),
                    record.version,
                    record.created_at,
                    record.updated_at,
                ),
            )
            return cur.rowcount == 1

    async def get(self, record_id: str) -> Record | None:
        rows = await self._fetch("SELECT * FROM records WHERE id=?", (record_id,))
        return _record(rows[0]) if rows else None

    async def _patch(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str] | None,
        to_state: str | None,
        patch: dict[str, Any],
    ) -> Record | None:
        async with self._tx() as db:
            row = await (
                await db.execute("SELECT * FROM records WHERE id=?", (record_id,))
            ).fetchone()
            if row is None:
                return None
            record = _record(row)
            if from_states is not None and record.state not in from_states:
                return None
            record.data.update(patch)
            record.state = to_state or record.state
            record.version += 1
            record.updated_at = now()
            await db.execute(
                "UPDATE records SET state=?, data=?, version=?, updated_at=? WHERE id=?",
                (
                    record.state,
                    json.dumps(record.data),
                    record.version,
                    record.updated_at,
                    record_id,
                ),
            )
            return record

    async def transition(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str],
        to_state: str,
        patch: dict[str, Any] | None = None,
    ) -> Record | None:
        return await self._patch(record_id, from_states, to_state, patch or {})

    async def update_data(self, record_id: str, patch: dict[str, Any]) -> Record | None:
        return await self._patch(record_id, None, None, patch)

    async def list_records(
        self, kind: str, *, states: set[str] | None = None, limit: int = 50
    ) -> list[Record]:
        rows = await self._fetch(
            "SELECT * FROM records WHERE kind=? ORDER BY created_at DESC, rowid DESC", (kind,)
        )
        records = [_record(r) for r in rows]
        if states is not None:
            records = [r for r in records if r.state in states]
        return records[:limit]

    # -- locks
    async def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        t = now()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO locks VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "owner=excluded.owner, expires_at=excluded.expires_at "
                "WHERE locks.owner=excluded.owner OR locks.expires_at<=?",
                (name, owner, t + ttl, t),
            )
            return cur.rowcount == 1

    async def release_lock(self, name: str, owner: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM locks WHERE name=? AND owner=?", (name, owner))
            return cur.rowcount == 1

    async def lock_info(self, name: str) -> LockInfo | None:
        rows = await self._fetch(
            "SELECT name, owner, expires_at FROM locks WHERE name=? AND expires_at>?", (name, now())
        )
        return LockInfo(name=rows[0][0], owner=rows[0][1], expires_at=rows[0][2]) if rows else None

    # -- audit
    async def audit(self, entry: AuditEntry) -> int:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                (
                    entry.at,
                    entry.actor,
                    entry.action,
                    entry.subject,
                    json.dumps(entry.detail, default=str),
                ),
            )
            return int(cur.lastrowid or 0)

    async def audit_since(
        self, since: float = 0.0, subject: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        sql, args = "SELECT * FROM audit WHERE at>=?", [since]
        if subject is not None:
            sql += " AND subject=?"
            args.append(subject)
        rows = await self._fetch(sql + " ORDER BY seq LIMIT ?", (*args, limit))
        return [
            AuditEntry(
                seq=r[0], at=r[1], actor=r[2], action=r[3], subject=r[4], detail=json.loads(r[5])
            )
            for r in rows
        ]

    # -- journal
    async def journal_append(self, rollback_id: str, entry: JournalEntry) -> int:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO journal (rollback_id, entry) VALUES (?,?)",
                (rollback_id, entry.model_dump_json()),
            )
            return int(cur.lastrowid or 0)

    async def journal(self, rollback_id: str) -> list[JournalEntry]:
        rows = await self._fetch(
            "SELECT seq, entry FROM journal WHERE rollback_id=? ORDER BY seq", (rollback_id,)
        )
        return [
            JournalEntry.model_validate_json(r[1]).model_copy(update={"seq": r[0]}) for r in rows
        ]

    # -- jobs
    async def schedule(self, job: Job) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,NULL,NULL,0)",
                (job.id, job.kind, job.due_at, json.dumps(job.payload)),
            )

    async def claim_due(self, owner: str, lease: float, limit: int = 10) -> list[Job]:
        t = now()
        async with self._tx() as db:
            rows = await (
                await db.execute(
                    "SELECT * FROM jobs WHERE due_at<=? AND (owner IS NULL OR lease_until<=?) "
                    "ORDER BY due_at LIMIT ?",
                    (t, t, limit),
                )
            ).fetchall()
            jobs = []
            for row in rows:
                await db.execute(
                    "UPDATE jobs SET owner=?, lease_until=?, attempts=attempts+1 WHERE id=?",
                    (owner, t + lease, row[0]),
                )
                job = _job(row)
                jobs.append(
                    job.model_copy(
                        update={
                            "owner": owner,
                            "lease_until": t + lease,
                            "attempts": job.attempts + 1,
                        }
                    )
                )
            return jobs

    async def reschedule(self, job_id: str, owner: str, due_at: float) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE jobs SET due_at=?, owner=NULL, lease_until=NULL WHERE id=? AND owner=?",
                (due_at, job_id, owner),
            )
            return cur.rowcount == 1

    async def complete(self, job_id: str, owner: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM jobs WHERE id=? AND owner=?", (job_id, owner))
            return cur.rowcount == 1

    async def cancel_job(self, job_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            return cur.rowcount == 1

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._fetch("SELECT * FROM jobs WHERE id=?", (job_id,))
        return _job(rows[0]) if rows else None

    # -- idempotency
    async def remember(self, key: str, ttl: float) -> bool:
        t = now()
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO idempotency VALUES (?,?) ON CONFLICT(key) DO UPDATE SET "
                "expires_at=excluded.expires_at WHERE idempotency.expires_at<=?",
                (key, t + ttl, t),
            )
            return cur.rowcount == 1
