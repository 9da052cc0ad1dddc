"""/diagnose TARGET: ack at once, then capture evidence and post the verdict."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from bot import limits
from bot import slash as cmd
from bot.diagnose import flows
from bot.services import Services
from handlers.commands.rollback import unknown_target


async def diagnose_command(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    services: Services = context["services"]
    try:
        target = cmd.parse_diagnose(command.get("text"))
    except cmd.UsageError as exc:
        await ack(response_type="ephemeral", text=str(exc))
        return
    if target is None:
        await ack(response_type="ephemeral", text=cmd.DIAGNOSE_USAGE)
        return
    if target not in services.catalog.targets:
        await ack(response_type="ephemeral", text=unknown_target(target, services))
        return
    user = command.get("user_id", "")
    refusal = await limits.check(services, limits.Limited.DIAGNOSE, user, target)
    if refusal is not None:
        await ack(response_type="ephemeral", text=refusal.text())
        await limits.refused(services, refusal)
        return
    await ack(response_type="ephemeral", text=f"Diagnosing `{target}`…")
    await flows.diagnose(
        services,
        target=target,
        user=user,
        channel=command.get("channel_id", ""),
        respond=respond,
    )
