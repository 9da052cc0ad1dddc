"""/rollback: parse, ack within Slack's 3 seconds, hand the work to the rollback flows."""

from __future__ import annotations

from typing import Any

from bot import commands as cmd
from bot.rollback import flows
from bot.services import Services
from bot.slack.text import code


def unknown_target(name: str, services: Services) -> str:
    known = ", ".join(code(n) for n in services.catalog.names()) or "none configured"
    return f"I don't know the target {code(name)}. Known targets: {known}."


async def rollback_command(
    ack: Any, command: dict[str, Any], respond: Any, context: dict[str, Any], client: Any
) -> None:
    services: Services = context["services"]
    try:
        parsed = cmd.parse_rollback(command.get("text"))
    except cmd.UsageError as exc:
        await ack(response_type="ephemeral", text=str(exc))
        return
    user = command.get("user_id", "")
    match parsed:
        case cmd.Help():
            await ack(response_type="ephemeral", text=cmd.ROLLBACK_USAGE)
        case cmd.StartRollback(target=name) if name not in services.catalog.targets:
            await ack(response_type="ephemeral", text=unknown_target(name, services))
        case cmd.History(target=name) if name and name not in services.catalog.targets:
            await ack(response_type="ephemeral", text=unknown_target(name, services))
        case cmd.OpenModal():
            await ack()
            await flows.open_rollback_modal(
                services, client, command["trigger_id"], user, command.get("channel_id", "")
            )
        case cmd.Status():
            await ack()
            await respond(**await flows.status_message(services))
        case cmd.History(target=name):
            await ack()
            await respond(**await flows.history_message(services, name))
        case cmd.Cancel(rollback_id=rid):
            await ack()
            await respond(**await flows.cancel(services, client, rid, user))
        case cmd.StartRollback() as request:
            await ack(
                response_type="ephemeral",
                text=f"Rollback of {code(request.target)} requested: "
                "capturing diagnostics before anything changes…",
            )
            await flows.request_rollback(
                services,
                client,
                target=request.target,
                ref=request.ref,
                reason=request.reason,
                requester=user,
                origin_channel=command.get("channel_id", ""),
                respond=respond,
            )
        case cmd.Maintenance() as request:
            await maintenance(ack, request, respond, services, client, user, command)


async def maintenance(
    ack: Any,
    request: cmd.Maintenance,
    respond: Any,
    services: Services,
    client: Any,
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
    await flows.request_rollback(
        services,
        client,
        target=runs,
        ref="previous",
        reason=request.reason or f"maintenance mode {mode} for {request.target}",
        requester=user,
        origin_channel=command.get("channel_id", ""),
        respond=respond,
    )
