"""Rate limits, capture reuse and the capture gate, and the retention due-job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot import limits, retention
from bot.diagnose.matrix import Figures
from bot.diagnose.models import Capture, Verdict
from bot.diagnose.reuse import CaptureGate, CapturesBusy, recent_capture
from bot.scheduler import JobWorker
from bot.services import Services
from bot.settings import Settings
from bot.store.base import Record, Store, now

DAY = 86_400.0


@pytest.fixture(autouse=True)
def fresh_refusals() -> None:
    """Each test starts on a new store: no refusal remembered from another test."""
    limits.forget_refusals()


def services_for(store: Store, **settings: object) -> Services:
    return Services(settings=Settings(**settings), catalog=None, store=store)  # type: ignore[arg-type]


def a_capture(capture_id: str, target: str) -> Capture:
    return Capture(
        id=capture_id,
        target=target,
        started_at=datetime.now(UTC),
        seconds=0.1,
        timeout=8,
        window_minutes=10,
        sources={},
        figures=Figures(),
        verdict=Verdict(),
    )


async def test_a_user_over_the_limit_is_told_when_to_try_again_and_audited(store: Store) -> None:
    services = services_for(store, rollbot_diagnose_per_user=2, rollbot_rate_window_seconds=30)
    act = limits.Limited.DIAGNOSE
    assert await limits.check(services, act, "U1", "api") is None
    assert await limits.check(services, act, "U1", "web") is None
    refusal = await limits.check(services, act, "U1", "api")
    assert refusal is not None and refusal.scope == "user"
    assert "try again in 30 s" in refusal.text() or "try again in 29 s" in refusal.text()
    assert await limits.check(services, act, "U2", "api") is None  # others are not held back
    await limits.refused(services, refusal)
    [entry] = await store.audit_since(0)
    assert (entry.actor, entry.action, entry.subject) == ("U1", "diagnose.rate_limited", "api")
    assert entry.detail["scope"] == "user" and entry.detail["limit"] == 2
    # until the window ends this replica refuses U1 without asking the store (closed here)
    await store.close()
    again = await limits.check(services, act, "U1", "api")
    assert again is not None and 0 < again.retry_after <= refusal.retry_after


async def test_a_target_limit_holds_across_users(store: Store) -> None:
    services = services_for(store, rollbot_rollback_per_target=3)
    act = limits.Limited.ROLLBACK
    answers = [await limits.check(services, act, f"U{i}", "api") for i in range(5)]
    refused = [a for a in answers if a is not None]
    assert len(refused) == 2 and all(r.scope == "target" for r in refused)
    assert "for `api`" in refused[0].text()


async def test_cancels_are_limited_per_user(store: Store) -> None:
    services = services_for(store, rollbot_cancel_per_user=1)
    act = limits.Limited.CANCEL
    assert await limits.check(services, act, "U1", "rb-1") is None
    refusal = await limits.check(services, act, "U1", "rb-2")
    assert refusal is not None and "cancel requests from you" in refusal.text()


async def test_a_store_that_cannot_count_lets_the_request_through(store: Store) -> None:
    services = services_for(store)
    await store.close()
    assert await limits.check(services, limits.Limited.ROLLBACK, "U1", "api") is None


async def test_a_recent_capture_of_the_same_target_is_found(store: Store) -> None:
    for cid, target, age in [("dg-1", "api", 30), ("dg-2", "web", 5), ("dg-3", "api", 200)]:
        t = now() - age
        data = a_capture(cid, target).model_dump(mode="json")
        await store.create(
            Record(id=cid, kind="diagnosis", state="done", data=data, created_at=t, updated_at=t)
        )
    found = await recent_capture(store, "api", 60)
    assert found is not None and found.id == "dg-1"
    assert await recent_capture(store, "api", 10) is None
    assert await recent_capture(store, "api", 0) is None  # reuse switched off
    assert await recent_capture(store, "db", 60) is None


async def test_the_gate_joins_one_target_and_turns_away_beyond_its_limit() -> None:
    gate, release = CaptureGate(), asyncio.Event()
    runs: list[str] = []

    async def collect(target: str) -> Capture:
        runs.append(target)
        await release.wait()
        return a_capture(f"dg-{target}", target)

    first = asyncio.create_task(gate.run("api", 2, lambda: collect("api")))
    joined = asyncio.create_task(gate.run("api", 2, lambda: collect("api")))
    second = asyncio.create_task(gate.run("web", 2, lambda: collect("web")))
    await asyncio.sleep(0.05)
    assert gate.running == 2
    with pytest.raises(CapturesBusy):
        await gate.run("db", 2, lambda: collect("db"))
    release.set()
    (a, fresh_a), (b, fresh_b), (_, fresh_w) = await asyncio.gather(first, joined, second)
    assert a is b and (fresh_a, fresh_b, fresh_w) == (True, False, True)
    assert runs == ["api", "web"] and gate.running == 0


async def test_a_failed_capture_fails_those_who_joined_it() -> None:
    gate = CaptureGate()

    async def broken() -> Capture:
        await asyncio.sleep(0.05)
        raise RuntimeError("ecs is down")

    results = await asyncio.gather(
        gate.run("api", 8, broken), gate.run("api", 8, broken), return_exceptions=True
    )
    assert [str(r) for r in results] == ["ecs is down", "ecs is down"]
    assert gate.running == 0


async def test_the_daily_retention_job_prunes_and_comes_back_a_day_later(store: Store) -> None:
    services = services_for(store, rollbot_retention_days=30)
    for cid, age in [("dg-old", 31), ("dg-new", 29)]:
        t = now() - age * DAY
        old = Record(id=cid, kind="diagnosis", state="done", created_at=t, updated_at=t)
        await store.create(old)
    await retention.ensure_scheduled(store)
    job = await store.get_job(retention.JOB_ID)
    assert job is not None and job.due_at > now()  # not during start-up
    await retention.ensure_scheduled(store)  # another replica starting keeps the due time
    assert (await store.get_job(retention.JOB_ID)).due_at == job.due_at  # type: ignore[union-attr]
    await store.schedule(job.model_copy(update={"due_at": now() - 1}))
    worker = JobWorker(store, "replica-1", lease=5, tick=0.05)
    retention.register(worker, services)
    running = asyncio.create_task(worker.run())
    for _ in range(100):
        if await store.get("dg-old") is None:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    await worker.stop(1)
    running.cancel()
    assert await store.get("dg-old") is None and await store.get("dg-new") is not None
    later = await store.get_job(retention.JOB_ID)
    assert later is not None and later.due_at > now() + DAY - 60
    [entry] = [a for a in await store.audit_since(0) if a.action == "retention.pruned"]
    assert entry.detail["diagnoses"] == 1 and entry.detail["days"] == 30
