"""Rollback flows: request (diagnose, announce, ask), decide, cancel, status and history."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
from collections.abc import AsyncIterator
from typing import Any

from bot.catalog import Target
from bot.rollback import messaging as msg
from bot.rollback import service
from bot.rollback.models import (
    CANCELLABLE,
    JobKind,
    RollbackData,
    State,
)
from bot.services import Services
from bot.slack import outbox
from bot.slack.text import code, escape
from bot.store.base import Job, Record, now
from playbooks.base import StepFailed
from playbooks.runner import plan, step_context

log = logging.getLogger(__name__)


async def post(
    services: Services,
    client: Any,
    channel: str,
    text: str,
    blocks: list[dict] | None = None,
    thread_ts: str | None = None,
    subject: str = "",
    broadcast: bool = False,
    durable: bool = False,
) -> str:
    """Post a message and write it to the audit log; returns its ts.

    A durable post that Slack still refuses after retries waits in the outbox and is delivered
    later, in order ("" is returned then); others raise.
    """
    kwargs: dict[str, Any] = {"channel": channel, "text": text}
    if blocks:
        kwargs["blocks"] = blocks
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
        kwargs["reply_broadcast"] = broadcast
    detail = {"channel": channel, "text": text[:500]}
    response = await _call(services, client, "chat_postMessage", kwargs, subject, durable, detail)
    if response is None:
        return ""  # queued, and audited as such
    await service.audit(services.store, "rollbot", "slack.post", subject, **detail)
    return str(response["ts"])


async def upload(
    services: Services,
    client: Any,
    channel: str,
    thread_ts: str,
    filename: str,
    content: str,
    title: str,
    subject: str,
    durable: bool = False,
) -> None:
    kwargs = {
        "channel": channel,
        "thread_ts": thread_ts,
        "filename": filename,
        "content": content,
        "title": title,
    }
    detail = {"filename": filename}
    response = await _call(services, client, "files_upload_v2", kwargs, subject, durable, detail)
    if response is not None:
        await service.audit(services.store, "rollbot", "slack.upload", subject, **detail)


async def _call(
    services: Services,
    client: Any,
    method: str,
    kwargs: dict[str, Any],
    subject: str,
    durable: bool,
    detail: dict[str, Any],
) -> dict[str, Any] | None:
    if durable:
        queue = kwargs["channel"]
        return await outbox.call_in_order(
            services.store, client, queue, method, kwargs, subject, detail
        )
    return dict((await getattr(client, method)(**kwargs)).data)


async def update_quietly(client: Any, **kwargs: Any) -> None:
    """Refresh a message (buttons, progress); a failure must never stop the rollback itself."""
    try:
        await client.chat_update(**kwargs)
    except Exception as exc:
        log.warning("could not update message %s: %s", kwargs.get("ts"), exc)


def link(channel: str, ts: str) -> str:
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}" if ts else ""


async def request_rollback(
    services: Services,
    client: Any,
    *,
    target: str,
    ref: str,
    reason: str,
    requester: str,
    origin_channel: str,
    respond: Any,
    severity: str = "high",
    diagnosis_id: str = "",
) -> str | None:
    """Everything before approval. Returns the rollback id, or None if refused."""
    tgt = services.catalog.targets[target]
    refusal = await _refusal(services, client, tgt, requester)
    if refusal:
        await respond(response_type="ephemeral", text=refusal)
        return None
    rollback_id = service.new_id()
    if not await service.take_target(services.store, target, rollback_id):
        await respond(response_type="ephemeral", text=await _busy_text(services, target))
        return None
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
    )
    await service.create(services.store, rollback_id, data)
    try:
        async with _preparing(services, rollback_id):
            await _prepare(services, client, tgt, rollback_id, data)
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
        f"{link(data.channel, data.thread_ts)}",
    )
    return rollback_id


@contextlib.asynccontextmanager
async def _preparing(services: Services, rollback_id: str) -> AsyncIterator[None]:
    """Hold a lease while preparing; if this replica dies, a survivor's watch job sees the
    lease lapse and ends the request instead of leaving its target locked."""
    store, lease = services.store, services.settings.rollbot_lease_seconds
    lock, owner = service.prepare_lock(rollback_id), services.replica
    await store.acquire_lock(lock, owner, lease)
    watch = Job(
        id=f"{JobKind.PREPARATION}:{rollback_id}",
        kind=JobKind.PREPARATION,
        due_at=now() + lease,
        payload={"id": rollback_id},
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


async def _refusal(services: Services, client: Any, tgt: Target, user: str) -> str:
    if tgt.settings.requesters is not None:
        groups = {g for g in tgt.settings.requesters if g.startswith("S")}
        directory = service.ApproverDirectory(client)
        member_of = {g for g in groups if user in await directory.members(g)}
        if not tgt.may_request(user, member_of):
            await service.audit(
                services.store, user, "rollback.request_refused", tgt.name, why="not in requesters"
            )
            return (
                f"You are not on the list of people who may request a rollback of {code(tgt.name)}."
            )
    return ""


async def _busy_text(services: Services, target: str) -> str:
    active = await service.active_for_target(services.store, target)
    if active is None:
        return f"Another rollback of {code(target)} is starting; try again in a moment."
    data = service.data_of(active)
    return (
        f"{code(target)} already has rollback {code(active.id)} ({active.state}, requested by "
        f"<@{data.requester}>): {link(data.channel, data.thread_ts)}"
    )


async def _prepare(
    services: Services, client: Any, tgt: Target, rollback_id: str, data: RollbackData
) -> None:
    """Diagnostics first, then the plan, the announcement and the approval request."""
    diagnostics = await _capture(services, tgt, rollback_id)
    data.plan = await _plan(tgt, data.ref, services)
    data.thread_ts = await post(
        services,
        client,
        data.channel,
        _announcement(services, tgt, rollback_id, data),
        subject=rollback_id,
    )
    await services.store.update_data(
        rollback_id,
        {"thread_ts": data.thread_ts, "plan": data.plan, "diagnosis_id": data.diagnosis_id},
    )
    if diagnostics is not None:
        await upload(
            services,
            client,
            data.channel,
            data.thread_ts,
            f"diagnostics-{tgt.name}-{rollback_id}.json",
            diagnostics.to_json(),
            f"Pre-rollback diagnostics ({tgt.name})",
            rollback_id,
        )
        data.diagnosis_id = diagnostics.id
    data.approval_ts = await post(
        services,
        client,
        data.channel,
        f"Approval needed for rollback of {tgt.name}",
        msg.approval_blocks(rollback_id, data, tgt.approvers),
        thread_ts=data.thread_ts,
        subject=rollback_id,
    )
    moved = await service.move(
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


async def _capture(services: Services, tgt: Target, rollback_id: str) -> Any:
    """Runbook 001: capture the evidence before anything changes; never blocks the rollback."""
    from bot.diagnose import capture

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


async def _plan(tgt: Target, ref: str, services: Services) -> list[dict[str, Any]]:
    planned = await plan(tgt.steps, step_context(tgt, ref, services.settings))
    return [
        {"step_id": p.step_id, "title": p.title, "mutating": p.mutating, "calls": p.calls}
        for p in planned
    ]


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
    await service.move(
        services.store,
        rollback_id,
        {State.REQUESTED, State.AWAITING_APPROVAL},
        State.FAILED,
        "rollbot",
        error=f"not prepared: {_short(exc)}",
        finished_at=now(),
    )
    await service.release_target(services.store, target, rollback_id)


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 400 else text[:400] + "…"


async def decide(
    services: Services,
    client: Any,
    rollback_id: str,
    user: str,
    approve: bool,
    respond: Any,
    message_ts: str = "",
) -> None:
    """An Approve or Reject click: checked against the catalog on every click."""
    record = await services.store.get(rollback_id)
    if record is not None and record.state == State.REQUESTED:
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text=f"Rollback {code(rollback_id)} is still being prepared; try again in a moment.",
        )
        return
    # A button only decides the rollback whose approval (or confirmation) message carries it.
    own = {record.data.get("approval_ts"), record.data.get("confirm_ts")} if record else set()
    forged = record is not None and (not message_ts or message_ts not in own)
    if record is None or record.kind != "rollback" or forged:
        await service.audit(services.store, user, "rollback.forged_click", rollback_id)
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text="That approval button does not belong to any rollback I know.",
        )
        return
    data = service.data_of(record)
    tgt = services.catalog.targets.get(data.target)
    refusal = await _decision_refusal(services, client, tgt, data, user)
    if refusal:
        await service.audit(
            services.store, user, "rollback.decision_refused", rollback_id, why=refusal
        )
        await respond(response_type="ephemeral", replace_original=False, text=refusal)
        return
    confirming = approve and record.state == State.AWAITING_CONFIRMATION
    if confirming:
        to, sources, patch = State.APPROVED, {State.AWAITING_CONFIRMATION}, {"confirmed_by": user}
    elif approve:
        to = State.AWAITING_CONFIRMATION if data.dangerous else State.APPROVED
        sources, patch = {State.AWAITING_APPROVAL}, {"approver": user, "decided_at": now()}
    else:
        to, patch = State.REJECTED, {"approver": user, "decided_at": now()}
        sources = {State.AWAITING_APPROVAL, State.AWAITING_CONFIRMATION}
    moved = await service.move(services.store, rollback_id, sources, to, user, **patch)
    if moved is None:
        current = await services.store.get(rollback_id)
        state = current.state if current else "gone"
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text=f"Rollback {code(rollback_id)} is already {state}; nothing to do.",
        )
        return
    if to == State.APPROVED:
        await schedule_execution(services, rollback_id)
    await update_quietly(
        client,
        channel=data.channel,
        ts=data.confirm_ts if record.state == State.AWAITING_CONFIRMATION else data.approval_ts,
        text=f"Rollback {to.value} by {user}",
        blocks=msg.decided_blocks(data, to, user),
    )
    if to == State.AWAITING_CONFIRMATION:
        confirm_ts = await post(
            services,
            client,
            data.channel,
            f"Second confirmation needed for {data.target}",
            msg.confirm_blocks(rollback_id, data, user),
            thread_ts=data.thread_ts,
            subject=rollback_id,
        )
        await services.store.update_data(rollback_id, {"confirm_ts": confirm_ts})
        return
    if not approve:
        await service.release_target(services.store, data.target, rollback_id)
        await post(
            services,
            client,
            data.channel,
            f":no_entry: Rollback of {escape(data.target)} rejected by <@{user}>.",
            thread_ts=data.thread_ts,
            subject=rollback_id,
            broadcast=True,
            durable=True,
        )


async def _decision_refusal(
    services: Services, client: Any, tgt: Target | None, data: RollbackData, user: str
) -> str:
    if tgt is None:
        return f"The target {code(data.target)} is no longer in the catalog."
    directory = services.directory(client)
    if not await directory.is_approver(user, tgt.approvers):
        return f"Only the approvers of {code(tgt.name)} can decide this rollback."
    if user == data.requester and not tgt.allow_self_approval:
        return "You requested this rollback, so someone else has to approve it."
    return ""


async def schedule_execution(services: Services, rollback_id: str) -> None:
    t = now()
    await services.store.schedule(
        Job(
            id=f"{JobKind.EXECUTE}:{rollback_id}",
            kind=JobKind.EXECUTE,
            due_at=t,
            payload={"id": rollback_id},
        )
    )
    await services.store.schedule(
        Job(
            id=f"{JobKind.STATUS}:{rollback_id}",
            kind=JobKind.STATUS,
            due_at=t + services.settings.rollbot_status_interval,
            payload={"id": rollback_id},
        )
    )
    services.wake_jobs()


async def cancel(services: Services, client: Any, rollback_id: str, user: str) -> dict[str, Any]:
    record = await services.store.get(rollback_id)
    if record is None or record.kind != "rollback":
        return {"response_type": "ephemeral", "text": f"No rollback {code(rollback_id)}."}
    data = service.data_of(record)
    moved = await service.move(
        services.store, rollback_id, CANCELLABLE, State.CANCELLED, user, finished_at=now()
    )
    if moved is None:
        ran = ", ".join(escape(s["step_id"]) for s in record.data.get("steps", [])) or "nothing yet"
        return {
            "response_type": "ephemeral",
            "text": f"Rollback {code(rollback_id)} is {record.state} and can no longer be "
            f"cancelled. Steps already run: {ran}.",
        }
    await service.release_target(services.store, data.target, rollback_id)
    await services.store.cancel_job(f"{JobKind.EXECUTE}:{rollback_id}")
    if data.approval_ts:
        await update_quietly(
            client,
            channel=data.channel,
            ts=data.approval_ts,
            text="Rollback cancelled",
            blocks=msg.decided_blocks(data, State.CANCELLED, user),
        )
    if data.thread_ts:
        await post(
            services,
            client,
            data.channel,
            f":heavy_minus_sign: Rollback `{rollback_id}` cancelled by <@{user}> "
            "before anything ran.",
            thread_ts=data.thread_ts,
            subject=rollback_id,
            durable=True,
        )
    return {"response_type": "ephemeral", "text": f"Rollback {code(rollback_id)} cancelled."}


async def status_message(services: Services) -> dict[str, Any]:
    active = await service.list_rollbacks(services.store, active=True)
    if not active:
        return {"response_type": "ephemeral", "text": "No rollback is in progress."}
    lines = []
    for r in active:
        d = service.data_of(r)
        lines.append(
            f"• {code(r.id)} {code(d.target)} — *{r.state}* for "
            f"{msg.duration(now() - r.created_at)}"
            f"{', step ' + escape(d.current_step) if d.current_step else ''} "
            f"(requested by <@{d.requester}>) {link(d.channel, d.thread_ts)}"
        )
    return {"response_type": "ephemeral", "text": "*Rollbacks in progress*\n" + "\n".join(lines)}


async def history_message(services: Services, target: str | None) -> dict[str, Any]:
    records = await service.list_rollbacks(services.store, target=target, limit=20)
    if not records:
        return {"response_type": "ephemeral", "text": "No rollbacks recorded yet."}
    lines = []
    durations: dict[str, list[float]] = {}
    for r in records:
        d = service.data_of(r)
        took = (d.finished_at - d.started_at) if d.finished_at and d.started_at else None
        if took is not None and r.state == State.SUCCEEDED:
            durations.setdefault(d.playbook, []).append(took)
        lines.append(
            f"• {msg.utc(r.created_at)} {code(r.id)} {code(d.target)} → "
            f"`{escape(d.ref)}` *{r.state}* in {msg.duration(took)}"
        )
    estimates = [
        f"• {escape(p)}: median {msg.duration(statistics.median(v))} over {len(v)} run(s)"
        for p, v in sorted(durations.items())
    ]
    text = "*Rollback history*" + (f" for {code(target)}" if target else "") + "\n"
    text += "\n".join(lines)
    if estimates:
        text += "\n*Rollback time estimates (successful runs)*\n" + "\n".join(estimates)
    return {"response_type": "ephemeral", "text": text}


async def open_rollback_modal(
    services: Services,
    client: Any,
    trigger_id: str,
    user: str,
    origin_channel: str = "",
    prefill: dict[str, str] | None = None,
) -> None:
    from bot.rollback.modal import rollback_view

    await client.views_open(
        trigger_id=trigger_id, view=rollback_view(services, origin_channel, prefill or {})
    )


class EphemeralReply:
    """A `respond` look-alike for view submissions, which carry no response_url."""

    def __init__(self, client: Any, channel: str, user: str) -> None:
        self.client, self.channel, self.user = client, channel, user

    async def __call__(self, text: str = "", **_: Any) -> None:
        if self.channel:
            await self.client.chat_postEphemeral(channel=self.channel, user=self.user, text=text)
        else:
            await self.client.chat_postMessage(channel=self.user, text=text)
