"""A rollback request, everything before approval: checks, target lock, diagnostics, plan,
announcement and the approval request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from bot.catalog import Target
from bot.diagnose.capture import capture
from bot.diagnose.messaging import markdown
from bot.diagnose.models import Capture
from bot.rollback import expiry, records
from bot.rollback import messaging as msg
from bot.rollback.announce import announce_state
from bot.rollback.models import JobKind, RollbackData, State
from bot.rollback.plans import kept, make_plan
from bot.services import Services
from bot.slack.respond import Reply
from bot.slack.text import code, escape
from bot.store.audit import audit
from bot.store.base import Job, Record, now
from playbooks.base import NothingToDo, RequestRefused, StepFailed
from playbooks.runner import PlannedStep

log = logging.getLogger(__name__)


async def request_rollback(
    services: Services,
    *,
    target: str,
    ref: str,
    reason: str,
    requester: str,
    origin_channel: str,
    respond: Reply,
    severity: str = "high",
    diagnosis_id: str = "",
) -> str | None:
    """Everything before approval. Returns the rollback id, or None if refused."""
    tgt = services.catalog.targets[target]
    refusal = await _refusal(services, tgt, requester)
    if refusal:
        await respond(response_type="ephemeral", text=refusal)
        return None
    rollback_id = records.new_id()
    data = RollbackData(
        target=target,
        playbook=tgt.playbook.name,
        ref=ref,
        reason=reason,
        severity=severity,
        dangerous=tgt.playbook.spec.dangerous,
        requester=requester,
        origin_channel=origin_channel,
        channel=tgt.channel,
        estimate_minutes=tgt.estimate_minutes,
        diagnosis_id=diagnosis_id,
        approvals_needed=tgt.settings.approvals,
        approval_timeout=expiry.timeout_of(services, tgt),
    )
    # The watch job exists before the target lock and the record do, so no crash can leave a
    # request that nobody ends or a target that nobody frees.
    async with _preparing(services, rollback_id, data):
        if not await records.take_target(services.store, target, rollback_id):
            await audit(services.store, requester, "rollback.request_refused", target, why="busy")
            await respond(response_type="ephemeral", text=await _busy_text(services, target))
            return None
        try:
            await records.create(services.store, rollback_id, data)
            await _prepare(services, tgt, rollback_id, data)
        except (NothingToDo, RequestRefused) as exc:
            await _end_unplanned(services, rollback_id, target, exc)
            await respond(response_type="ephemeral", text=await _not_needed(services, data, exc))
            return None
        except Exception as exc:
            await _abort_request(services, rollback_id, target, exc)
            await respond(
                response_type="ephemeral",
                text=f":x: Rollback of {code(target)} could not be prepared: "
                f"{escape(_short(exc))}. Nothing was changed.",
            )
            return None
    await respond(
        response_type="ephemeral",
        text=f"Rollback {code(rollback_id)} of {code(target)} is waiting for approval: "
        f"{msg.link(data.channel, data.thread_ts)}",
    )
    return rollback_id


@contextlib.asynccontextmanager
async def _preparing(
    services: Services, rollback_id: str, data: RollbackData
) -> AsyncIterator[None]:
    """Hold a lease while preparing; if this replica dies, a survivor's watch job sees the
    lease lapse and ends the request instead of leaving its target locked."""
    store, lease = services.store, services.settings.rollbot_lease_seconds
    lock, owner = records.prepare_lock(rollback_id), services.replica
    await store.acquire_lock(lock, owner, lease)
    watch = Job(
        id=f"{JobKind.PREPARATION}:{rollback_id}",
        kind=JobKind.PREPARATION,
        due_at=now() + lease,
        payload={"id": rollback_id, "data": data.model_dump(mode="json")},
    )
    await store.schedule(watch)

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            await store.acquire_lock(lock, owner, lease)

    heartbeat = asyncio.create_task(renew())
    try:
        yield
    finally:
        heartbeat.cancel()
        await store.release_lock(lock, owner)
        await store.cancel_job(watch.id)


async def _refusal(services: Services, tgt: Target, user: str) -> str:
    if tgt.settings.requesters is not None:
        groups = {g for g in tgt.settings.requesters if g.startswith("S")}
        member_of = {g for g in groups if user in await services.slack.group_members(g, fresh=True)}
        if not tgt.may_request(user, member_of):
            await audit(
                services.store, user, "rollback.request_refused", tgt.name, why="not in requesters"
            )
            return (
                f"You are not on the list of people who may request a rollback of {code(tgt.name)}."
            )
    return ""


async def _busy_text(services: Services, target: str) -> str:
    active = await records.active_for_target(services.store, target)
    if active is None:
        return f"Another rollback of {code(target)} is starting; try again in a moment."
    data = records.data_of(active)
    return (
        f"{code(target)} already has rollback {code(active.id)} ({active.state}, requested by "
        f"<@{data.requester}>): {msg.link(data.channel, data.thread_ts)}"
    )


async def _prepare(services: Services, tgt: Target, rollback_id: str, data: RollbackData) -> None:
    """Diagnostics and the plan side by side (both only read; a request needing no rollback,
    or asking for what the target does not allow, ends with its plan), then the announcement
    and the approval request."""
    slack = services.slack
    capturing = asyncio.ensure_future(_capture(services, tgt))
    try:
        data.plan, data.plan_digest = _kept(await make_plan(services, tgt, data.ref))
    except BaseException:
        capturing.cancel()
        raise
    diagnostics = await capturing
    data.thread_ts = await slack.post(
        data.channel, _announcement(services, tgt, rollback_id, data), subject=rollback_id
    )
    await services.store.update_data(
        rollback_id,
        {
            "thread_ts": data.thread_ts,
            "plan": data.plan,
            "plan_digest": data.plan_digest,
            "diagnosis_id": data.diagnosis_id,
        },
    )
    if diagnostics is not None:
        await _attach_diagnostics(services, tgt, rollback_id, data, diagnostics)
        data.diagnosis_id = diagnostics.id
    await expiry.arm(services, rollback_id, data)
    data.approval_ts = await slack.post(
        data.channel,
        f"Approval needed for rollback of {tgt.name}",
        msg.approval_blocks(rollback_id, data, tgt.approvers),
        thread_ts=data.thread_ts,
        subject=rollback_id,
    )
    if not msg.plan_section(data)[1]:  # the approval request shows part of it: the rest here
        await slack.attach(
            data.channel,
            data.thread_ts,
            filename=f"plan-{rollback_id}.md",
            content=msg.plan_document(rollback_id, data),
            title=f"Plan of rollback {rollback_id}",
            subject=rollback_id,
        )
    moved = await records.move(
        services.store,
        rollback_id,
        {State.REQUESTED},
        State.AWAITING_APPROVAL,
        "rollbot",
        approval_ts=data.approval_ts,
        diagnosis_id=data.diagnosis_id,
    )
    if moved is None:
        raise RuntimeError("the rollback changed state while it was being prepared")
    await announce_state(services, rollback_id)


async def _attach_diagnostics(
    services: Services, tgt: Target, rollback_id: str, data: RollbackData, diagnostics: Capture
) -> None:
    """The capture as a file in the thread, or as text there when Slack refuses the file: the
    announcement is out, so a Slack permission problem never stops the request now."""
    await services.slack.attach(
        data.channel,
        data.thread_ts,
        filename=f"diagnostics-{tgt.name}-{rollback_id}.json",
        content=diagnostics.to_json(),
        readable=markdown(diagnostics),
        title=f"Pre-rollback diagnostics ({tgt.name})",
        subject=rollback_id,
    )


async def _capture(services: Services, tgt: Target) -> Any:
    """Runbook 001: capture the evidence before anything changes; never blocks the rollback."""
    try:
        result = await capture(tgt, services.settings)
    except Exception:
        log.exception("pre-rollback diagnostics of %s failed", tgt.name)
        return None
    await services.store.create(
        Record(
            id=result.id,
            kind="diagnosis",
            state="done",
            data=json.loads(result.to_json()),
            created_at=now(),
            updated_at=now(),
        )
    )
    return result


def _kept(planned: list[PlannedStep]) -> tuple[list[dict[str, Any]], str]:
    stored = kept(planned)
    return stored["plan"], stored["plan_digest"]


async def _not_needed(services: Services, data: RollbackData, exc: Exception) -> str:
    """What the requester is told when the request needs no rollback or is not allowed."""
    target = code(data.target)
    if isinstance(exc, NothingToDo):
        return f":information_source: {target}: {escape(str(exc))}. No rollback was started."
    await audit(
        services.store, data.requester, "rollback.request_refused", data.target, why=str(exc)
    )
    return f":no_entry: Rollback of {target} refused: {escape(str(exc))}. Nothing was changed."


async def _end_unplanned(services: Services, rollback_id: str, target: str, exc: Exception) -> None:
    """Ends a request that never reached approval; its target is free again."""
    what = "nothing to do" if isinstance(exc, NothingToDo) else "refused"
    await records.move(
        services.store,
        rollback_id,
        {State.REQUESTED},
        State.CANCELLED,
        "rollbot",
        error=f"{what}: {_short(exc)}",
        finished_at=now(),
    )
    await records.release_target(services.store, target, rollback_id)


def _announcement(services: Services, tgt: Target, rollback_id: str, data: RollbackData) -> str:
    t = now()
    interval = services.settings.rollbot_status_interval
    return msg.render(
        "announcement",
        services.settings.rollbot_templates,
        target=tgt.name,
        id=rollback_id,
        reason=data.reason,
        severity=data.severity,
        playbook_description=tgt.playbook.spec.description,
        ref=data.ref,
        requested_at=msg.utc(t),
        expected_at=msg.utc(t + data.estimate_minutes * 60),
        estimate=f"{data.estimate_minutes:g}",
        impact=tgt.settings.description or f"service {tgt.name} is degraded",
        requester=data.requester,
        approvers=tgt.approvers,
        interval=msg.duration(interval),
    )


async def _abort_request(services: Services, rollback_id: str, target: str, exc: Exception) -> None:
    if not isinstance(exc, StepFailed):
        log.exception("preparing %s failed", rollback_id, exc_info=exc)
    await records.move(
        services.store,
        rollback_id,
        {State.REQUESTED, State.AWAITING_APPROVAL},
        State.FAILED,
        "rollbot",
        error=f"not prepared: {_short(exc)}",
        finished_at=now(),
    )
    await records.release_target(services.store, target, rollback_id)
    await announce_state(services, rollback_id)


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 400 else text[:400] + "…"
