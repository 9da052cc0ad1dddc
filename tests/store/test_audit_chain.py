"""The audit log's hash chain on both backends (an SQLite file, a real redis-server): every
write that appends an audit entry links it to the one before, concurrent writers extend one
chain, and each kind of tampering an attacker with store access can do is found and named."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.store.audit_chain import verify
from bot.store.base import AuditEntry, OutboxEntry, Record, Store, now
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.store.audit_tamper import RedisTamperer, SqliteTamperer, Tamperer
from tests.store.conftest import same_backend

GENESIS = "0" * 64


def tamperer(store: Store) -> Tamperer:
    if isinstance(store, SqliteStore):
        return SqliteTamperer(store.path)
    assert isinstance(store, RedisStore)
    return RedisTamperer(store.url, store.prefix)


async def read_back(store: Store) -> list[AuditEntry]:
    """The whole log as a fresh client reads it after the tampering."""
    fresh = same_backend(store)
    await fresh.connect()
    try:
        return await fresh.audit_since(float("-inf"), limit=1_000_000)
    finally:
        await fresh.close()


def entry(i: int, subject: str = "rb-1", **detail: Any) -> AuditEntry:
    return AuditEntry(
        at=now(), actor="U0LEAD", action=f"act-{i}", subject=subject, detail={"i": i, **detail}
    )


def rec(record_id: str) -> Record:
    t = now()
    return Record(id=record_id, kind="rollback", state="requested", created_at=t, updated_at=t)


def expected_hash(e: AuditEntry) -> str:
    """The link as the README defines it, computed here without the product's module."""
    fields = {"at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject}
    text = json.dumps(
        {**fields, "detail": e.detail}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    inner = hashlib.sha256(text.encode()).hexdigest()
    return hashlib.sha256(f"{e.prev}\n{e.seq}\n{inner}".encode()).hexdigest()


def test_the_lua_sha256_is_sha256(redis_url: str) -> None:
    from bot.store.redis import _lua

    script = _lua("sha256") + "\nreturn sha256hex(ARGV[1])"
    client = redis.Redis.from_url(redis_url)
    lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000]
    for message in [os.urandom(n) for n in lengths] + ["Grüße, ✓".encode()]:
        assert client.eval(script, 0, message).decode() == hashlib.sha256(message).hexdigest()


async def test_every_write_that_audits_appends_a_linked_entry(store: Store) -> None:
    await store.audit(entry(1, note='tab\t, quote " and ünïcode'))
    assert await store.create(rec("rb-1"), audit=entry(2))
    assert not await store.create(rec("rb-1"), audit=entry(99))  # refused: nothing written
    assert await store.transition("rb-1", {"requested"}, "approved", audit=entry(3))
    assert await store.transition("rb-1", {"requested"}, "x", audit=entry(98)) is None
    await store.update_data("rb-1", {"k": 1})  # carries no audit entry
    out = OutboxEntry(at=now(), queue="C1", method="chat_postMessage", kwargs={"text": "hi"})
    await store.outbox_put(out, audit=entry(4, when=1.5, nested={"b": [1, None], "a": True}))

    log = await read_back(store)
    assert [e.action for e in log] == ["act-1", "act-2", "act-3", "act-4"]
    assert log[0].prev == GENESIS
    for before, after in itertools.pairwise(log):
        assert after.prev == before.hash
    assert [e.hash for e in log] == [expected_hash(e) for e in log]
    verdict = verify(log)
    assert verdict.intact, verdict.summary()
    assert (verdict.count, verdict.head_seq, verdict.head) == (4, log[-1].seq, log[-1].hash)


async def test_concurrent_appends_from_several_clients_form_one_chain(store: Store) -> None:
    clients = [store]
    for _ in range(3):
        other = same_backend(store)
        await other.connect()
        clients.append(other)
    try:

        async def writer(n: int) -> None:
            client = clients[n % len(clients)]
            await client.audit(entry(n, subject=f"s{n}"))
            assert await client.create(rec(f"rb-{n}"), audit=entry(n, subject=f"rb-{n}"))
            await client.transition(f"rb-{n}", {"requested"}, "approved", audit=entry(n))

        await asyncio.gather(*(writer(n) for n in range(20)))
    finally:
        for other in clients[1:]:
            await other.close()

    log = await read_back(store)
    assert len(log) == 60
    verdict = verify(log)
    assert verdict.intact, verdict.summary()
    assert verdict.count == 60
    # one line, no forks: every hash but the head is the prev of exactly one entry
    assert sorted(e.prev for e in log) == sorted([GENESIS] + [e.hash for e in log[:-1]])


async def seeded(store: Store, n: int = 6) -> list[AuditEntry]:
    for i in range(1, n + 1):
        await store.audit(entry(i))
    return await read_back(store)


Tamper = Callable[[Tamperer], None]
CASES: dict[str, tuple[Tamper, int, str]] = {  # tampering -> the entry named, the word used
    "edited": (lambda t: t.edit(3, actor="U0MALLORY"), 3, "changed"),
    "edited detail": (lambda t: t.edit(4, detail={"i": 4, "approver": "U0MALLORY"}), 4, "changed"),
    "edited and rehashed": (lambda t: t.edit_and_rehash(3, action="x"), 3, "rehashed"),
    "deleted": (lambda t: t.delete(3), 3, "removed"),
    "first deleted": (lambda t: t.delete(1), 1, "removed"),
    "two deleted": (lambda t: (t.delete(3), t.delete(4)), 3, "removed"),
    "reordered": (lambda t: t.swap(3, 4), 3, "reordered"),
    "reordered far": (lambda t: t.swap(2, 5), 2, "reordered"),
    "unlinked": (lambda t: t.unlink(4), 4, "no chain link"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_tampering_is_found_and_the_entry_named(store: Store, case: str) -> None:
    assert verify(await seeded(store)).intact
    tamper, named, word = CASES[case]
    t = tamperer(store)
    try:
        tamper(t)
    finally:
        t.close()
    verdict = verify(await read_back(store))
    assert not verdict.intact
    assert verdict.seq == named, verdict.summary()
    assert word in verdict.summary() and f"at entry {named}:" in verdict.summary()


async def test_a_cut_tail_is_found_only_against_a_recorded_head(store: Store) -> None:
    recorded = verify(await seeded(store)).head
    t = tamperer(store)
    try:
        t.cut_tail(2)
    finally:
        t.close()
    log = await read_back(store)
    assert verify(log).intact and verify(log).count == 4  # the chain alone cannot tell
    verdict = verify(log, expect_head=f"sha256:{recorded}")
    assert not verdict.intact and "cut off the end" in verdict.summary()
    # later appends do not hide it, and an older recorded head still checks out
    await store.audit(entry(7))
    assert not verify(await read_back(store), expect_head=recorded).intact
    assert verify(await read_back(store), expect_head=log[1].hash).intact


async def test_a_rewritten_chain_is_found_only_against_a_recorded_head(store: Store) -> None:
    recorded = verify(await seeded(store)).head
    t = tamperer(store)
    try:
        t.edit(3, actor="U0MALLORY")
        t.rechain_from(3)  # nothing is secret: every later hash can be recomputed
    finally:
        t.close()
    log = await read_back(store)
    assert verify(log).intact and log[2].actor == "U0MALLORY"
    assert not verify(log, expect_head=recorded).intact


async def test_appends_after_the_head_key_is_lost_break_the_chain(redis_url: str) -> None:
    store = RedisStore(redis_url)
    await store.connect()
    try:
        await seeded(store, 3)
        redis.Redis.from_url(redis_url).delete("rollbot:audit:head")
        await store.audit(entry(4))
        verdict = verify(await read_back(store))
    finally:
        await store.close()
    assert not verdict.intact and verdict.seq == 4, verdict.summary()


async def test_links_stripped_from_the_oldest_entries_are_found(store: Store) -> None:
    await seeded(store, 4)
    t = tamperer(store)
    try:
        t.unlink(1)
        t.unlink(2)
    finally:
        t.close()
    verdict = verify(await read_back(store))
    assert not verdict.intact and verdict.seq == 3, verdict.summary()
    assert "removed or unlinked" in verdict.summary()


async def test_entries_older_than_the_chain_are_counted_not_covered(store: Store) -> None:
    await seeded(store, 3)
    t = tamperer(store)
    try:
        for seq in (1, 2, 3):
            t.unlink(seq)  # as a log written before entries were chained reads back
    finally:
        t.close()
    if isinstance(store, RedisStore):  # nor was there a head then
        redis.Redis.from_url(store.url).delete(f"{store.prefix}audit:head")
    await store.audit(entry(4))  # the first chained entry links to the start
    verdict = verify(await read_back(store))
    assert verdict.intact, verdict.summary()
    assert (verdict.count, verdict.unchained, verdict.head_seq) == (1, 3, 4)
    assert "3 older unchained entries not covered" in verdict.summary()
