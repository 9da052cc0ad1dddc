"""Answers to a request's response_url over the process's one HTTP session: Bolt's own respond
opens a new connection (with Slack, a new TLS handshake) for every answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

# Whatever answers the person asking, called like Bolt's `respond`: Bolt's own, PooledRespond,
# or a notifier's replier for requests without a response_url.
Reply = Callable[..., Awaitable[Any]]


class PooledRespond:
    """Called like Bolt's `respond`: text and message fields, or a whole message as a dict."""

    def __init__(self, response_url: str, session: aiohttp.ClientSession) -> None:
        self.response_url = response_url
        self.session = session

    async def __call__(self, text: str | dict[str, Any] = "", **fields: Any) -> WebhookResponse:
        client = AsyncWebhookClient(url=self.response_url, session=self.session)
        if isinstance(text, dict):
            return await client.send_dict(text)
        return await client.send(text=text, **fields)
