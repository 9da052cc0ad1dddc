"""The Home tab opened: publish what is waiting for that person, what runs, what ended."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncBoltContext

from bot.rollback.home import publish_home
from bot.services import Services


async def home_opened(body: dict[str, Any], context: AsyncBoltContext) -> None:
    # Events are acknowledged by Bolt before the listener runs; only the Home tab is ours.
    event = body.get("event") or {}
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    services: Services = context["services"]
    await publish_home(services, str(event["user"]))
