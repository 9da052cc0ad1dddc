"""What every listener shares: the error report a user sees, and the wrapper that makes sure a
failure after ack() is still answered."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics

log = logging.getLogger(__name__)


async def report_failure(
    error: Exception,
    body: dict[str, Any],
    respond: AsyncRespond | None,
    ack: AsyncAck | None = None,
) -> None:
    """Log the traceback; show the user one short line with a reference to find it: in the
    acknowledgement itself when the listener failed before acking, else in a reply."""
    ref = uuid.uuid4().hex[:8]
    kind = body.get("type") or ("command" if "command" in body else "unknown")
    metrics.listener_errors.labels(kind=kind).inc()
    log.error("listener failed (ref %s)", ref, exc_info=error)
    text = (
        f":warning: Rollbot hit an internal error and did not finish that (ref `{ref}`). "
        "Nothing was changed by this request; the operators can find the details in the log."
    )
    try:
        if ack is not None and getattr(ack, "response", None) is None:
            # Slack shows a command's acknowledgement text; buttons and forms ignore it
            if kind == "command":
                await ack(response_type="ephemeral", text=text)
                return
            await ack()
        if respond is not None and (body.get("response_url") or _response_urls(body)):
            await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:  # Slack itself may be the failure; the log has it already
        log.warning("could not tell the user about error ref %s", ref)


Listener = Callable[..., Awaitable[None]]


def guarded(listener: Listener) -> Listener:
    """Report a failure after ack() ourselves: Bolt would drop the HTTP answer already sent."""
    wanted = set(inspect.signature(listener).parameters)

    async def run_listener(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
        logger: logging.Logger,
        command: dict[str, Any] | None = None,
        action: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        given = {
            "ack": ack,
            "body": body,
            "respond": respond,
            "context": context,
            "client": client,
            "logger": logger,
            "command": command,
            "action": action,
            "view": view,
            "payload": payload,
        }
        inflight = _listener_set(context)
        task = asyncio.current_task()
        if task is not None:
            inflight.add(task)
        try:
            await listener(**{k: v for k, v in given.items() if k in wanted})
        except Exception as error:
            await report_failure(error, body, respond, ack)
        finally:
            inflight.discard(task)  # type: ignore[arg-type]

    run_listener.__name__ = listener.__name__
    run_listener.__doc__ = listener.__doc__
    return run_listener


def _listener_set(context: AsyncBoltContext | None) -> set[asyncio.Task[Any]]:
    services = context.get("services") if context is not None else None
    return services.listeners if services is not None else set()


def _response_urls(body: dict[str, Any]) -> list[Any]:
    return body.get("response_urls") or []
