"""Socket Mode: Slack's envelopes reach the same Bolt app as HTTP requests do, each carrying
its envelope id so a redelivered envelope is recognised (see dedupe)."""

from __future__ import annotations

from time import time

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

# Where the envelope id travels inside the app: a request header only Socket Mode sets.
ENVELOPE_HEADER = "x-rollbot-envelope-id"


def bolt_request(req: SocketModeRequest) -> AsyncBoltRequest:
    """The Bolt request for one envelope, with the envelope id next to Slack's retry headers."""
    headers = dict(build_headers(req) or {})
    headers[ENVELOPE_HEADER] = req.envelope_id
    return AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=headers)


class EnvelopeSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's aiohttp Socket Mode handler, passing each envelope's id to the app."""

    def __init__(self, app: AsyncApp, app_token: str, ping_interval: float) -> None:
        super().__init__(app, app_token, ping_interval=ping_interval)

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time()
        response = await self.app.async_dispatch(bolt_request(req))
        await send_async_response(client, req, response, started)
