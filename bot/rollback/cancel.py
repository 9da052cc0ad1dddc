"""`/rollback cancel ID`: the requester or an approver of the target stops a rollback that has
not started running yet; anyone else is refused (and audited)."""

from __future__ import annotations

from typing import Any

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.announce import announce_state
from bot.rollback.decision import is_approver
from bot.rollback.models import Act, JobKind, RollbackData, State
from bot.services import Services
from bot.slack.text import code, escape
from bot.store.audit import audit
from bot.store.base import now


async def cancel(services: Services, rollback_id: str, user: str) -> dict[str, Any]:
    """Cancel it if nothing ran yet; returns the ephemeral answer for the person asking."""
    record = await services.store.get(rollback_id)
    if record is None or record.kind != "rollback":
        return {"response_type": "ephemeral", "text": f"No rollback {code(rollback_id)}."}
    data = records.data_of(record)
    if not await _may_cancel(services, data, user):
        why = "neither the requester nor an approver of the target"
        await audit(services.store, user, "rollback.cancel_refused", rollback_id, why=why)
        return {
            "response_type": "ephemeral",
            "text": f"Only the requester (<@{data.requester}>) or an approver of "
            f"{code(data.target)} can cancel rollback {code(rollback_id)}.",
        }
    moved = await records.apply(services.store, rollback_id, Act.CANCEL, user, finished_at=now())
    if moved is None:
        current = await services.store.get(rollback_id) or record
        why = f"rollback is {current.state}"
        await audit(services.store, user, "rollback.cancel_refused", rollback_id, why=why)
        ran = ", ".join(escape(s["step_id"]) for s in current.data.get("steps", []))
        return {
            "response_type": "ephemeral",
            "text": f"Rollback {code(rollback_id)} is {current.state} and can no longer be "
            f"cancelled. Steps already run: {ran or 'nothing yet'}.",
        }
    await records.release_target(services.store, data.target, rollback_id)
    for kind in (JobKind.EXECUTE, JobKind.APPROVAL):
        await services.store.cancel_job(f"{kind}:{rollback_id}")
    data = records.data_of(moved)
    for ts in (data.approval_ts, data.confirm_ts):
        if ts:
            blocks = msg.decided_blocks(data, State.CANCELLED, user)
            await services.slack.update(data.channel, ts, "Rollback cancelled", blocks)
    if data.thread_ts:
        await services.slack.post(
            data.channel,
            f":heavy_minus_sign: Rollback `{rollback_id}` cancelled by <@{user}> "
            "before anything ran.",
            thread_ts=data.thread_ts,
            subject=rollback_id,
            durable=True,
        )
    await announce_state(services, rollback_id)
    return {"response_type": "ephemeral", "text": f"Rollback {code(rollback_id)} cancelled."}


async def _may_cancel(services: Services, data: RollbackData, user: str) -> bool:
    if user == data.requester:
        return True
    tgt = services.catalog.targets.get(data.target)
    return tgt is not None and await is_approver(services.slack, user, tgt.approvers)
