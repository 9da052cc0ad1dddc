"""Block-action listeners (buttons)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.rollback.models import ActionId
from handlers.actions.rollback import (
    approve_clicked,
    further_clicked,
    open_from_diagnosis,
    reject_clicked,
)


def register(app: AsyncApp) -> None:
    app.action(ActionId.APPROVE.value)(approve_clicked)
    app.action(ActionId.REJECT.value)(reject_clicked)
    app.action(ActionId.RETRY_FURTHER.value)(further_clicked)
    app.action(ActionId.OPEN_FROM_DIAGNOSIS.value)(open_from_diagnosis)
