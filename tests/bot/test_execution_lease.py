"""An executor's lease on a real redis-server that is killed and started again: the heartbeat
outlives the outage, a lapsed lease stops the run at the next step boundary, a replaced one
stops at once, and a step's end is journaled as soon as the store is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.rollback.lease import ClaimedJournal, ExecutionLease, LeaseLost
from bot.store.base import Fenced, JournalEntry, Record, now
from bot.store.redis import RedisStore
from tests.testbed.redis_restartable import RestartableRedis, restartable_redis  # noqa: F401

TTL = 0.6


@pytest.fixture
async def store(restartable_redis: RestartableRedis) -> AsyncIterator[RedisStore]:  # noqa: F811
    s = RedisStore(restartable_redis.url)
    await s.connect()
    t = now()
    await s.create(
        Record(id="rb-0001", kind="rollback", state="running", created_at=t, updated_at=t)
    )
    yield s
    await s.close()


async def _lease(store: RedisStore, owner: str = "a") -> ExecutionLease:
    claim = await store.claim_execution("rb-0001", owner, TTL)
    assert claim is not None
    return ExecutionLease(store, "rb-0001", owner, claim.token, TTL, "api")


async def _outage(redis_server: RestartableRedis, seconds: float) -> None:
    redis_server.kill()
    await asyncio.sleep(seconds)
    await asyncio.to_thread(redis_server.start)


async def test_the_heartbeat_outlives_a_blip_and_keeps_the_claim(
    store: RedisStore,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    lease = await _lease(store)
    heartbeat = asyncio.create_task(lease.keep())
    try:
        await _outage(restartable_redis, TTL * 2)  # longer than the lease
        await asyncio.sleep(TTL)
        assert not heartbeat.done()  # it never died on the ConnectionErrors
        assert lease.valid() and not lease.lost  # renewed once the store was back
        info = await store.execution_claim("rb-0001")
        assert info is not None and info.owner == "a" and info.expires_at > now()
        await lease.before_step(mutating=True)  # a changing step may start
    finally:
        heartbeat.cancel()


async def test_a_lapsed_lease_stops_the_run_at_the_next_step_boundary(
    store: RedisStore,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    lease = await _lease(store)
    restartable_redis.kill()
    try:
        await lease.before_step(mutating=False)  # still valid: a read-only step goes on
        await asyncio.sleep(TTL)
        assert not lease.valid()
        with pytest.raises(LeaseLost, match="unreachable until its claim lapsed"):
            await lease.before_step(mutating=False)
    finally:
        await asyncio.to_thread(restartable_redis.start)


async def test_a_changing_step_starts_only_on_a_renewed_lease(
    store: RedisStore,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    lease = await _lease(store)
    restartable_redis.kill()
    try:
        # valid for a moment still, but the renewal a change needs cannot be made
        with pytest.raises(LeaseLost):
            await lease.before_step(mutating=True)
    finally:
        await asyncio.to_thread(restartable_redis.start)


async def test_a_replaced_executor_stops_and_its_late_write_is_refused(
    store: RedisStore,
) -> None:
    old = await _lease(store, "a")
    stopped: list[str] = []
    old.on_lost = lambda: stopped.append(old.lost_reason)
    await asyncio.sleep(TTL + 0.1)  # paused past its lease
    new = await _lease(store, "b")
    assert new.token == old.token + 1
    entry = JournalEntry(at=now(), step=0, step_id="update", event="end", outcome="ok")
    with pytest.raises(Fenced):
        await ClaimedJournal(old).journal_append("rb-0001", entry)
    with pytest.raises(LeaseLost, match="taken over by claim 2 of b"):
        await old.before_step(mutating=False)
    assert stopped and old.lost
    assert await ClaimedJournal(new).journal_append("rb-0001", entry) > 0
    assert [e.fence for e in await store.journal("rb-0001")] == [new.token]


async def test_a_steps_end_is_journaled_as_soon_as_the_store_is_back(
    store: RedisStore,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    lease = await _lease(store)
    journal = ClaimedJournal(lease)
    restartable_redis.kill()
    end = JournalEntry(at=now(), step=0, step_id="update", event="end", outcome="ok")
    writing = asyncio.create_task(journal.journal_append("rb-0001", end))
    await asyncio.sleep(TTL * 2)  # the lease lapsed meanwhile: the end is still kept
    assert not writing.done()
    await asyncio.to_thread(restartable_redis.start)
    assert await asyncio.wait_for(writing, 10) > 0
    (written,) = await store.journal("rb-0001")
    assert (written.event, written.fence) == ("end", lease.token)
    # a start is not kept past the lease: the run stops instead
    restartable_redis.kill()
    try:
        await asyncio.sleep(TTL)
        start = JournalEntry(at=now(), step=1, step_id="stable", event="start")
        with pytest.raises(LeaseLost):
            await journal.journal_append("rb-0001", start)
    finally:
        await asyncio.to_thread(restartable_redis.start)
