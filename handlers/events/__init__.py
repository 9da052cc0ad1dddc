"""Event listeners (Events API subscriptions)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import guarded
from handlers.events.home import home_opened


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(guarded(home_opened))
