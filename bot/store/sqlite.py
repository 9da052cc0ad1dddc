"""Embedded store: one SQLite file in WAL mode, safe for several processes on one machine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic_core import to_json

from bot.store.audit_chain import GENESIS, body, link
from bot.store.base import (
    AuditEntry,
    Job,
    JournalEntry,
    LockInfo,
    OutboxEntry,
    Record,
    Store,
    now,
)
from bot.store.sqlite_fencing import FENCE_SCHEMA, SqliteFencing, check_fence
from bot.store.sqlite_upkeep import UPKEEP_SCHEMA, SqliteUpkeep

# The table layouts are those of the first release, so existing files keep working;
# later releases only add tables and indexes (CREATE ... IF NOT EXISTS).
SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL,
    version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, created_at);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS locks_expiry ON locks (expires_at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject, at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS audit_chain (
    seq INTEGER PRIMARY KEY, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_chain_no_update BEFORE UPDATE ON audit_chain
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_chain_no_delete BEFORE DELETE ON audit_chain
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, rollback_id TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_rb ON journal (rollback_id, seq);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, due_at REAL NOT NULL, payload TEXT NOT NULL,
    owner TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (COALESCE(lease_until, due_at));
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (queue, seq);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
{FENCE_SCHEMA.lstrip()}COMMIT;
"""

RECORD_COLUMNS = "id, kind, state, data, version, created_at, updated_at"
JOB_COLUMNS = "id, kind, due_at, payload, owner, lease_until, attempts"
# A job can be claimed from this time on: its due time, or the end of its current lease.
READY_AT = "COALESCE(lease_until, due_at)"


def _json(value: Any) -> str:
    # pydantic's encoder, so both backends store datetimes, enums, ... the same way
    return to_json(value).decode()


def _record(row: Iterable[Any]) -> Record:
    id_, kind, state, data, version, created_at, updated_at = row
    return Record(
        id=id_,
        kind=kind,
        state=state,
        data=json.loads(data),
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def _job(row: Iterable[Any]) -> Job:
    id_, kind, due_at, payload, owner, lease_until, attempts = row
    return Job(
        id=id_,
        kind=kind,
        due_at=due_at,
        payload=json.loads(payload),
        owner=owner,
        lease_until=lease_until,
        attempts=attempts,
    )


# An entry's chain link (prev, hash) is a row of its own table, so files written before the
# chain keep their layout; entries older than the chain read back with empty links.
AUDIT_SELECT = (
    "SELECT a.seq, a.at, a.actor, a.action, a.subject, a.detail, c.prev, c.hash "
    "FROM audit a LEFT JOIN audit_chain c ON c.seq = a.seq"
)


def _audit(row: Iterable[Any]) -> AuditEntry:
    seq, at, actor, action, subject, detail, prev, hash_ = row
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        detail=json.loads(detail),
        prev=prev or "",
        hash=hash_ or "",
    )


async def _insert_audit(db: aiosqlite.Connection, entry: AuditEntry) -> int:
    """Append an entry and its chain link; the caller's write transaction keeps the link to
    the head the same for every connection and process."""
    cur = await db.execute(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
        (entry.at, entry.actor, entry.action, entry.subject, _json(entry.detail)),
    )
    seq = int(cur.lastrowid or 0)
    head = list(await db.execute_fetchall("SELECT max(seq), hash FROM audit_chain"))
    prev = head[0][1] if head and head[0][1] is not None else GENESIS
    await db.execute(
        "INSERT INTO audit_chain (seq, prev, hash) VALUES (?,?,?)",
        (seq, prev, link(prev, seq, body(entry))),
    )
    return seq


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class SqliteStore(SqliteFencing, SqliteUpkeep, Store):
    backend = "sqlite"

    def __init__(
        self, path: Path | str, *, busy_timeout: float = 1.0, ping_timeout: float = 2.0
    ) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.ping_timeout = ping_timeout
        self._db: aiosqlite.Connection | None = None
        # One connection per store; concurrent callers must not interleave its transactions.
        self._lock = asyncio.Lock()

    # -- lifecycle
    async def connect(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: BEGIN IMMEDIATE and COMMIT are issued explicitly.
        # timeout is SQLite's busy_timeout: wait for another process's write lock. A write
        # holds it for milliseconds; one still held after a second is an outage, answered
        # within Slack's 3 s (callers on the job paths retry with backoff).
        db = await aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            await db.execute_fetchall("PRAGMA journal_mode=WAL")
            await db.executescript(SCHEMA)
            await db.executescript(UPKEEP_SCHEMA)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self.ping_timeout):
                return await self._read("SELECT 1") == [(1,)]
        except Exception:
            return False

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not connected")
        return self._db

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the file's write lock up front, so a
        read-modify-write inside it is atomic across connections and processes."""
        async with self._lock:
            db = self._conn()
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.commit()
            except BaseException:
                # aiosqlite runs statements in the order they were queued, so even when the
                # caller is being cancelled the rollback runs after anything still pending;
                # it is a no-op when BEGIN itself failed
                await db.rollback()
                raise

    async def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        async with self._lock:
            return list(await self._conn().execute_fetchall(sql, tuple(args)))

    # -- records
    async def create(self, record: Record, audit: AuditEntry | None = None) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                f"INSERT OR IGNORE INTO records ({RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.kind,
                    record.state,
                    _json(record.data),
                    record.version,
                    record.created_at,
                    record.updated_at,
                ),
            )
            if cur.rowcount != 1:
                return False
            if audit is not None:
                await _insert_audit(db, audit)
            return True

    async def get(self, record_id: str) -> Record | None:
        rows = await self._read(f"SELECT {RECORD_COLUMNS} FROM records WHERE id=?", (record_id,))
        return _record(rows[0]) if rows else None

    async def _change(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str] | None,
        to_state: str | None,
        patch: dict[str, Any],
        audit: AuditEntry | None,
        fence: int | None = None,
    ) -> Record | None:
        """Read, check and rewrite one record (and audit it) in one write transaction."""
        async with self._tx() as db:
            await check_fence(db, record_id, fence)
            rows = await db.execute_fetchall(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE id=?", (record_id,)
            )
            if not rows:
                return None
            record = _record(next(iter(rows)))
            if from_states is not None and record.state not in from_states:
                return None
            record.data.update(patch)
            if to_state is not None:
                record.state = to_state
            record.version += 1
            record.updated_at = now()
            await db.execute(
                "UPDATE records SET state=?, data=?, version=?, updated_at=? WHERE id=?",
                (
                    record.state,
                    _json(record.data),
                    record.version,
                    record.updated_at,
                    record.id,
                ),
            )
            if audit is not None:
                await _insert_audit(db, audit)
            return record

    async def list_records(
        self, kind: str, *, states: set[str] | None = None, limit: int = 50
    ) -> list[Record]:
        if limit <= 0 or (states is not None and not states):
            return []
        sql, args = f"SELECT {RECORD_COLUMNS} FROM records WHERE kind=?", [kind]
        if states is not None:
            sql += f" AND state IN ({_placeholders(len(states))})"
            args += sorted(states)
        # rowid breaks ties between records created within the same clock tick
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return [_record(r) for r in await self._read(sql, [*args, limit])]

    # -- locks
    async def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        t = now()
        async with self._tx() as db:
            # an expired lock is free: drop it (and any other stale ones) first
            await db.execute("DELETE FROM locks WHERE expires_at<=?", (t,))
            cur = await db.execute(
                "INSERT INTO locks (name, owner, expires_at) VALUES (?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET expires_at=excluded.expires_at "
                "WHERE locks.owner=excluded.owner",
                (name, owner, t + ttl),
            )
            return cur.rowcount == 1

    async def release_lock(self, name: str, owner: str) -> bool:
        t = now()
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "DELETE FROM locks WHERE name=? AND owner=? RETURNING expires_at", (name, owner)
            )
            # our own lapsed lock is cleaned up, but we did not hold it any more
            return any(expires_at > t for (expires_at,) in rows)

    async def lock_info(self, name: str) -> LockInfo | None:
        rows = await self._read(
            "SELECT owner, expires_at FROM locks WHERE name=? AND expires_at>?", (name, now())
        )
        if not rows:
            return None
        return LockInfo(name=name, owner=rows[0][0], expires_at=rows[0][1])

    # -- audit (append-only: triggers refuse UPDATE and DELETE, and there is no method for them;
    # the hash chain shows it if the triggers are dropped and rows changed anyway)
    async def audit(self, entry: AuditEntry) -> int:
        async with self._tx() as db:
            return await _insert_audit(db, entry)

    async def audit_since(
        self, since: float = 0.0, subject: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        sql = f"{AUDIT_SELECT} WHERE a.at>=?"
        args: list[Any] = [since]
        if subject is not None:
            sql += " AND a.subject=?"
            args.append(subject)
        rows = await self._read(sql + " ORDER BY a.seq LIMIT ?", [*args, max(limit, 0)])
        return [_audit(r) for r in rows]

    # -- step journal
    async def journal_append(
        self, rollback_id: str, entry: JournalEntry, *, fence: int | None = None
    ) -> int:
        async with self._tx() as db:
            await check_fence(db, rollback_id, fence)
            cur = await db.execute(
                "INSERT INTO journal (rollback_id, entry) VALUES (?,?)",
                (rollback_id, entry.model_dump_json(exclude={"seq"})),
            )
            return int(cur.lastrowid or 0)

    async def journal(self, rollback_id: str) -> list[JournalEntry]:
        rows = await self._read(
            "SELECT seq, entry FROM journal WHERE rollback_id=? ORDER BY seq", (rollback_id,)
        )
        return [
            JournalEntry.model_validate_json(entry).model_copy(update={"seq": seq})
            for seq, entry in rows
        ]

    # -- due-jobs
    async def schedule(self, job: Job) -> None:
        async with self._tx() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES (?,?,?,?,NULL,NULL,0)",
                (job.id, job.kind, job.due_at, _json(job.payload)),
            )

    async def claim_due(self, owner: str, lease: float, limit: int = 10) -> list[Job]:
        if limit <= 0:
            return []
        t = now()
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET owner=?, lease_until=?, attempts=attempts+1 WHERE id IN "
                f"(SELECT id FROM jobs WHERE {READY_AT}<=? ORDER BY {READY_AT} LIMIT ?) "
                f"RETURNING {JOB_COLUMNS}",
                (owner, t + lease, t, limit),
            )
            jobs = [_job(r) for r in rows]
        return sorted(jobs, key=lambda j: j.due_at)

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
        rows = await self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,))
        return _job(rows[0]) if rows else None

    # -- outbox
    async def outbox_put(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> int:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO outbox (queue, entry) VALUES (?,?)",
                (entry.queue, entry.model_dump_json(exclude={"seq"})),
            )
            if audit is not None:
                await _insert_audit(db, audit)
            return int(cur.lastrowid or 0)

    async def outbox_peek(self, queue: str, limit: int = 20) -> list[OutboxEntry]:
        rows = await self._read(
            "SELECT seq, entry FROM outbox WHERE queue=? ORDER BY seq LIMIT ?",
            (queue, max(limit, 0)),
        )
        return [
            OutboxEntry.model_validate_json(entry).model_copy(update={"seq": seq})
            for seq, entry in rows
        ]

    async def outbox_drop(self, queue: str, seq: int) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM outbox WHERE queue=? AND seq=?", (queue, seq))
            return cur.rowcount == 1

    async def outbox_queues(self) -> list[str]:
        return [row[0] for row in await self._read("SELECT DISTINCT queue FROM outbox")]

    # -- idempotency keys
    async def note(self, keys: list[str], ttl: float) -> None:
        t = now()
        async with self._tx() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO idempotency (key, expires_at) VALUES (?,?)",
                [(key, t + ttl) for key in keys],
            )

    async def remember(self, key: str, ttl: float) -> bool:
        t = now()
        async with self._tx() as db:
            await db.execute("DELETE FROM idempotency WHERE expires_at<=?", (t,))
            cur = await db.execute(
                "INSERT OR IGNORE INTO idempotency (key, expires_at) VALUES (?,?)", (key, t + ttl)
            )
            return cur.rowcount == 1
