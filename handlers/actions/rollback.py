"""Approve / Reject and the follow-up buttons of rollback and diagnosis messages."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.rollback import flows
from bot.rollback.service import audit
from bot.services import Services

_ID = re.compile(r"^rb-[a-z0-9]{4,32}$")


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
    ack: Any,
    body: dict[str, Any],
    respond: Any,
    context: dict[str, Any],
    client: Any,
    approve: bool,
) -> None:
    await ack()
    services: Services = context["services"]
    rollback_id = str(action_value(body).get("id", ""))
    if not _ID.match(rollback_id):
        await audit(services.store, _user(body), "rollback.forged_click", rollback_id[:64])
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text="That button does not carry a rollback I know.",
        )
        return
    message_ts = str((body.get("container") or {}).get("message_ts", ""))
    await flows.decide(
        services, client, rollback_id, _user(body), approve, respond, message_ts=message_ts
    )


async def approve_clicked(
    ack: Any, body: dict[str, Any], respond: Any, context: dict[str, Any], client: Any
) -> None:
    await _decide(ack, body, respond, context, client, approve=True)


async def confirm_clicked(
    ack: Any, body: dict[str, Any], respond: Any, context: dict[str, Any], client: Any
) -> None:
    """The second click a dangerous playbook needs; same checks as Approve."""
    await _decide(ack, body, respond, context, client, approve=True)


async def reject_clicked(
    ack: Any, body: dict[str, Any], respond: Any, context: dict[str, Any], client: Any
) -> None:
    await _decide(ack, body, respond, context, client, approve=False)


async def further_clicked(
    ack: Any, body: dict[str, Any], context: dict[str, Any], client: Any
) -> None:
    """After a failure: open the form pre-filled so the user picks an older ref."""
    await ack()
    services: Services = context["services"]
    record = await services.store.get(str(action_value(body).get("id", ""))[:64])
    prefill = {}
    if record is not None and record.kind == "rollback":
        prefill = {
            "target": record.data.get("target", ""),
            "reason": f"roll back further after {record.id} failed",
        }
    channel = str((body.get("channel") or {}).get("id", ""))
    await flows.open_rollback_modal(
        services, client, body["trigger_id"], _user(body), channel, prefill
    )


async def open_from_diagnosis(
    ack: Any, body: dict[str, Any], context: dict[str, Any], client: Any
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
    await flows.open_rollback_modal(
        services, client, body["trigger_id"], _user(body), channel, prefill
    )
