"""Block-action listeners (buttons)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.ids import ActionId
from bot.slack.listeners import guarded
from handlers.actions.rollback import (
    approve_clicked,
    confirm_clicked,
    further_clicked,
    open_from_diagnosis,
    reject_clicked,
)


def register(app: AsyncApp) -> None:
    app.action(ActionId.APPROVE.value)(guarded(approve_clicked))
    app.action(ActionId.REJECT.value)(guarded(reject_clicked))
    app.action(ActionId.CONFIRM.value)(guarded(confirm_clicked))
    app.action(ActionId.RETRY_FURTHER.value)(guarded(further_clicked))
    app.action(ActionId.OPEN_FROM_DIAGNOSIS.value)(guarded(open_from_diagnosis))
