"""The Slack outbox against the fake Slack Web API and a real SQLite store: queued calls keep
their order, are delivered once Slack answers, and a permanent refusal is audited, not kept."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncServerErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import outbox
from bot.store.base import Job, Store, now
from tests.testbed.slack_api import TOKEN, FakeSlackApi


def client(fake: FakeSlackApi) -> AsyncWebClient:
    # one quick retry, as the bot's client retries 5xx before giving up
    retry = AsyncServerErrorRetryHandler(max_retry_count=1)
    return AsyncWebClient(token=TOKEN, base_url=fake.url, retry_handlers=[retry])


async def send(store: Store, fake: FakeSlackApi, text: str) -> dict | None:
    kwargs = {"channel": "C1", "text": text, "thread_ts": "1.000001"}
    return await outbox.call_in_order(store, client(fake), "C1", "chat_postMessage", kwargs, "rb-1")


def posted(fake: FakeSlackApi) -> list[str]:
    return [c.args["text"] for c in fake.calls_to("chat.postMessage")]


async def drain(store: Store, fake: FakeSlackApi) -> float | None:
    job = await store.get_job(outbox.job_id("C1"))
    assert job is not None, "queuing a call schedules the queue's drain job"
    return await outbox.OutboxDrain(store, client(fake), lease=5)(job)


async def test_calls_queue_behind_a_failure_and_drain_in_order(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    assert (await send(store, fake_slack, "first"))["ok"]
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    assert await send(store, fake_slack, "second") is None  # both tries refused: queued
    fake_slack.heal()
    # Slack answers again, but this one must not overtake the one waiting
    assert await send(store, fake_slack, "third") is None
    assert posted(fake_slack) == ["first"]
    job = await store.get_job(outbox.job_id("C1"))
    assert job is not None and job.due_at > now() and job.kind == outbox.JOB_KIND
    queued = [a for a in await store.audit_since(0) if a.action == "slack.queued"]
    assert [(a.subject, a.detail["method"]) for a in queued] == [("rb-1", "chat_postMessage")] * 2

    assert await drain(store, fake_slack) is None
    assert posted(fake_slack) == ["first", "second", "third"]
    assert await store.outbox_peek("C1") == []
    assert (await send(store, fake_slack, "fourth"))["ok"]  # straight through again


async def test_a_drain_stops_at_the_first_failure_and_comes_back_later(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    await send(store, fake_slack, "a")
    await send(store, fake_slack, "b")
    fake_slack.fail_next("chat.postMessage", 1, status=429, retry_after=0)
    again = await drain(store, fake_slack)
    assert again is not None and again > now()
    assert posted(fake_slack) == []
    assert [e.kwargs["text"] for e in await store.outbox_peek("C1")] == ["a", "b"]
    assert await drain(store, fake_slack) is None
    assert posted(fake_slack) == ["a", "b"]


async def test_a_permanent_refusal_is_audited_and_the_rest_still_delivered(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    bad = {"channel": "C1", "text": "lost", "blocks": [{"type": "no-such-block"}]}
    with pytest.raises(SlackApiError):  # nothing waits: a permanent error is the caller's
        await outbox.call_in_order(store, client(fake_slack), "C1", "chat_postMessage", bad)
    assert await store.outbox_peek("C1") == []

    fake_slack.fail_next("chat.postMessage", 2, status=503)
    await outbox.call_in_order(store, client(fake_slack), "C1", "chat_postMessage", bad, "rb-1")
    await send(store, fake_slack, "kept")
    assert await drain(store, fake_slack) is None
    assert posted(fake_slack) == ["kept"]
    assert await store.outbox_peek("C1") == []
    audit = await store.audit_since(0)
    refused = [a for a in audit if a.action == "slack.undeliverable"]
    assert len(refused) == 1 and refused[0].subject == "rb-1"
    assert refused[0].detail["error"] == "invalid_blocks"
    assert [a.action for a in audit].count("slack.delivered") == 1
    fake_slack.errors.clear()  # the refusals were this test's doing


async def test_only_one_replica_drains_a_queue_at_a_time(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    await send(store, fake_slack, "once")
    assert await store.acquire_lock("outbox:C1", "another-replica", 5)
    job = Job(id=outbox.job_id("C1"), kind=outbox.JOB_KIND, due_at=now(), payload={"queue": "C1"})
    later = await outbox.OutboxDrain(store, client(fake_slack), lease=5)(job)
    assert later is not None and posted(fake_slack) == []


async def test_a_queue_left_without_a_drain_job_gets_one_at_start_up(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    await send(store, fake_slack, "stranded")
    await store.cancel_job(outbox.job_id("C1"))  # say, cancelled by hand
    kwargs = {"channel": "C2", "text": "waiting"}
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    await outbox.call_in_order(store, client(fake_slack), "C2", "chat_postMessage", kwargs)
    later = (await store.get_job(outbox.job_id("C2"))).due_at

    assert await outbox.schedule_stranded(store) == ["C1"]
    assert (await store.get_job(outbox.job_id("C2"))).due_at == later  # its own job untouched
    fake_slack.heal()
    assert await drain(store, fake_slack) is None
    assert "stranded" in posted(fake_slack)
    assert await outbox.schedule_stranded(store) == []
