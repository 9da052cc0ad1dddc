"""The due-jobs around a rollback's run: periodic status updates while it runs, and the watch
that ends a request whose preparing replica died."""

from __future__ import annotations

import contextlib

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.models import EXECUTING, TERMINAL, RollbackData, State
from bot.services import Services
from bot.slack.text import escape
from bot.store.base import Job, now


async def status_update(services: Services, job: Job) -> float | None:
    """Every ROLLBOT_STATUS_INTERVAL while a rollback runs; each due time posts once."""
    record = await services.store.get(job.payload["id"])
    interval = services.settings.rollbot_status_interval
    if record is None or record.state in TERMINAL:
        return None
    if record.state not in EXECUTING and record.state != State.APPROVED:
        return now() + interval
    # A claim whose lease ran out is claimed again with the same due time: post it once.
    if await services.store.remember(f"status:{record.id}:{job.due_at:.3f}", ttl=86400):
        data = records.data_of(record)
        next_due = now() + interval
        text = msg.status(services.settings.rollbot_templates, record, data, next_due)
        await services.slack.post(
            data.channel,
            text,
            thread_ts=data.thread_ts,
            subject=record.id,
            durable=True,
        )
        await services.store.update_data(record.id, {"status_updates": data.status_updates + 1})
        return next_due
    return now() + interval


async def preparation_watch(services: Services, job: Job) -> float | None:
    """A request still being prepared with nobody holding its lease: its replica died."""
    store, rollback_id = services.store, job.payload["id"]
    if await store.lock_info(records.prepare_lock(rollback_id)) is not None:
        return now() + services.settings.rollbot_lease_seconds  # still being prepared
    record = await store.get(rollback_id)
    if record is None and "data" in job.payload:
        # its replica died before writing the record: write it now, so the request is on record
        with contextlib.suppress(RuntimeError):
            await records.create(store, rollback_id, RollbackData(**job.payload["data"]))
        record = await store.get(rollback_id)
    if record is None or record.state != State.REQUESTED:
        return None
    moved = await records.move(
        store,
        rollback_id,
        {State.REQUESTED},
        State.INTERRUPTED,
        services.replica,
        error="the replica preparing the request stopped before asking for approval",
        finished_at=now(),
    )
    if moved is None:
        return None
    data = records.data_of(moved)
    await records.release_target(store, data.target, rollback_id)
    text = (
        f":warning: Your rollback request `{rollback_id}` of `{escape(data.target)}` stopped "
        "while it was being prepared (the bot preparing it went away). Nothing was changed; "
        f"ask again with `/rollback {escape(data.target)}`."
    )
    await services.slack.post(data.requester, text, subject=rollback_id, durable=True)
    if data.thread_ts:
        await services.slack.post(
            data.channel,
            text,
            thread_ts=data.thread_ts,
            subject=rollback_id,
            durable=True,
        )
    return None
