"""One contract, two backends: every Store behaviour checked on SQLite and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.store.base import AuditEntry, Job, JournalEntry, Record, Store, now
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A factory: several instances share one backend, like several replicas do."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return lambda: RedisStore(url)
    return lambda: SqliteStore(tmp_path / "rollbot.db")


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    s = make_store()
    await s.connect()
    yield s
    await s.close()


def rec(record_id: str = "rb-1", state: str = "requested", **data: object) -> Record:
    t = now()
    return Record(
        id=record_id, kind="rollback", state=state, data=dict(data), created_at=t, updated_at=t
    )


async def test_create_get_and_duplicate(store: Store) -> None:
    assert await store.create(rec(target="api", nested={}))
    assert not await store.create(rec(target="other"))
    got = await store.get("rb-1")
    assert got is not None and got.data == {"target": "api", "nested": {}}
    assert got.version == 1
    assert await store.get("rb-missing") is None


async def test_transition_compare_and_set(store: Store) -> None:
    await store.create(rec(steps=[]))
    moved = await store.transition("rb-1", {"requested"}, "awaiting_approval", {"ts": "1.2"})
    assert moved is not None and moved.state == "awaiting_approval" and moved.version == 2
    assert moved.data == {"steps": [], "ts": "1.2"}
    assert await store.transition("rb-1", {"requested"}, "approved") is None
    assert (await store.get("rb-1")).state == "awaiting_approval"  # type: ignore[union-attr]
    assert await store.transition("rb-nope", {"requested"}, "approved") is None
    patched = await store.update_data("rb-1", {"output": {}})
    assert patched is not None and patched.state == "awaiting_approval"
    assert patched.data["output"] == {}


async def test_concurrent_transitions_exactly_one_wins(make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(4)]
    for s in stores:
        await s.connect()
    try:
        await stores[0].create(rec(state="awaiting_approval"))
        attempts = [
            s.transition("rb-1", {"awaiting_approval"}, "approved", {"approver": f"U{i}"})
            for i, s in enumerate(stores)
            for _ in range(3)
        ]
        results = await asyncio.gather(*attempts)
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = await stores[0].get("rb-1")
        assert final is not None and final.data["approver"] == winners[0].data["approver"]
        assert final.version == 2
    finally:
        for s in stores:
            await s.close()


async def test_list_records_newest_first(store: Store) -> None:
    for i in range(3):
        await store.create(rec(f"rb-{i}", state="succeeded" if i else "running"))
        await asyncio.sleep(0.01)
    assert [r.id for r in await store.list_records("rollback")] == ["rb-2", "rb-1", "rb-0"]
    assert [r.id for r in await store.list_records("rollback", limit=1)] == ["rb-2"]
    assert [r.id for r in await store.list_records("rollback", states={"running"})] == ["rb-0"]
    assert await store.list_records("diagnosis") == []


async def test_lock_owner_expiry_and_release(make_store: Callable[[], Store]) -> None:
    a, b = make_store(), make_store()
    await a.connect()
    await b.connect()
    try:
        assert await a.acquire_lock("target:api", "A", ttl=0.3)
        assert not await b.acquire_lock("target:api", "B", ttl=5)
        assert await a.acquire_lock("target:api", "A", ttl=0.3)  # renewal by the owner
        info = await b.lock_info("target:api")
        assert info is not None and info.owner == "A"
        assert not await b.release_lock("target:api", "B")
        await asyncio.sleep(0.45)
        assert await b.lock_info("target:api") is None
        assert await b.acquire_lock("target:api", "B", ttl=5)
        assert not await a.acquire_lock("target:api", "A", ttl=5)
        assert await b.release_lock("target:api", "B")
        assert await a.acquire_lock("target:api", "A", ttl=5)
    finally:
        await a.close()
        await b.close()


async def test_audit_is_ordered_and_filterable(store: Store) -> None:
    t0 = now()
    seqs = [
        await store.audit(
            AuditEntry(
                at=t0 + i,
                actor="U1",
                action=f"a{i}",
                subject="rb-1" if i % 2 else "rb-2",
                detail={"i": i},
            )
        )
        for i in range(5)
    ]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [e.action for e in await store.audit_since(t0 + 2)] == ["a2", "a3", "a4"]
    assert [e.action for e in await store.audit_since(0, subject="rb-1")] == ["a1", "a3"]
    assert not hasattr(store, "delete_audit")


async def test_journal_in_order(store: Store) -> None:
    for i, event in enumerate(["start", "end", "start"]):
        await store.journal_append(
            "rb-1", JournalEntry(at=now(), step=i // 2, step_id="s", event=event, output={"n": i})
        )
    entries = await store.journal("rb-1")
    assert [e.event for e in entries] == ["start", "end", "start"]
    assert [e.output["n"] for e in entries] == [0, 1, 2]
    assert await store.journal("rb-2") == []


async def test_due_jobs_are_claimed_exactly_once(make_store: Callable[[], Store]) -> None:
    claimers = [make_store() for _ in range(5)]
    for s in claimers:
        await s.connect()
    try:
        for i in range(20):
            await claimers[0].schedule(
                Job(id=f"job-{i}", kind="status", due_at=now() - 1, payload={"i": i})
            )
        await claimers[0].schedule(Job(id="later", kind="status", due_at=now() + 60))

        async def claim_all(s: Store, name: str) -> list[str]:
            got: list[str] = []
            for _ in range(10):
                got += [j.id for j in await s.claim_due(name, lease=30, limit=3)]
            return got

        results = await asyncio.gather(*(claim_all(s, f"r{i}") for i, s in enumerate(claimers)))
        claimed = [j for r in results for j in r]
        assert sorted(claimed) == sorted(f"job-{i}" for i in range(20))
        job = await claimers[0].get_job("job-3")
        assert job is not None and job.owner is not None and job.payload == {"i": 3}
    finally:
        for s in claimers:
            await s.close()


async def test_expired_lease_is_claimable_again_and_owner_rules(store: Store) -> None:
    await store.schedule(Job(id="j", kind="k", due_at=now() - 1, payload={}))
    first = await store.claim_due("A", lease=0.2)
    assert [j.id for j in first] == ["j"] and first[0].payload == {}
    assert await store.claim_due("B", lease=0.2) == []
    await asyncio.sleep(0.3)
    second = await store.claim_due("B", lease=10)
    assert [(j.id, j.attempts) for j in second] == [("j", 2)]
    assert not await store.reschedule("j", "A", now() + 60)  # A lost the claim
    assert not await store.complete("j", "A")
    assert await store.reschedule("j", "B", now() - 1)
    third = await store.claim_due("C", lease=10)
    assert [j.id for j in third] == ["j"]
    assert await store.complete("j", "C")
    assert await store.get_job("j") is None
    await store.schedule(Job(id="x", kind="k", due_at=now() + 60))
    assert await store.cancel_job("x") and not await store.cancel_job("x")


async def test_idempotency_keys(store: Store) -> None:
    assert await store.remember("click:1", ttl=0.3)
    assert not await store.remember("click:1", ttl=0.3)
    assert await store.remember("click:2", ttl=5)
    await asyncio.sleep(0.4)
    assert await store.remember("click:1", ttl=5)


async def test_ping(store: Store, make_store: Callable[[], Store]) -> None:
    assert await store.ping()
    closed = make_store()
    assert not await closed.ping()  # never connected: answers False, does not raise
    unreachable = RedisStore("redis://127.0.0.1:1/0")
    await unreachable.connect()
    assert not await unreachable.ping()
    await unreachable.close()
