"""The rollback form's target picker: the targets matching what the person typed so far."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from bot.rollback.modal import target_options
from bot.services import Services


async def target_typed(ack: AsyncAck, payload: dict[str, Any], context: AsyncBoltContext) -> None:
    services: Services = context["services"]
    typed = str(payload.get("value") or "")[:100]
    await ack(options=target_options(services.catalog, typed))
