"""Socket Mode envelopes are de-duplicated by envelope id: each distinct envelope runs once,
a redelivered one (same id, any replica) does not run again. Keyed on the request body, as
over HTTP, every envelope would share one key: Socket Mode requests have no raw body."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.dedupe import make_dedupe
from bot.slack.socket import bolt_request
from bot.store.base import Store
from tests.testbed.slack_api import TOKEN, FakeSlackApi


def app_counting(store: Store, ran: list[str], fake: FakeSlackApi) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake.url, token=TOKEN),
        request_verification_enabled=False,
        raise_error_for_unhandled_request=False,
    )
    app.middleware(make_dedupe(store))

    @app.command("/rollback")
    async def command(ack: Any, command: dict[str, Any]) -> None:
        await ack()
        ran.append(command["text"])

    return app


def envelope(text: str, *, envelope_id: str | None = None, retry: int | None = None) -> Any:
    payload = {"command": "/rollback", "text": text, "user_id": "U0REQ", "channel_id": "C1"}
    return SocketModeRequest(
        type="slash_commands",
        envelope_id=envelope_id or str(uuid.uuid4()),
        payload=payload,
        accepts_response_payload=True,
        retry_attempt=retry,
        retry_reason="timeout" if retry else None,
    )


async def test_distinct_envelopes_all_run(store: Store, fake_slack: FakeSlackApi) -> None:
    ran: list[str] = []
    app = app_counting(store, ran, fake_slack)
    # events carry retry_attempt 0 on a first delivery; Bolt turns it into a retry header
    for text in ("api", "web", "worker"):
        response = await app.async_dispatch(bolt_request(envelope(text, retry=0)))
        assert response.status == 200
    assert ran == ["api", "web", "worker"]


async def test_a_first_delivery_arriving_as_a_retry_still_runs(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    ran: list[str] = []
    app = app_counting(store, ran, fake_slack)
    await app.async_dispatch(bolt_request(envelope("api")))
    # another envelope whose first delivery was lost: Slack sends it again, marked as a retry
    await app.async_dispatch(bolt_request(envelope("web", retry=1)))
    assert ran == ["api", "web"]


async def test_a_redelivered_envelope_runs_once_on_any_replica(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    ran: list[str] = []
    first, second = app_counting(store, ran, fake_slack), app_counting(store, ran, fake_slack)
    original = envelope("api")
    again = envelope("api", envelope_id=original.envelope_id, retry=1)
    results = await asyncio.gather(
        first.async_dispatch(bolt_request(original)),
        second.async_dispatch(bolt_request(again)),
        first.async_dispatch(bolt_request(again)),
    )
    assert [r.status for r in results] == [200, 200, 200]  # every copy is acknowledged
    assert ran == ["api"]
    # the same text in a new envelope is a new request (someone typed it again)
    await second.async_dispatch(bolt_request(envelope("api")))
    assert ran == ["api", "api"]
