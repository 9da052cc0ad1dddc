"""Submission of the rollback form: inline errors, or ack and start the request."""

from __future__ import annotations

from typing import Any

from bot.rollback import flows
from bot.rollback.modal import parse_submission
from bot.services import Services


async def rollback_submitted(
    ack: Any, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any], client: Any
) -> None:
    services: Services = context["services"]
    parsed = parse_submission(services, view)
    if isinstance(parsed, dict):
        await ack(response_action="errors", errors=parsed)
        return
    await ack()
    user = str((body.get("user") or {}).get("id", ""))
    await flows.request_rollback(
        services,
        client,
        target=parsed.target,
        ref=parsed.ref,
        reason=parsed.reason,
        requester=user,
        origin_channel=parsed.origin_channel,
        respond=flows.EphemeralReply(client, parsed.origin_channel, user),
        severity=parsed.severity,
        diagnosis_id=parsed.diagnosis,
    )
