"""Answering Slack while the state store is unreachable: every request and click gets one
clear ephemeral line at once (nothing was changed, try again in a minute), and the refusal is
audited once the store is back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.store.audit import audit_entry
from bot.store.outage import HEALTH, STORE_UNREACHABLE, FailureLog, StoreWasUnreachable

FAILURES = FailureLog("listeners")
log = logging.getLogger(__name__)


def request_kind(body: dict[str, Any]) -> str:
    return body.get("type") or ("command" if "command" in body else "unknown")


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(body.get("user_id") or (user.get("id", "") if isinstance(user, dict) else ""))


def _what(body: dict[str, Any]) -> str:
    if "command" in body:
        return f"{body['command']} {body.get('text') or ''}".strip()[:300]
    actions = body.get("actions") or [{}]
    if isinstance(actions[0], dict) and actions[0].get("action_id"):
        return str(actions[0]["action_id"])
    view = body.get("view") or {}
    return str(view.get("callback_id", "")) if isinstance(view, dict) else ""


def note_refusal(body: dict[str, Any], error: BaseException) -> None:
    """Count and log the refusal (one line per interval), and audit it once the store is back."""
    FAILURES.failed(error)
    entry = audit_entry(
        _user(body) or "unknown",
        "request.refused",
        "",
        why="state store unreachable",
        kind=request_kind(body),
        request=_what(body),
    )
    HEALTH.defer(entry)


def _form_answer(body: dict[str, Any]) -> BoltResponse | None:
    """A submitted form stays open with the line under its first field."""
    view = body.get("view") or {}
    values = ((view.get("state") or {}).get("values") or {}) if isinstance(view, dict) else {}
    if not values:
        return None
    note_refusal(body, StoreWasUnreachable(HEALTH.cause))
    answer = {"response_action": "errors", "errors": {next(iter(values)): STORE_UNREACHABLE}}
    return BoltResponse(
        status=200,
        body=json.dumps(answer),
        headers={"content-type": ["application/json;charset=utf-8"]},
    )


async def tell_in_direct_message(context: AsyncBoltContext, body: dict[str, Any]) -> None:
    """For a request with no response_url (a form whose listener acked already)."""
    services = context.get("services")
    user = _user(body)
    if services is None or not user or body.get("response_url") or body.get("response_urls"):
        return
    try:
        await services.slack.ephemeral("", user, STORE_UNREACHABLE)
    except Exception as exc:  # Slack may be failing too; the refusal is audited already
        log.warning("could not tell %s that the state store is unreachable: %s", user, exc)


def make_store_guard() -> Callable[..., Awaitable[Any]]:
    """Middleware: while this process knows the store is down, answer commands and clicks
    with the store-unreachable line instead of running a listener that cannot work."""
    answering: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references

    async def store_guard(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> Any:
        kind = request_kind(body)
        if not HEALTH.down or kind not in ("command", "block_actions", "view_submission"):
            return await next()
        if kind == "view_submission":
            return _form_answer(body) or await next()
        note_refusal(body, StoreWasUnreachable(HEALTH.cause))
        if kind == "command":
            answer = {"response_type": "ephemeral", "text": STORE_UNREACHABLE}
            return BoltResponse(
                status=200,
                body=json.dumps(answer),
                headers={"content-type": ["application/json;charset=utf-8"]},
            )
        respond = context.get("respond")
        if respond is not None:
            task = asyncio.create_task(
                respond(text=STORE_UNREACHABLE, response_type="ephemeral", replace_original=False)
            )
            answering.add(task)
            task.add_done_callback(answering.discard)
        return BoltResponse(status=200, body="")

    return store_guard
