"""Whatever a store writes passes the redactor first: records (created and patched), audit
entries (alone and carried by a write), journal entries and queued Slack calls. Checked in the
raw SQLite files and in every Redis key and value, not through the store's own reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.store.audit import audit_entry
from bot.store.base import JournalEntry, OutboxEntry, Record, Store, now
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.testbed.secrets import environment, leaks, lines, text


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "rollbot.db")
    else:
        s = RedisStore(request.getfixturevalue("redis_url"))
    await s.connect()
    yield s
    await s.close()


def raw_contents(store: Store, tmp_path: Path) -> str:
    """Every byte the backend keeps: the SQLite files (with the WAL), or all Redis keys with
    their values."""
    if isinstance(store, SqliteStore):
        return "".join(
            p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("rollbot.db*")
        )
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(store.url)
    out = []
    for key in client.scan_iter("*"):
        kind = client.type(key).decode()
        value: Any = {
            "string": lambda k: client.get(k),
            "hash": lambda k: client.hgetall(k),
            "list": lambda k: client.lrange(k, 0, -1),
            "set": lambda k: client.smembers(k),
            "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: client.xrange(k),
        }.get(kind, lambda k: b"")(key)
        out.append(f"{key!r} {value!r}")
    client.close()
    return "\n".join(out)


def planted_data() -> dict[str, Any]:
    return {
        "error": text(),
        "plan": [{"calls": lines()}],
        "environment": [{"name": k, "value": v} for k, v in environment().items()],
        "flat": environment(),
    }


async def test_no_planted_secret_reaches_the_stored_bytes(store: Store, tmp_path: Path) -> None:
    t = now()
    record = Record(id="rb-plant1", kind="rollback", state="requested", data=planted_data(),
                    created_at=t, updated_at=t)  # fmt: skip
    assert await store.create(record, audit_entry("U1", "rollback.requested", "rb-plant1",
                                                  reason=text()))  # fmt: skip
    await store.transition(
        "rb-plant1",
        {"requested"},
        "failed",
        {"error": text(), "steps": [{"output": {"stdout": text()}}]},
        audit_entry("rollbot", "rollback.failed", "rb-plant1", error=text()),
    )
    await store.update_data("rb-plant1", {"checklist": lines()})
    await store.audit(audit_entry("rollbot", "slack.post", "rb-plant1", text=text()))
    await store.journal_append(
        "rb-plant1",
        JournalEntry(at=t, step=0, step_id="run", event="end", outcome="failed",
                     output={"stdout": text(), "stderr": text(), "env": environment()}),
    )  # fmt: skip
    await store.outbox_put(
        OutboxEntry(at=t, queue="C1", method="chat_postMessage",
                    kwargs={"channel": "C1", "text": text()}, subject="rb-plant1"),
        audit_entry("rollbot", "slack.queued", "rb-plant1", text=text()),
    )  # fmt: skip
    raw = raw_contents(store, tmp_path)
    assert "rb-plant1" in raw and "slack.queued" in raw  # the writes are there
    assert leaks(raw) == []
    # what is read back is what was written: redacted, and still usable
    got = await store.get("rb-plant1")
    assert got is not None and got.state == "failed" and "[redacted]" in got.data["error"]
    exported = [e.model_dump_json() for e in await store.audit_since(0.0)]
    assert len(exported) == 4 and leaks("".join(exported)) == []


def test_a_backend_whose_write_cannot_be_redacted_is_refused() -> None:
    with pytest.raises(TypeError, match="no parameter"):

        class OddStore(SqliteStore):
            async def audit(self, item: Any) -> int:  # type: ignore[override]
                return 0


async def test_a_new_backend_is_redacted_without_asking(tmp_path: Path) -> None:
    class QuietStore(SqliteStore):
        async def audit(self, entry: Any) -> int:
            written.append(entry)
            return 1

    written: list[Any] = []
    await QuietStore(tmp_path / "q.db").audit(audit_entry("U1", "x", "s", text=text()))
    assert leaks(repr(written)) == [] and "[redacted]" in repr(written)
