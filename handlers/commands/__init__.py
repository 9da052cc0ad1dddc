"""Slash-command listeners: /rollback and /diagnose."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import guarded
from handlers.commands.diagnose import diagnose_command
from handlers.commands.rollback import rollback_command


def register(app: AsyncApp) -> None:
    app.command("/rollback")(guarded(rollback_command))
    app.command("/diagnose")(guarded(diagnose_command))
