"""View-submission listeners (modals)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.ids import CallbackId
from bot.slack.listeners import guarded
from handlers.views.rollback import rollback_submitted


def register(app: AsyncApp) -> None:
    app.view(CallbackId.ROLLBACK_MODAL.value)(guarded(rollback_submitted))
