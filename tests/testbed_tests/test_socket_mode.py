"""The fake Socket Mode service checked against the real clients: slack_sdk's aiohttp Socket Mode
client under Bolt's AsyncSocketModeHandler, and a bare WebSocket for the wire format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.testbed.slack_api import APP_TOKEN, TOKEN, FakeSlackApi
from tests.testbed.slack_requests import selected, text_input

PING = 0.2  # the client's ping interval: how soon it notices a dead connection


def build_app(fake: FakeSlackApi, seen: list[str], name: str = "app") -> AsyncApp:
    """A Bolt app answering each kind of envelope, noting which app handled what."""
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake.url, token=TOKEN),
        request_verification_enabled=False,
        raise_error_for_unhandled_request=False,
    )

    @app.command("/rollback")
    async def command(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"{name} got {command['text']}", response_type="ephemeral")
        seen.append(f"{name}: command {command['text']}")

    @app.action("rollback_approve")
    async def approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(f"{name}: click {body['actions'][0]['value']}")

    @app.view("rollback_modal")
    async def submit(ack: Any, view: dict[str, Any]) -> None:
        await ack(response_action="errors", errors={"reason": "too short"})
        seen.append(f"{name}: submit {view['state']['values']['reason']['value']['value']}")

    @app.options("target")
    async def suggest(ack: Any, payload: dict[str, Any]) -> None:
        typed = payload["value"]
        await ack(options=[{"text": {"type": "plain_text", "text": typed}, "value": typed}])

    return app


@pytest.fixture
async def connect(
    fake_slack: FakeSlackApi,
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: a Bolt app connected over Socket Mode to the fake; all closed at teardown."""
    handlers: list[AsyncSocketModeHandler] = []

    async def start(seen: list[str], name: str = "app") -> AsyncSocketModeHandler:
        handler = AsyncSocketModeHandler(
            build_app(fake_slack, seen, name), APP_TOKEN, ping_interval=PING
        )
        handlers.append(handler)
        await handler.connect_async()
        return handler

    yield start
    for handler in handlers:
        await handler.close_async()


async def test_connections_open_wants_the_app_level_token(fake_slack: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(base_url=fake_slack.url, token=TOKEN).apps_connections_open(
            app_token=TOKEN
        )
    assert refused.value.response["error"] == "not_allowed_token_type"
    web_client = AsyncWebClient(base_url=fake_slack.url)
    opened = await web_client.apps_connections_open(app_token=APP_TOKEN)
    assert opened["url"].startswith(fake_slack.base.replace("http://", "ws://") + "/link/?ticket=")
    with pytest.raises(SlackApiError) as wrong:  # the app token is no bot token
        await AsyncWebClient(base_url=fake_slack.url, token=APP_TOKEN).auth_test()
    assert wrong.value.response["error"] == "not_allowed_token_type"


async def test_the_wire_format_hello_envelope_ack_and_single_use_tickets(
    fake_slack: FakeSlackApi,
) -> None:
    opened = await AsyncWebClient(base_url=fake_slack.url).apps_connections_open(
        app_token=APP_TOKEN
    )
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(opened["url"]) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            assert hello["connection_info"] == {"app_id": "A0ROLLBOT"}

            envelope = fake_slack.socket.command("/rollback", "api to 3")
            message = await ws.receive_json(timeout=5)
            assert message["envelope_id"] == envelope.envelope_id
            assert message["type"] == "slash_commands" and message["accepts_response_payload"]
            assert message["payload"]["command"] == "/rollback"
            assert message["payload"]["text"] == "api to 3"
            assert "retry_attempt" not in message  # only events and redeliveries carry it

            await ws.send_json({"envelope_id": envelope.envelope_id, "payload": {"text": "ok"}})
            ack = await fake_slack.socket.wait_ack_async(envelope)
            assert ack.payload == {"text": "ok"} and ack.elapsed < 3

            again = fake_slack.socket.redeliver(envelope)
            message = await ws.receive_json(timeout=5)
            assert message["envelope_id"] == envelope.envelope_id
            assert (message["retry_attempt"], message["retry_reason"]) == (1, "timeout")
            assert len(again.deliveries) == 2

            click = fake_slack.socket.click("rollback_approve", "r1", "U0LEAD")
            message = await ws.receive_json(timeout=5)
            assert message["type"] == "interactive" and not message["accepts_response_payload"]
            assert message["payload"]["type"] == "block_actions"
            # a payload where none is accepted, and an ack for an envelope never sent
            await ws.send_json({"envelope_id": click.envelope_id, "payload": {"text": "x"}})
            await ws.send_json({"envelope_id": "no-such-envelope"})
            await fake_slack.socket.wait_ack_async(click)

        async with session.get(opened["url"].replace("ws://", "http://")) as reused:
            assert reused.status in (400, 401)  # a ticket is good for one connection
    await asyncio.sleep(0.1)
    assert len(fake_slack.errors) == 3
    assert "accepts none" in fake_slack.errors[0] and "no known envelope" in fake_slack.errors[1]
    assert "used ticket" in fake_slack.errors[2]


async def test_bolt_over_socket_mode_answers_every_kind_of_envelope(
    fake_slack: FakeSlackApi, connect: Callable[..., Any]
) -> None:
    seen: list[str] = []
    await connect(seen)
    socket = fake_slack.socket
    (connection,) = await socket.wait_connections_async(1)

    ack = await socket.wait_ack_async(socket.command("/rollback", "api"))
    assert ack.payload == {"text": "app got api", "response_type": "ephemeral"}
    assert ack.connection == connection.number and ack.elapsed < 3

    ack = await socket.wait_ack_async(socket.click("rollback_approve", "r1", "U0LEAD"))
    assert ack.payload is None

    values = {"reason": {"value": text_input("5xx")}, "target": {"value": selected("api")}}
    ack = await socket.wait_ack_async(socket.submit("rollback_modal", values, "U0REQ"))
    assert ack.payload == {"response_action": "errors", "errors": {"reason": "too short"}}

    ack = await socket.wait_ack_async(socket.suggest("target", "pay", "U0REQ"))
    assert ack.payload == {
        "options": [{"text": {"type": "plain_text", "text": "pay"}, "value": "pay"}]
    }

    await _until(lambda: len(seen) == 3)
    assert seen == ["app: command api", "app: click r1", "app: submit 5xx"]
    assert fake_slack.errors == []


async def test_refresh_requested_makes_the_app_reconnect(
    fake_slack: FakeSlackApi, connect: Callable[..., Any]
) -> None:
    seen: list[str] = []
    await connect(seen)
    socket = fake_slack.socket
    (first,) = await socket.wait_connections_async(1)

    socket.disconnect(first, "refresh_requested", grace=5)
    await _until(lambda: not first.open and len(socket.open_connections()) == 1)
    (second,) = socket.open_connections()
    assert second.number != first.number and first.closed_by == "app"
    assert len(fake_slack.calls_to("apps.connections.open")) == 2

    envelope = socket.command("/rollback", "after refresh", wait=5)
    ack = await socket.wait_ack_async(envelope)
    assert ack.connection == second.number
    await _until(lambda: seen == ["app: command after refresh"])
    assert fake_slack.errors == []


async def test_a_dropped_connection_is_noticed_and_replaced(
    fake_slack: FakeSlackApi, connect: Callable[..., Any]
) -> None:
    seen: list[str] = []
    await connect(seen)
    socket = fake_slack.socket
    (first,) = await socket.wait_connections_async(1)

    socket.drop(first)
    assert first.closed_by == "dropped"
    await _until(lambda: len(socket.open_connections()) == 1, timeout=10)
    envelope = socket.command("/rollback", "after the drop", wait=5)
    assert envelope.connection != first.number
    await socket.wait_ack_async(envelope)
    await _until(lambda: seen == ["app: command after the drop"])


async def test_with_two_connections_each_envelope_goes_to_one_of_them(
    fake_slack: FakeSlackApi, connect: Callable[..., Any]
) -> None:
    seen: list[str] = []
    await connect(seen, "one")
    await connect(seen, "two")
    socket = fake_slack.socket
    await socket.wait_connections_async(2)

    envelopes = [socket.command("/rollback", f"n{i}") for i in range(6)]
    for envelope in envelopes:
        await socket.wait_ack_async(envelope)
    await _until(lambda: len(seen) == 6)
    assert all(len(e.deliveries) == 1 and len(e.acks) == 1 for e in envelopes)
    assert sorted(s.split(" ")[-1] for s in seen) == [f"n{i}" for i in range(6)]
    assert {s.split(":")[0] for s in seen} == {"one", "two"}  # both connections got work

    chosen = socket.open_connections()[1]
    envelope = socket.command("/rollback", "to the second", connection=chosen)
    assert (await socket.wait_ack_async(envelope)).connection == chosen.number


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
