"""The due-job worker on a real SQLite store: claims, wake-ups, failures and hand-back on stop."""

from __future__ import annotations

import asyncio

from bot.scheduler import JobWorker
from bot.store.base import Job, Store, now

LONG_TICK = 30.0  # far longer than any test: a job run before it was claimed through wake()


async def started(worker: JobWorker) -> asyncio.Task[None]:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)  # the first claim (of nothing) has happened; now it sleeps
    return task


async def test_wake_claims_a_job_scheduled_after_the_worker_went_to_sleep(store: Store) -> None:
    ran = asyncio.Event()

    async def handler(job: Job) -> None:
        ran.set()

    worker = JobWorker(store, "replica-a", lease=10, tick=LONG_TICK)
    worker.on("execute", handler)
    task = await started(worker)
    await store.schedule(Job(id="j1", kind="execute", due_at=now()))
    await asyncio.sleep(0.2)
    assert not ran.is_set(), "without a wake-up the job waits for the next tick"
    worker.wake()
    await asyncio.wait_for(ran.wait(), 5)
    await worker.stop(1)
    await asyncio.wait_for(task, 5)
    assert await store.claim_due("replica-b", 10) == []  # completed, not left behind


async def test_a_failing_handler_puts_its_job_back_for_later(store: Store) -> None:
    calls = 0

    async def handler(job: Job) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    worker = JobWorker(store, "replica-a", lease=0.2, tick=0.05)
    worker.on("execute", handler)
    await store.schedule(Job(id="j1", kind="execute", due_at=now()))
    task = await started(worker)
    await asyncio.sleep(0.6)
    await worker.stop(1)
    await asyncio.wait_for(task, 5)
    assert calls >= 2, "the job was retried after its failure"


async def test_stop_hands_an_unfinished_job_back_due_now(store: Store) -> None:
    entered = asyncio.Event()

    async def slow(job: Job) -> None:
        entered.set()
        await asyncio.sleep(60)

    worker = JobWorker(store, "replica-a", lease=60, tick=0.05)
    worker.on("execute", slow)
    await store.schedule(Job(id="j1", kind="execute", due_at=now()))
    task = await started(worker)
    await asyncio.wait_for(entered.wait(), 5)
    await worker.stop(drain_seconds=0.1)
    await asyncio.wait_for(task, 5)
    # another replica takes it at once, without waiting for the 60 s lease to lapse
    taken = await store.claim_due("replica-b", 60)
    assert [j.id for j in taken] == ["j1"]


async def test_a_job_of_an_unknown_kind_is_dropped_not_retried_forever(store: Store) -> None:
    worker = JobWorker(store, "replica-a", lease=0.1, tick=0.05)
    await store.schedule(Job(id="j1", kind="no-such-kind", due_at=now()))
    task = await started(worker)
    await asyncio.sleep(0.3)
    await worker.stop(1)
    await asyncio.wait_for(task, 5)
    assert await store.claim_due("replica-b", 10) == []


async def test_a_full_batch_is_followed_by_another_claim_at_once(store: Store) -> None:
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.id)

    for i in range(7):
        await store.schedule(Job(id=f"j{i}", kind="status", due_at=now()))
    worker = JobWorker(store, "replica-a", lease=10, tick=LONG_TICK, batch=2)
    worker.on("status", handler)
    task = await started(worker)
    await asyncio.sleep(0.5)
    await worker.stop(1)
    await asyncio.wait_for(task, 5)
    assert sorted(ran) == [f"j{i}" for i in range(7)], "all claimed within the first tick"


async def test_a_busy_replica_leaves_due_jobs_to_the_others(store: Store) -> None:
    release = asyncio.Event()

    async def slow(job: Job) -> None:
        await release.wait()

    for i in range(3):
        await store.schedule(Job(id=f"j{i}", kind="execute", due_at=now()))
    worker = JobWorker(store, "replica-a", lease=60, tick=0.05, max_running=2)
    worker.on("execute", slow)
    task = await started(worker)
    await asyncio.sleep(0.3)
    left = await store.claim_due("replica-b", 60)
    assert len(left) == 1
    release.set()
    await worker.stop(1)
    await asyncio.wait_for(task, 5)


async def test_a_rescheduled_job_is_claimed_when_due_not_at_the_next_tick(store: Store) -> None:
    runs: list[float] = []

    async def every_quarter_second(job: Job) -> float | None:
        runs.append(now())
        return now() + 0.25 if len(runs) < 3 else None

    worker = JobWorker(store, "replica-a", lease=10, tick=LONG_TICK)
    worker.on("status", every_quarter_second)
    await store.schedule(Job(id="j1", kind="status", due_at=now()))
    task = await started(worker)
    worker.wake()
    await asyncio.sleep(2)
    await worker.stop(1)
    await asyncio.wait_for(task, 5)
    assert len(runs) == 3, "each due time woke the worker; the 30 s tick never came"
