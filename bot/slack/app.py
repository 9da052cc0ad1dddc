"""Builds the Bolt AsyncApp: Web API client with retries, the notifier, one error handler.

The listeners are wired on by `handlers.register(app)`, which imports this package, never the
reverse."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack.dedupe import make_dedupe
from bot.slack.listeners import report_failure
from bot.slack.notifier import SlackNotifier
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
    """The app with its middleware and error handler; its client becomes the services' notifier."""
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
    async def inject_services(
        context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> None:
        context["services"] = services
        if context.response_url and services.http is not None:
            context["respond"] = PooledRespond(context.response_url, services.http)
        await next()

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        await report_failure(error, body, respond)

    services.bind_slack(SlackNotifier(services.store, app.client))
    return app
