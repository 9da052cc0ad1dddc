"""Submission of the rollback form: inline errors, or ack and start the request."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from bot import limits
from bot.rollback.modal import parse_submission
from bot.rollback.request import request_rollback
from bot.services import Services


async def rollback_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    services: Services = context["services"]
    parsed = parse_submission(services, view)
    if isinstance(parsed, dict):
        await ack(response_action="errors", errors=parsed)
        return
    user = str((body.get("user") or {}).get("id", ""))
    refusal = await limits.check(services, limits.Limited.ROLLBACK, user, parsed.target)
    if refusal is not None:
        await ack(response_action="errors", errors={"target": refusal.text()})
        await limits.refused(services, refusal)
        return
    await ack()
    await request_rollback(
        services,
        target=parsed.target,
        ref=parsed.ref,
        reason=parsed.reason,
        requester=user,
        origin_channel=parsed.origin_channel,
        respond=services.slack.replier(parsed.origin_channel, user),
        severity=parsed.severity,
        diagnosis_id=parsed.diagnosis,
    )
