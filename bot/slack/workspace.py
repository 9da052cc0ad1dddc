"""Only the installation's own workspace is served: every request, click and form submission
from another team or enterprise is refused (and audited) before any listener sees it.

The installation's team and enterprise come from `auth.test`, which Bolt calls once and caches
(its authorization middleware runs before ours); `ROLLBOT_ALLOWED_TEAMS` lists the teams of an
org-wide install."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.store.audit import audit
from bot.store.base import Store


def foreign(
    team: str | None,
    enterprise: str | None,
    own_team: str | None,
    own_enterprise: str | None,
    allowed_teams: frozenset[str],
) -> str:
    """Why a request from `team`/`enterprise` is not ours to serve; "" when it is."""
    if (enterprise or None) != (own_enterprise or None):
        return f"enterprise {enterprise or 'none'} is not this installation's"
    served = allowed_teams or frozenset({own_team} if own_team else ())
    if not team or team not in served:
        return f"team {team or 'none'} is not served by this installation"
    return ""


def make_workspace_guard(store: Store, allowed_teams: frozenset[str]) -> Any:
    async def workspace_guard(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> Any:
        context = req.context
        own = context.authorize_result
        why = foreign(
            context.team_id,
            context.enterprise_id,
            own.team_id if own else None,
            own.enterprise_id if own else None,
            allowed_teams,
        )
        if not why:
            return await next()
        kind = str(req.body.get("type") or ("command" if "command" in req.body else "unknown"))
        actor = context.user_id or "unknown"
        await audit(
            store,
            actor,
            "slack.foreign_team_refused",
            str(context.team_id),
            why=why,
            kind=kind,
            enterprise=str(context.enterprise_id or ""),
        )
        if kind == "command":
            text = "This Rollbot serves another workspace; nothing was done."
            body = json.dumps({"response_type": "ephemeral", "text": text})
            return BoltResponse(status=200, body=body, headers={"content-type": "application/json"})
        return BoltResponse(status=200, body="")

    return workspace_guard
