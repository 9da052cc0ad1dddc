"""A request waiting for people: one durable due-job per request that keeps its target lock
alive, reminds the approvers at half-time and ends the request `expired` when nobody decided."""

from __future__ import annotations

import logging

from bot.catalog import Target
from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.announce import announce_state
from bot.rollback.models import TERMINAL, WAITING, Act, JobKind, RollbackData, State, approvals_of
from bot.services import Services
from bot.slack.text import escape
from bot.store.base import Job, Record, now

log = logging.getLogger(__name__)

# The watch renews the target lock this often, well inside the lock's lifetime.
RENEW_EVERY = records.TARGET_LOCK_TTL / 4


def timeout_of(services: Services, tgt: Target) -> float:
    return tgt.settings.approval_timeout or services.settings.rollbot_approval_timeout


async def arm(services: Services, rollback_id: str, data: RollbackData) -> None:
    """Start the clock (before the approval request goes out, so it is shown there) and the
    watch; the watch is in the store, so whichever replica is alive ends the request."""
    data.expires_at = now() + data.approval_timeout
    await services.store.update_data(rollback_id, {"expires_at": data.expires_at})
    await services.store.schedule(
        Job(
            id=f"{JobKind.APPROVAL}:{rollback_id}",
            kind=JobKind.APPROVAL,
            due_at=now() + min(RENEW_EVERY, data.approval_timeout / 2),
            payload={"id": rollback_id},
        )
    )


async def approval_watch(services: Services, job: Job) -> float | None:
    """Renew, remind, expire; done once the request is decided (execution renews from then)."""
    store, rollback_id = services.store, job.payload["id"]
    record = await store.get(rollback_id)
    if record is None:
        return None
    data = records.data_of(record)
    if record.state in TERMINAL:
        await records.release_target(store, data.target, rollback_id)  # never outlives it
        return None
    if record.state == State.REQUESTED:  # still being prepared
        return now() + services.settings.rollbot_lease_seconds
    if record.state not in WAITING:
        return None
    if not await records.take_target(store, data.target, rollback_id):
        log.error("rollback %s lost the lock of %s while waiting", rollback_id, data.target)
    t, expires = now(), data.expires_at or now()
    if t >= expires:
        await expire(services, rollback_id)
        return None
    half = expires - data.approval_timeout / 2
    if t >= half and not data.reminded:
        await _remind(services, record, data)
    return min(t + RENEW_EVERY, expires, expires if t >= half else half)


async def _remind(services: Services, record: Record, data: RollbackData) -> None:
    """Once, at half-time: the approvers, by mention, in the request's thread."""
    tgt = services.catalog.targets.get(data.target)
    approvers = tgt.approvers if tgt else []
    if await services.store.remember(f"reminded:{record.id}", ttl=data.approval_timeout + 3600):
        have = approvals_of(record.data)
        waiting = (
            "its *Confirm* click"
            if record.state == State.AWAITING_CONFIRMATION
            else f"{data.approvals_needed - len(have)} more approval(s)"
        )
        await services.slack.post(
            data.channel,
            f":alarm_clock: {' '.join(msg.mention(a) for a in approvers)} rollback "
            f"`{record.id}` of {escape(data.target)} still waits for {waiting}; it expires at "
            f"{msg.utc(data.expires_at)} UTC (in {msg.duration((data.expires_at or 0) - now())}).",
            thread_ts=data.thread_ts,
            subject=record.id,
            durable=True,
        )
    await services.store.update_data(record.id, {"reminded": True})


async def expire(services: Services, rollback_id: str) -> None:
    """Nobody decided in time: end it, free the target, say so where people will look."""
    store, slack = services.store, services.slack
    moved = await records.apply(
        store, rollback_id, Act.EXPIRE, "rollbot", why="no decision in time", finished_at=now()
    )
    if moved is None:  # decided at the last moment
        return
    data = records.data_of(moved)
    await records.release_target(store, data.target, rollback_id)
    await announce_state(services, rollback_id)
    waited = msg.duration(data.approval_timeout)
    notice = msg.section(
        f":hourglass: *Expired* — nobody decided within {waited}; the rollback of "
        f"*{escape(data.target)}* to `{escape(data.ref)}` was not run."
    )
    for ts in (data.approval_ts, data.confirm_ts):
        if ts:
            await slack.update(data.channel, ts, "Rollback request expired", [notice])
    text = (
        f":hourglass: Rollback `{rollback_id}` of {escape(data.target)} expired: nobody decided "
        f"within {waited}. Nothing was changed and the target is free; ask again with "
        f"`/rollback {escape(data.target)}` if it is still needed."
    )
    if data.thread_ts:
        await slack.post(
            data.channel, text, thread_ts=data.thread_ts, subject=rollback_id, durable=True
        )
    await slack.post(data.requester, text, subject=rollback_id, durable=True)
