"""Slack posts that survive an outage: a call still failing after slack_sdk's retries waits in
the store's outbox and is delivered later, in order, by whichever replica drains its queue."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import metrics
from bot.store.base import AuditEntry, Job, OutboxEntry, Store, now

log = logging.getLogger(__name__)

JOB_KIND = "slack.outbox"
FIRST_RETRY = 5.0  # seconds before the first delivery attempt of a queued call
MAX_BACKOFF = 60.0
BATCH = 20


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: rate limits, Slack's 5xx, a network that is down."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError, SlackClientError))


def job_id(queue: str) -> str:
    return f"{JOB_KIND}:{queue}"


async def call_in_order(
    store: Store,
    client: Any,
    queue: str,
    method: str,
    kwargs: dict[str, Any],
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Make the call now, or queue it behind calls still waiting; None when it was queued.

    A queued call is audited as `slack.queued` (with `detail`) in the same write that queues it.
    Errors Slack will repeat forever (a bad argument, a missing channel) are raised.
    """
    if await store.outbox_peek(queue, 1):  # earlier calls still wait: keep the order
        await enqueue(store, queue, method, kwargs, subject, detail)
        return None
    try:
        response = await getattr(client, method)(**kwargs)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("Slack %s failed after retries (%s); queued for later", method, exc)
        await enqueue(store, queue, method, kwargs, subject, detail)
        return None
    return dict(response.data) if hasattr(response, "data") else dict(response)


async def enqueue(
    store: Store,
    queue: str,
    method: str,
    kwargs: dict[str, Any],
    subject: str,
    detail: dict[str, Any] | None = None,
) -> None:
    # The drain job comes first so that a crash right after queuing cannot strand the entry
    # (a drain of an empty queue just ends).
    await _schedule_drain(store, queue)
    at = now()
    entry = OutboxEntry(at=at, queue=queue, method=method, kwargs=kwargs, subject=subject)
    detail = {"channel": queue, "method": method, **(detail or {})}
    audit = AuditEntry(
        at=at, actor="rollbot", action="slack.queued", subject=subject, detail=detail
    )
    await store.outbox_put(entry, audit)
    metrics.outbox_queued.inc()


async def schedule_stranded(store: Store) -> list[str]:
    """Give each queue still holding calls but no drain job one (e.g. its job was cancelled by
    hand); returns those queues. Run at start-up."""
    stranded = [q for q in await store.outbox_queues() if await store.get_job(job_id(q)) is None]
    for queue in stranded:
        await _schedule_drain(store, queue)
    return stranded


async def _schedule_drain(store: Store, queue: str) -> None:
    # Replacing an existing drain job is harmless: the drainer holds the queue's lock.
    job = Job(id=job_id(queue), kind=JOB_KIND, due_at=now() + FIRST_RETRY, payload={"queue": queue})
    await store.schedule(job)


class OutboxDrain:
    """The due-job that delivers one queue, oldest first, stopping at the first failure."""

    def __init__(self, store: Store, client: Any, lease: float) -> None:
        self.store = store
        self.client = client
        self.lease = lease

    async def __call__(self, job: Job) -> float | None:
        queue = job.payload["queue"]
        lock, owner = f"outbox:{queue}", secrets.token_hex(6)
        if not await self.store.acquire_lock(lock, owner, self.lease):
            return now() + FIRST_RETRY  # another replica is draining it
        try:
            return await self._drain(queue, job.attempts)
        finally:
            await self.store.release_lock(lock, owner)

    async def _drain(self, queue: str, attempts: int) -> float | None:
        while entries := await self.store.outbox_peek(queue, BATCH):
            for entry in entries:
                try:
                    await getattr(self.client, entry.method)(**entry.kwargs)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("outbox %s still failing (%s); later", queue, exc)
                        return now() + min(MAX_BACKOFF, FIRST_RETRY * 2 ** max(attempts - 1, 0))
                    await self._undeliverable(entry, exc)
                else:
                    metrics.outbox_delivered.inc()
                    await self._audit(entry, "slack.delivered")
                # a crash between the call and this drop repeats the call: at least once
                await self.store.outbox_drop(queue, entry.seq)
        return None

    async def _undeliverable(self, entry: OutboxEntry, exc: Exception) -> None:
        """Slack refuses it for good (e.g. channel_not_found): logged and audited, not kept."""
        error = exc.response.get("error", "") if isinstance(exc, SlackApiError) else str(exc)
        log.error("outbox %s: Slack refused %s for good: %s", entry.queue, entry.method, error)
        await self._audit(entry, "slack.undeliverable", error=error)

    async def _audit(self, entry: OutboxEntry, action: str, **detail: Any) -> None:
        detail = {"channel": entry.queue, "method": entry.method, "queued_at": entry.at, **detail}
        await self.store.audit(
            AuditEntry(
                at=now(), actor="rollbot", action=action, subject=entry.subject, detail=detail
            )
        )
