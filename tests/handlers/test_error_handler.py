"""A listener that raises: the user gets one readable ephemeral line, the log the traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.services import Services, build_services
from bot.settings import Settings
from bot.slack.app import build_app
from bot.slack.listeners import guarded
from bot.web import build_web_app
from tests.testbed.ports import free_port
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, slash_command

CATALOG = (
    "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n    playbook: ecs-scale\n"
    "    cluster: c\n    service: s\n"
)


async def services_for(fake_slack: FakeSlackApi, tmp_path: Path) -> Services:
    (tmp_path / "rollbot.yml").write_text(CATALOG)
    settings = Settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url,
        rollbot_config=tmp_path / "rollbot.yml",
        rollbot_db=tmp_path / "rollbot.db",
    )
    return await build_services(settings)


async def test_raising_listener_gives_a_short_error(
    fake_slack: FakeSlackApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services = await services_for(fake_slack, tmp_path)
    app = build_app(services)

    async def explode(ack: Any) -> None:
        await ack()
        raise RuntimeError("secret internals: xoxb-not-for-users")

    app.command("/explode")(guarded(explode))

    runner = web.AppRunner(build_web_app(app, services))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        body, headers = slash_command("/explode", "", response_url=fake_slack.response_url())
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
            ) as resp,
        ):
            assert resp.status == 200
        assert time.monotonic() - started < 3
        for _ in range(100):
            if fake_slack.responses:
                break
            await asyncio.sleep(0.05)
        (reply,) = fake_slack.responses
        assert reply["response_type"] == "ephemeral"
        assert "internal error" in reply["text"] and "ref `" in reply["text"]
        assert "xoxb" not in reply["text"] and "Traceback" not in reply["text"]
        logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in logged)
    finally:
        await runner.cleanup()
        await services.close()


async def test_a_listener_failing_before_its_ack_still_answers_the_command(
    fake_slack: FakeSlackApi, tmp_path: Path
) -> None:
    services = await services_for(fake_slack, tmp_path)
    app = build_app(services, process_before_response=True)

    async def explode_early(ack: Any) -> None:
        raise RuntimeError("before the ack")

    app.command("/explode")(guarded(explode_early))
    try:
        body, headers = slash_command("/explode", "", response_url=fake_slack.response_url())
        response = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        assert response.status == 200, response.body  # not Bolt's 404 "unhandled request"
        answer = json.loads(response.body)
        assert answer["response_type"] == "ephemeral" and "internal error" in answer["text"]
        assert fake_slack.responses == []  # said once, in the acknowledgement
    finally:
        await services.close()
