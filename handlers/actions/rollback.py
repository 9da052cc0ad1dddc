"""Approve / Reject and the follow-up buttons of rollback and diagnosis messages."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from bot.rollback.decision import decide
from bot.rollback.modal import open_further_modal, open_rollback_modal
from bot.rollback.models import Act
from bot.services import Services


def action_value(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON value of the clicked button; {} when it is missing or forged into garbage."""
    actions = body.get("actions") or [{}]
    try:
        value = json.loads(actions[0].get("value") or "{}")
    except (ValueError, TypeError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))


async def _decide(
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
    act: Act,
) -> None:
    await ack()
    services: Services = context["services"]
    value = action_value(body)
    rollback_id = str(value.get("id", ""))
    ts = _bound_ts(body, value)
    if (body.get("container") or {}).get("type") == "view":
        # a Home click has no response_url: answers go to the person directly
        respond = services.slack.replier("", _user(body))  # type: ignore[assignment]
    await decide(services, rollback_id, _user(body), act, respond, message_ts=ts)


def _bound_ts(body: dict[str, Any], value: dict[str, Any]) -> str:
    """The approval message a click is bound to: the message holding the button, or for a
    button on the Home tab (which only the app publishes) the message it mirrors; decide()
    checks it is the rollback's current approval or confirmation message either way."""
    container = body.get("container") or {}
    if container.get("type") == "view" and (body.get("view") or {}).get("type") == "home":
        return str(value.get("ts", ""))[:32]
    return str(container.get("message_ts", ""))


async def approve_clicked(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await _decide(ack, body, respond, context, Act.APPROVE)


async def confirm_clicked(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """The second click a dangerous playbook needs, on its own message; same checks as Approve."""
    await _decide(ack, body, respond, context, Act.CONFIRM)


async def reject_clicked(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await _decide(ack, body, respond, context, Act.REJECT)


async def further_clicked(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
    """After a failure: open the form pre-filled so the user picks an older ref."""
    await ack()
    services: Services = context["services"]
    rollback_id = str(action_value(body).get("id", ""))[:64]
    channel = str((body.get("channel") or {}).get("id", ""))
    await open_further_modal(services, body["trigger_id"], channel, rollback_id)


async def open_from_diagnosis(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    """The `Roll back` button under a diagnosis: the form, pre-filled, diagnosis attached."""
    await ack()
    services: Services = context["services"]
    value = action_value(body)
    prefill = {
        "target": str(value.get("target", ""))[:64],
        "diagnosis": str(value.get("diagnosis", ""))[:64],
        "reason": str(value.get("reason", ""))[:300],
    }
    channel = str((body.get("channel") or {}).get("id", ""))
    await open_rollback_modal(services, body["trigger_id"], channel, prefill)
