"""Builds the Bolt AsyncApp: Web API client with retries, listeners, one error handler."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.services import Services
from bot.slack.dedupe import make_dedupe
from bot.slack.respond import PooledRespond

log = logging.getLogger(__name__)


class _ClientGivenFilter(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself, then warns at every start that
    the client we give it (built from that very token) wins: true, and nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger(f"slack_bolt.{AsyncApp.__name__}").addFilter(_ClientGivenFilter())


def build_client(services: Services) -> AsyncWebClient:
    """Web API client that waits out 429 Retry-After and retries 5xx and dropped connections."""
    settings = services.settings
    return AsyncWebClient(
        token=settings.secret("slack_bot_token"),
        base_url=settings.slack_api_url,
        session=services.http,  # without it every call opens a new connection
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
        ],
    )


def build_app(
    services: Services, *, socket_mode: bool = False, process_before_response: bool = False
) -> AsyncApp:
    import handlers

    settings = services.settings
    app = AsyncApp(
        client=build_client(services),
        signing_secret=None if socket_mode else settings.secret("slack_signing_secret"),
        request_verification_enabled=not socket_mode,
        raise_error_for_unhandled_request=False,
        process_before_response=process_before_response,
    )

    app.middleware(make_dedupe(services.store))

    @app.middleware
    async def inject_services(context: Any, next: Any) -> None:
        context["services"] = services
        if context.response_url and services.http is not None:
            context["respond"] = PooledRespond(context.response_url, services.http)
        await next()

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        await report_failure(error, body, respond)

    handlers.register(app)
    return app


async def report_failure(
    error: Exception, body: dict[str, Any], respond: Any, ack: Any = None
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
        ack: Any,
        body: dict[str, Any],
        respond: Any,
        context: Any,
        client: Any,
        logger: Any,
        command: Any = None,
        action: Any = None,
        view: Any = None,
        payload: Any = None,
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


def _listener_set(context: Any) -> set[asyncio.Task[Any]]:
    services = context.get("services") if context is not None else None
    return services.listeners if services is not None else set()


def _response_urls(body: dict[str, Any]) -> list[Any]:
    return body.get("response_urls") or []
