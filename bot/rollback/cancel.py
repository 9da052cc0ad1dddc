"""`/rollback cancel ID`: stop a rollback that has not started running yet."""

from __future__ import annotations

from typing import Any

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.announce import announce_state
from bot.rollback.models import CANCELLABLE, JobKind, State
from bot.services import Services
from bot.slack.text import code, escape
from bot.store.base import now


async def cancel(services: Services, rollback_id: str, user: str) -> dict[str, Any]:
    """Cancel it if nothing ran yet; returns the ephemeral answer for the person asking."""
    record = await services.store.get(rollback_id)
    if record is None or record.kind != "rollback":
        return {"response_type": "ephemeral", "text": f"No rollback {code(rollback_id)}."}
    data = records.data_of(record)
    moved = await records.move(
        services.store, rollback_id, CANCELLABLE, State.CANCELLED, user, finished_at=now()
    )
    if moved is None:
        ran = ", ".join(escape(s["step_id"]) for s in record.data.get("steps", [])) or "nothing yet"
        return {
            "response_type": "ephemeral",
            "text": f"Rollback {code(rollback_id)} is {record.state} and can no longer be "
            f"cancelled. Steps already run: {ran}.",
        }
    await records.release_target(services.store, data.target, rollback_id)
    await services.store.cancel_job(f"{JobKind.EXECUTE}:{rollback_id}")
    if data.approval_ts:
        await services.slack.update(
            data.channel,
            data.approval_ts,
            "Rollback cancelled",
            msg.decided_blocks(data, State.CANCELLED, user),
        )
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
