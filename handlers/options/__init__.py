"""Options listeners (type-ahead of external selects)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.ids import ActionId
from bot.slack.listeners import guarded
from handlers.options.rollback import target_typed


def register(app: AsyncApp) -> None:
    app.options(ActionId.TARGET_SEARCH.value)(guarded(target_typed))
