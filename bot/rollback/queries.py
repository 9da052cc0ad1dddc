"""`/rollback status` and `/rollback history`: read-only answers from the store."""

from __future__ import annotations

from typing import Any

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.services import Services
from bot.store.base import now


async def status_message(services: Services) -> dict[str, Any]:
    active = await records.list_rollbacks(services.store, active=True)
    listed = [(r, records.data_of(r)) for r in active]
    return {"response_type": "ephemeral", "text": msg.status_list(listed, now())}


async def history_message(services: Services, target: str | None) -> dict[str, Any]:
    found = await records.list_rollbacks(services.store, target=target, limit=20)
    listed = [(r, records.data_of(r)) for r in found]
    return {"response_type": "ephemeral", "text": msg.history(listed, target)}
