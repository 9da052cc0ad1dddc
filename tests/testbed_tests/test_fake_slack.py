"""The test bed checked against the real clients: slack_sdk against the fake Slack API, Slack's
signature verifier and a Bolt app against the signed requests, and the bot-process fixture."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import (
    SIGNING_SECRET,
    SlackSender,
    block_action,
    selected,
    sign,
    slash_command,
    text_input,
    view_submission,
)

QUICK = FixedValueRetryIntervalCalculator(0.05)  # 5xx retries without the default backoff
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*api* is rolling back"}}
BUTTONS = {
    "type": "actions",
    "block_id": "decision",
    "elements": [
        {
            "type": "button",
            "action_id": "rollback_approve",
            "text": {"type": "plain_text", "text": "Approve"},
            "value": "r1",
        },
        {
            "type": "button",
            "action_id": "rollback_reject",
            "text": {"type": "plain_text", "text": "Reject"},
            "value": "r1",
        },
    ],
}
MODAL = {
    "type": "modal",
    "callback_id": "rollback_modal",
    "title": {"type": "plain_text", "text": "Rollback"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}


def client(fake: FakeSlackApi, token: str = TOKEN, **options: Any) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.url, token=token, **options)


async def test_post_and_update_are_recorded_and_the_message_is_edited(
    fake_slack: FakeSlackApi,
) -> None:
    web_client = client(fake_slack)
    posted = await web_client.chat_postMessage(
        channel="C0INCIDENTS", text="Approval needed", blocks=[SECTION, BUTTONS]
    )
    assert posted["ok"] and posted["channel"] == "C0INCIDENTS" and posted["ts"]
    await web_client.chat_update(channel="C0INCIDENTS", ts=posted["ts"], text="Approved", blocks=[])

    (post,) = fake_slack.calls_to("chat.postMessage")
    (update,) = fake_slack.calls_to("chat.update")
    assert post.args["blocks"][1]["elements"][0]["value"] == "r1"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.response["ts"] == posted["ts"] and post.at <= update.at
    assert fake_slack.messages[("C0INCIDENTS", posted["ts"])]["text"] == "Approved"
    assert fake_slack.message_of(post)["text"] == "Approved"
    assert fake_slack.errors == []


async def test_a_second_post_gets_a_later_ts(fake_slack: FakeSlackApi) -> None:
    web_client = client(fake_slack)
    first = await web_client.chat_postMessage(channel="C1", text="one")
    second = await web_client.chat_postMessage(channel="C1", text="two", thread_ts=first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert fake_slack.calls_to("chat.postMessage")[1].args["thread_ts"] == first["ts"]


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "section"}],  # neither text nor fields
        [{"type": "no_such_block"}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{**SECTION, "block_id": "same"}, {**SECTION, "block_id": "same"}],
        [SECTION] * 51,
    ],
    ids=["section-without-text", "unknown-type", "text-too-long", "duplicate-id", "51-blocks"],
)
async def test_invalid_blocks_are_refused_and_recorded(
    fake_slack: FakeSlackApi, blocks: list[dict[str, Any]]
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).chat_postMessage(channel="C1", text="x", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"
    assert len(fake_slack.errors) == 1 and "invalid_blocks" in fake_slack.errors[0]
    assert fake_slack.calls_to("chat.postMessage") == []
    assert len(fake_slack.calls_to("chat.postMessage", ok_only=False)) == 1


async def test_missing_channel_or_text_is_an_error(fake_slack: FakeSlackApi) -> None:
    web_client = client(fake_slack)
    with pytest.raises(SlackApiError) as refused:
        await web_client.api_call("chat.postMessage", json={"text": "where to?"})
    assert refused.value.response["error"] == "missing_argument"
    with pytest.raises(SlackApiError) as empty, pytest.warns(UserWarning, match="text"):
        await web_client.chat_postMessage(channel="C1")
    assert empty.value.response["error"] == "no_text"
    assert fake_slack.errors == [
        "chat.postMessage: missing_argument: channel",
        "chat.postMessage: no_text",
    ]


async def test_update_of_a_message_never_posted_is_an_error(fake_slack: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).chat_update(channel="C1", ts="1.000000", text="x")
    assert refused.value.response["error"] == "message_not_found"
    assert "message_not_found" in fake_slack.errors[0]


async def test_wrong_token_and_unknown_method(fake_slack: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack, token="xoxb-wrong").auth_test()
    assert refused.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as unknown:
        await client(fake_slack).api_call("admin.teams.create")
    assert unknown.value.response["error"] == "unknown_method"
    assert len(fake_slack.errors) == 2

    fake_slack.answer("admin.teams.create", {"ok": True, "team": "T1"})
    assert (await client(fake_slack).api_call("admin.teams.create"))["team"] == "T1"
    fake_slack.expected_token = "xoxb-other"
    assert (await client(fake_slack, token="xoxb-other").auth_test())["user_id"] == "U0ROLLBOT"


async def test_a_deliberate_refusal_is_not_an_error(fake_slack: FakeSlackApi) -> None:
    fake_slack.answer("chat.postMessage", {"ok": False, "error": "not_in_channel"})
    with pytest.raises(SlackApiError):
        await client(fake_slack).chat_postMessage(channel="C1", text="x")
    assert fake_slack.errors == []
    assert fake_slack.calls_to("chat.postMessage", ok_only=False)[0].error == "not_in_channel"


async def test_rate_limit_is_waited_out_by_the_sdk_retry_handler(fake_slack: FakeSlackApi) -> None:
    fake_slack.fail_next("chat.postMessage", 1, status=429, retry_after=1)
    web_client = client(fake_slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(1)])
    started = time.monotonic()
    posted = await web_client.chat_postMessage(channel="C1", text="after the wait")
    elapsed = time.monotonic() - started
    assert posted["ok"]
    assert elapsed >= 1.0  # the client honoured Retry-After
    first, second = fake_slack.calls_to("chat.postMessage", ok_only=False)
    assert (first.ok, first.status, second.ok) == (False, 429, True)
    assert fake_slack.errors == []


async def test_server_errors_are_retried(fake_slack: FakeSlackApi) -> None:
    fake_slack.fail_next("chat.update", 2, status=503)
    web_client = client(
        fake_slack, retry_handlers=[AsyncServerErrorRetryHandler(2, interval_calculator=QUICK)]
    )
    posted = await web_client.chat_postMessage(channel="C1", text="x")
    await web_client.chat_update(channel="C1", ts=posted["ts"], text="y")
    assert [c.status for c in fake_slack.calls_to("chat.update", ok_only=False)] == [503, 503, 200]

    fake_slack.fail_next("chat.update", 1, status=500)
    with pytest.raises(SlackApiError):  # no retry handler: the 500 reaches the caller
        await client(fake_slack).chat_update(channel="C1", ts=posted["ts"], text="z")
    assert fake_slack.errors == []


async def test_files_upload_v2_end_to_end(fake_slack: FakeSlackApi) -> None:
    content = "step,outcome\nscale,ok\n" * 500
    web_client = client(fake_slack)
    posted = await web_client.chat_postMessage(channel="C1", text="report follows")
    result = await web_client.files_upload_v2(
        channel="C1",
        thread_ts=posted["ts"],
        filename="incident-api.csv",
        content=content,
        title="Incident report",
        initial_comment="attached",
    )
    assert result["file"]["id"].startswith("F")
    (upload,) = fake_slack.uploaded_files
    assert upload.text == content and upload.filename == "incident-api.csv"
    assert (upload.channel, upload.thread_ts) == ("C1", posted["ts"])
    assert (upload.title, upload.initial_comment) == ("Incident report", "attached")
    assert [c.method for c in fake_slack.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    assert fake_slack.errors == []


async def test_upload_failures_are_retried_and_unsent_files_refused(
    fake_slack: FakeSlackApi,
) -> None:
    fake_slack.fail_next("files.getUploadURLExternal", 1, status=503)
    fake_slack.fail_next("upload", 1, status=500)
    web_client = client(
        fake_slack, retry_handlers=[AsyncServerErrorRetryHandler(1, interval_calculator=QUICK)]
    )
    await web_client.files_upload_v2(channel="C1", filename="a.txt", content="abc")
    assert fake_slack.uploaded_files[0].content == b"abc"

    with pytest.raises(SlackApiError) as refused:
        await web_client.files_completeUploadExternal(files=[{"id": "F0NEVER"}], channel_id="C1")
    assert refused.value.response["error"] == "file_not_found"
    assert len(fake_slack.errors) == 1


async def test_views_open_validates_the_modal(fake_slack: FakeSlackApi) -> None:
    web_client = client(fake_slack)
    opened = await web_client.views_open(trigger_id="1337.42.abcd", view=MODAL)
    assert opened["view"]["id"].startswith("V")
    await web_client.views_update(view_id=opened["view"]["id"], view=MODAL)
    assert fake_slack.calls_to("views.open")[0].args["view"]["callback_id"] == "rollback_modal"
    with pytest.raises(SlackApiError) as refused:
        await web_client.views_open(trigger_id="1337.42.abcd", view={**MODAL, "blocks": []})
    # Slack refuses a view it cannot show with invalid_arguments and a pointer into the view
    assert refused.value.response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert "[json-pointer:/view]" in refused.value.response["response_metadata"]["messages"][0]
    with pytest.raises(SlackApiError):
        # neither view_id nor external_id (slack_sdk's views_update refuses that before sending)
        await web_client.api_call("views.update", json={"view": MODAL})
    assert [e.split(":")[1].strip() for e in fake_slack.errors] == [
        "invalid_arguments",
        "missing_argument",
    ]


async def test_users_groups_channels_and_ephemeral(fake_slack: FakeSlackApi) -> None:
    web_client = client(fake_slack)
    fake_slack.set_usergroup("S0SRE", ["U0SRE1", "U0SRE2"])
    fake_slack.set_user("U0LEAD", real_name="Tech Lead")
    assert (await web_client.usergroups_users_list(usergroup="S0SRE"))["users"] == [
        "U0SRE1",
        "U0SRE2",
    ]
    assert (await web_client.usergroups_users_list(usergroup="S0EMPTY"))["users"] == []
    assert (await web_client.users_info(user="U0LEAD"))["user"]["real_name"] == "Tech Lead"
    assert (await web_client.conversations_info(channel="C0INC"))["channel"]["is_member"]
    await web_client.chat_postEphemeral(channel="C0INC", user="U0LEAD", text="only you")
    assert fake_slack.errors == []
    with pytest.raises(SlackApiError):  # a user id where a group id belongs
        await web_client.usergroups_users_list(usergroup="U0LEAD")
    assert fake_slack.errors == ["usergroups.users.list: no_such_subteam: U0LEAD"]


async def test_response_url_posts_are_recorded_and_checked(fake_slack: FakeSlackApi) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for body in ({"text": "ok", "response_type": "ephemeral"}, {"blocks": [{"type": "bad"}]}):
            async with session.post(fake_slack.response_url(), json=body) as resp:
                assert resp.status == 200
    assert fake_slack.wait_for_response(lambda r: r["text"] == "ok")["response_type"] == "ephemeral"
    assert len(fake_slack.responses) == 2 and len(fake_slack.errors) == 1


def test_wait_for_polls_from_a_sync_test_and_reports_on_timeout(fake_slack: FakeSlackApi) -> None:
    def later() -> None:
        time.sleep(0.2)
        asyncio.run(client(fake_slack).chat_postMessage(channel="C1", text="late"))

    threading.Thread(target=later).start()
    (call,) = fake_slack.wait_for("chat.postMessage", lambda c: c.args["text"] == "late", timeout=5)
    assert call.text == "late"
    with pytest.raises(AssertionError, match=r"2 x chat.postMessage not seen within 0.2s"):
        fake_slack.wait_for("chat.postMessage", count=2, timeout=0.2)


async def test_wait_for_async_lets_the_loop_run(fake_slack: FakeSlackApi) -> None:
    posting = asyncio.create_task(client(fake_slack).chat_postMessage(channel="C1", text="x"))
    (call,) = await fake_slack.wait_for_async("chat.postMessage", timeout=5)
    await posting
    assert call.args["channel"] == "C1"


def test_reset_forgets_everything(fake_slack: FakeSlackApi) -> None:
    asyncio.run(client(fake_slack).chat_postMessage(channel="C1", text="x"))
    fake_slack.fail_next("auth.test", 3)
    fake_slack.set_usergroup("S1", ["U1"])
    fake_slack.expected_token = "xoxb-other"
    fake_slack.reset()
    assert (fake_slack.calls, fake_slack.messages, fake_slack.usergroups) == ([], {}, {})
    assert asyncio.run(client(fake_slack).auth_test())["ok"]  # no failure left, token back


def test_a_private_instance_with_its_own_token() -> None:
    with FakeSlackApi(token="xoxb-private") as fake:
        assert fake.url.startswith("http://127.0.0.1:") and fake.url.endswith("/api/")
        assert asyncio.run(client(fake, token="xoxb-private").auth_test())["ok"]
        assert fake.calls[0].method == "auth.test"


# --------------------------------------------------------------------- signed requests
ALL_KINDS: dict[str, Callable[..., tuple[bytes, dict[str, str]]]] = {
    "command": lambda **kw: slash_command("/rollback", "api to 3 because 5xx", **kw),
    "action": lambda **kw: block_action("rollback_approve", "r1", "U0LEAD", **kw),
    "submission": lambda **kw: view_submission(
        "rollback_modal", {"reason": {"value": text_input("5xx")}}, "U0REQ", **kw
    ),
}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_signatures_pass_slacks_verifier_unless_forged_or_stale(kind: str) -> None:
    build = ALL_KINDS[kind]
    verifier = SignatureVerifier(SIGNING_SECRET)
    body, headers = build()
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(*build(secret="wrong-secret"))
    assert not verifier.is_valid_request(*build(stale=True))
    assert not verifier.is_valid_request(body + b"&x=1", headers)  # tampered body
    body, headers = build(retry_num=2)
    assert verifier.is_valid_request(body, headers) and headers["X-Slack-Retry-Num"] == "2"


def test_payload_shapes_match_slacks() -> None:
    from urllib.parse import parse_qs

    body, _ = block_action(
        "rollback_approve",
        "r1",
        "U0LEAD",
        message_ts="17.000001",
        message={"text": "Approval needed", "blocks": [BUTTONS]},
        block_id="decision",
    )
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "17.000001",
        "channel_id": "C0INCIDENTS",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == "17.000001" and payload["message"]["blocks"] == [BUTTONS]
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "rollback_approve",
        "decision",
        "r1",
    )
    body, _ = view_submission(
        "rollback_modal",
        {"target": {"value": selected("api")}},
        "U0REQ",
        private_metadata='{"channel": "C1"}',
    )
    view = json.loads(parse_qs(body.decode())["payload"][0])["view"]
    assert view["state"]["values"]["target"]["value"]["selected_option"]["value"] == "api"
    assert view["private_metadata"] == '{"channel": "C1"}'
    form = parse_qs(slash_command("/diagnose", "api", response_url="http://r")[0].decode())
    assert (form["command"], form["text"], form["response_url"]) == (
        ["/diagnose"],
        ["api"],
        ["http://r"],
    )


@pytest.fixture
async def bolt_app(fake_slack: FakeSlackApi) -> AsyncIterator[tuple[SlackSender, list[str]]]:
    """A real Bolt app on loopback using the fake Slack API: what Bolt accepts, Slack sends."""
    seen: list[str] = []
    app = AsyncApp(signing_secret=SIGNING_SECRET, client=client(fake_slack))

    @app.command("/rollback")
    async def command(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"got {command['text']}", response_type="ephemeral")
        seen.append(f"command {command['text']}")

    @app.action("rollback_approve")
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.append(f"click {body['actions'][0]['value']} by {body['user']['id']}")
        container = body["container"]
        await client.chat_update(
            channel=container["channel_id"], ts=container["message_ts"], text="Approved"
        )

    @app.view("rollback_modal")
    async def submit(ack: Any, view: dict[str, Any]) -> None:
        await ack(response_action="errors", errors={"reason": "too short"})
        seen.append(f"submit {view['state']['values']['reason']['value']['value']}")

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield SlackSender(f"http://127.0.0.1:{runner.addresses[0][1]}"), seen
    await runner.cleanup()


async def test_bolt_accepts_signed_requests_and_refuses_forged_ones(
    bolt_app: tuple[SlackSender, list[str]], fake_slack: FakeSlackApi
) -> None:
    sender, seen = bolt_app
    reply = await sender.post_async(*slash_command("/rollback", "api"))
    assert (
        reply.status == 200
        and reply.body == {"text": "got api", "response_type": "ephemeral"}
        and reply.elapsed < 3
    )
    status, body = reply  # unpacks like a (status, body) pair
    assert (status, body) == (200, {"text": "got api", "response_type": "ephemeral"})

    posted = await client(fake_slack).chat_postMessage(channel="C0INC", text="Approval needed")
    click = block_action(
        "rollback_approve", "r1", "U0LEAD", channel_id="C0INC", message_ts=posted["ts"]
    )
    assert (await sender.post_async(*click)).status == 200
    await fake_slack.wait_for_async("chat.update", lambda c: c.args["text"] == "Approved")

    values = {"reason": {"value": text_input("x")}}
    reply = await sender.post_async(*view_submission("rollback_modal", values, "U0REQ"))
    assert reply.json == {"response_action": "errors", "errors": {"reason": "too short"}}

    assert seen == ["command api", "click r1 by U0LEAD", "submit x"]
    for forged in (
        slash_command("/rollback", "api", secret="wrong-secret"),
        slash_command("/rollback", "api", stale=True),
    ):
        assert (await sender.post_async(*forged)).status == 401
    # the blocking client, from a thread so this loop keeps serving the app
    reply = await asyncio.to_thread(sender.post, *slash_command("/rollback", "sync"))
    assert reply.status == 200 and reply.json == {"text": "got sync", "response_type": "ephemeral"}
    again = await asyncio.to_thread(sender.command, "/rollback", "again")
    assert again.body["text"] == "got again"
    assert fake_slack.errors == []


def test_retry_headers_can_be_added_to_an_existing_body() -> None:
    body, _ = slash_command("/rollback", "api")
    headers = sign(body, retry_num=1, retry_reason="http_error")
    assert headers["X-Slack-Retry-Reason"] == "http_error"
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)


# --------------------------------------------------------------------- the bot process
CATALOG = {
    "approvers": ["U0LEAD"],
    "channel": "C0INCIDENTS",
    "targets": {
        "api": {
            "playbook": "ecs-scale",
            "cluster": "c",
            "service": "s",
            "region": "eu-central-1",
        }
    },
}


def test_rollbot_server_replicas_restart_and_teardown(
    rollbot_server: Callable[..., RollbotProcess], fake_slack: FakeSlackApi
) -> None:
    first = rollbot_server(catalog=CATALOG)
    second = rollbot_server(catalog=CATALOG, env={"ROLLBOT_STATUS_INTERVAL": "7"})
    assert first.url != second.url and first.alive and second.alive
    assert second.env["ROLLBOT_STATUS_INTERVAL"] == "7"
    assert first.env["SLACK_API_URL"] == fake_slack.url
    assert first.env["ROLLBOT_DB"] == second.env["ROLLBOT_DB"]  # one shared SQLite file
    status, health = first.healthz()
    assert status == 200 and isinstance(health, dict)

    reply = second.sender.command("/rollback", "help")
    assert reply.status == 200 and "/rollback" in reply.text
    assert second.sender.post(*slash_command("/rollback", "help", secret="nope"))[0] == 401

    url = first.url
    first.restart()
    assert first.url == url and first.alive
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert "restarted by the test" in first.stderr_text()
    assert first.kill() is not None and not first.alive


def test_rollbot_server_that_cannot_start_shows_its_stderr(
    rollbot_server: Callable[..., RollbotProcess], tmp_path: Path
) -> None:
    broken = {**CATALOG, "targets": {"api": {"playbook": "ecs-scale", "no_such_key": 1}}}
    with pytest.raises(AssertionError, match=r"(?s)exited with .*--- stderr ---\n.+"):
        rollbot_server(catalog=broken, timeout=15)
