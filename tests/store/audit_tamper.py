"""What an attacker with write access to the store can do to the audit log, backend by backend.

Each tamperer works on the raw storage (the SQLite file through the sqlite3 module, Redis
through a plain client), as someone holding the file or the Redis password would, not through
Rollbot's store classes.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import redis

from bot.store.audit_chain import body, link
from bot.store.base import AuditEntry

ENTRY_COLUMNS = ("at", "actor", "action", "subject", "detail")


class Tamperer(Protocol):
    def edit(self, seq: int, **changes: Any) -> None:
        """Change an entry's fields, leaving its stored links as they were."""

    def edit_and_rehash(self, seq: int, **changes: Any) -> None:
        """Change an entry's fields and recompute its own hash (the algorithm is public)."""

    def delete(self, seq: int) -> None: ...

    def swap(self, a: int, b: int) -> None:
        """Exchange two whole entries (links included): the log's order changes."""

    def unlink(self, seq: int) -> None:
        """Strip an entry's chain link."""

    def cut_tail(self, n: int) -> None:
        """Remove the newest `n` entries and make the store's head point at the new last one."""

    def rechain_from(self, seq: int) -> None:
        """Recompute every link from `seq` to the end, as an attacker covering an edit would."""


def _apply(entry: AuditEntry, changes: dict[str, Any]) -> AuditEntry:
    return entry.model_copy(update=changes)


class SqliteTamperer:
    """Drops the append-only triggers first, which is all it takes with the file in hand."""

    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for trigger in ("audit_no_update", "audit_no_delete", "audit_chain_no_update"):
            self.db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        self.db.execute("DROP TRIGGER IF EXISTS audit_chain_no_delete")

    def close(self) -> None:
        self.db.close()

    def _read(self, seq: int) -> AuditEntry:
        row = self.db.execute(
            "SELECT a.at, a.actor, a.action, a.subject, a.detail, c.prev, c.hash FROM audit a "
            "LEFT JOIN audit_chain c ON c.seq=a.seq WHERE a.seq=?",
            (seq,),
        ).fetchone()
        at, actor, action, subject, detail, prev, hash_ = row
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

    def _write(self, entry: AuditEntry) -> None:
        self.db.execute(
            "UPDATE audit SET at=?, actor=?, action=?, subject=?, detail=? WHERE seq=?",
            (
                entry.at,
                entry.actor,
                entry.action,
                entry.subject,
                json.dumps(entry.detail),
                entry.seq,
            ),
        )
        self.db.execute(
            "UPDATE audit_chain SET prev=?, hash=? WHERE seq=?", (entry.prev, entry.hash, entry.seq)
        )

    def edit(self, seq: int, **changes: Any) -> None:
        self._write(_apply(self._read(seq), changes))

    def edit_and_rehash(self, seq: int, **changes: Any) -> None:
        entry = _apply(self._read(seq), changes)
        self._write(entry.model_copy(update={"hash": link(entry.prev, seq, body(entry))}))

    def delete(self, seq: int) -> None:
        self.db.execute("DELETE FROM audit WHERE seq=?", (seq,))
        self.db.execute("DELETE FROM audit_chain WHERE seq=?", (seq,))

    def swap(self, a: int, b: int) -> None:
        first, second = self._read(a), self._read(b)
        self._write(second.model_copy(update={"seq": a}))
        self._write(first.model_copy(update={"seq": b}))

    def unlink(self, seq: int) -> None:
        self.db.execute("DELETE FROM audit_chain WHERE seq=?", (seq,))

    def _last(self) -> int:
        return int(self.db.execute("SELECT max(seq) FROM audit").fetchone()[0])

    def cut_tail(self, n: int) -> None:
        for _ in range(n):
            self.delete(self._last())

    def rechain_from(self, seq: int) -> None:
        prev = self._read(seq - 1).hash if seq > 1 else "0" * 64
        for number in range(seq, self._last() + 1):
            entry = self._read(number).model_copy(update={"prev": prev})
            prev = link(prev, number, body(entry))
            self._write(entry.model_copy(update={"hash": prev}))


class RedisTamperer:
    """Plain HSET, HDEL and SET on the keys Rollbot's scripts write."""

    def __init__(self, url: str, prefix: str = "rollbot:") -> None:
        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.log, self.head = f"{prefix}audit:log", f"{prefix}audit:head"
        self.by_time, self.prefix = f"{prefix}audit:by-time", prefix

    def close(self) -> None:
        self.r.close()

    def _read(self, seq: int) -> AuditEntry:
        return AuditEntry.model_validate_json(self.r.hget(self.log, str(seq)))

    def _write(self, entry: AuditEntry, position: int | None = None) -> None:
        self.r.hset(
            self.log, str(entry.seq if position is None else position), entry.model_dump_json()
        )

    def edit(self, seq: int, **changes: Any) -> None:
        self._write(_apply(self._read(seq), changes))

    def edit_and_rehash(self, seq: int, **changes: Any) -> None:
        entry = _apply(self._read(seq), changes)
        self._write(entry.model_copy(update={"hash": link(entry.prev, seq, body(entry))}))

    def delete(self, seq: int) -> None:
        subject = self._read(seq).subject
        self.r.hdel(self.log, str(seq))
        self.r.zrem(self.by_time, str(seq))
        self.r.zrem(f"{self.prefix}audit-subject:{subject}", str(seq))

    def swap(self, a: int, b: int) -> None:
        first, second = self._read(a), self._read(b)
        self._write(second, position=a)
        self._write(first, position=b)

    def unlink(self, seq: int) -> None:
        self._write(self._read(seq).model_copy(update={"prev": "", "hash": ""}))

    def _last(self) -> int:
        return max(int(seq) for seq in self.r.hkeys(self.log))

    def cut_tail(self, n: int) -> None:
        for _ in range(n):
            self.delete(self._last())
        self.r.set(self.head, self._read(self._last()).hash)

    def rechain_from(self, seq: int) -> None:
        prev = self._read(seq - 1).hash if seq > 1 else "0" * 64
        for number in range(seq, self._last() + 1):
            entry = self._read(number).model_copy(update={"prev": prev})
            prev = link(prev, number, body(entry))
            self._write(entry.model_copy(update={"hash": prev}))
        self.r.set(self.head, prev)
