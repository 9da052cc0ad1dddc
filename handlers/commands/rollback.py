"""/rollback: parse, ack within Slack's 3 seconds, hand the work to the rollback flows."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from bot import limits
from bot import slash as cmd
from bot.rollback.cancel import cancel
from bot.rollback.modal import open_rollback_modal
from bot.rollback.queries import history_message, status_message
from bot.rollback.request import request_rollback
from bot.services import Services
from bot.slack.text import code


def unknown_target(name: str, services: Services) -> str:
    known = ", ".join(code(n) for n in services.catalog.names()) or "none configured"
    return f"I don't know the target {code(name)}. Known targets: {known}."


async def rollback_command(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    services: Services = context["services"]
    try:
        parsed = cmd.parse_rollback(command.get("text"))
    except cmd.UsageError as exc:
        await ack(response_type="ephemeral", text=str(exc))
        return
    user = command.get("user_id", "")
    if await over_limit(ack, services, parsed, user):
        return
    match parsed:
        case cmd.Help():
            await ack(response_type="ephemeral", text=cmd.ROLLBACK_USAGE)
        case cmd.StartRollback(target=name) if name not in services.catalog.targets:
            await ack(response_type="ephemeral", text=unknown_target(name, services))
        case cmd.History(target=name) if name and name not in services.catalog.targets:
            await ack(response_type="ephemeral", text=unknown_target(name, services))
        case cmd.OpenModal():
            await ack()
            await open_rollback_modal(
                services, command["trigger_id"], command.get("channel_id", "")
            )
        case cmd.Status():
            await ack()
            await respond(**await status_message(services))
        case cmd.History(target=name):
            await ack()
            await respond(**await history_message(services, name))
        case cmd.Cancel(rollback_id=rid):
            await ack()
            await respond(**await cancel(services, rid, user))
        case cmd.StartRollback() as request:
            await ack(
                response_type="ephemeral",
                text=f"Rollback of {code(request.target)} requested: "
                "capturing diagnostics before anything changes…",
            )
            await request_rollback(
                services,
                target=request.target,
                ref=request.ref,
                reason=request.reason,
                requester=user,
                origin_channel=command.get("channel_id", ""),
                respond=respond,
            )
        case cmd.Maintenance() as request:
            await maintenance(ack, request, respond, services, user, command)


async def over_limit(ack: AsyncAck, services: Services, parsed: object, user: str) -> bool:
    """Refuse (ack, audit) a rollback request or cancel beyond its rate limit; True if so."""
    targets = services.catalog.targets
    match parsed:
        case cmd.StartRollback(target=name) | cmd.Maintenance(target=name) if name in targets:
            act, subject = limits.Limited.ROLLBACK, name
        case cmd.Cancel(rollback_id=rid):
            act, subject = limits.Limited.CANCEL, rid
        case _:
            return False
    refusal = await limits.check(services, act, user, subject)
    if refusal is None:
        return False
    await ack(response_type="ephemeral", text=refusal.text())
    await limits.refused(services, refusal)
    return True


async def maintenance(
    ack: AsyncAck,
    request: cmd.Maintenance,
    respond: AsyncRespond,
    services: Services,
    user: str,
    command: dict[str, Any],
) -> None:
    """`/rollback maintenance TARGET on|off`: requests the target's maintenance playbook."""
    mode = "on" if request.on else "off"
    if request.target not in services.catalog.targets:
        await ack(response_type="ephemeral", text=unknown_target(request.target, services))
        return
    runs = services.catalog.maintenance_target(request.target, request.on)
    if runs is None:
        having = ", ".join(code(n) for n in services.catalog.with_maintenance()) or "none"
        await ack(
            response_type="ephemeral",
            text=f"{code(request.target)} has no maintenance mode in the catalog "
            f"(`maintenance: {{on: …, off: …}}`). Targets with one: {having}.",
        )
        return
    await ack(
        response_type="ephemeral",
        text=f"Maintenance mode {mode} for {code(request.target)} requested ({code(runs)}): "
        "capturing diagnostics before anything changes…",
    )
    await request_rollback(
        services,
        target=runs,
        ref="previous",
        reason=request.reason or f"maintenance mode {mode} for {request.target}",
        requester=user,
        origin_channel=command.get("channel_id", ""),
        respond=respond,
    )
