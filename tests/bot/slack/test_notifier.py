"""The Slack notifier against the fake Slack Web API and a real SQLite store: what it sends is
redacted, posts and uploads are audited, durable posts survive an outage, ephemeral answers
fall back to a direct message, and user groups are cached briefly."""

from __future__ import annotations

import json

from slack_sdk.http_retry.builtin_async_handlers import AsyncServerErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import outbox
from bot.slack.notifier import SlackNotifier
from bot.store.base import Store
from tests.testbed.slack_api import TOKEN, FakeSlackApi

SECRET = "xoxb-1234-not-for-channels"


def posted(fake: FakeSlackApi) -> list[str]:
    return [c.text for c in fake.calls_to("chat.postMessage")]


def notifier(store: Store, fake: FakeSlackApi, group_ttl: float = 60.0) -> SlackNotifier:
    retry = AsyncServerErrorRetryHandler(max_retry_count=1)
    client = AsyncWebClient(token=TOKEN, base_url=fake.url, retry_handlers=[retry])
    return SlackNotifier(store, client, group_ttl=group_ttl)


async def test_a_post_is_redacted_and_audited(store: Store, fake_slack: FakeSlackApi) -> None:
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"token={SECRET}"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "a",
                    "text": {"type": "plain_text", "text": "Go"},
                    "value": '{"id": "rb-1"}',
                }
            ],
        },
    ]
    ts = await notifier(store, fake_slack).post(
        "C1", f"leaked {SECRET}", blocks, thread_ts="1.000001", subject="rb-1"
    )

    [call] = fake_slack.calls_to("chat.postMessage")
    assert ts == call.response["ts"] and fake_slack.errors == []
    assert SECRET not in json.dumps(call.args) and "[redacted]" in call.args["text"]
    assert call.args["blocks"][1]["elements"][0]["value"] == '{"id": "rb-1"}'
    assert call.args["thread_ts"] == "1.000001"
    [entry] = await store.audit_since(0, subject="rb-1")
    assert (entry.actor, entry.action) == ("rollbot", "slack.post")
    assert entry.detail == {"channel": "C1", "text": "leaked [redacted]"}


async def test_a_durable_post_waits_out_an_outage_in_order(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    slack = notifier(store, fake_slack)
    fake_slack.fail_next("chat.postMessage", 2, status=503)
    assert await slack.post("C1", "first", subject="rb-1", durable=True) == ""
    fake_slack.heal()
    assert await slack.post("C1", "second", subject="rb-1", durable=True) == ""
    assert posted(fake_slack) == []
    actions = [e.action for e in await store.audit_since(0, subject="rb-1")]
    assert actions == ["slack.queued", "slack.queued"]

    job = await store.get_job(outbox.job_id("C1"))
    assert job is not None
    assert await slack.outbox_drain(lease=5)(job) is None
    assert posted(fake_slack) == ["first", "second"]


async def test_an_uploaded_json_file_stays_json_and_is_redacted(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    content = json.dumps({"env": [{"name": "DB_PASSWORD", "value": "hunter2-pw"}], "n": 1})
    await notifier(store, fake_slack).upload(
        "C1", "1.000001", filename="d.json", content=content, title="D", subject="dg-1"
    )
    [upload] = fake_slack.uploaded_files
    hidden = [{"name": "DB_PASSWORD", "value": "[redacted]"}]
    assert json.loads(upload.text) == {"env": hidden, "n": 1}
    assert (upload.channel, upload.thread_ts, upload.title) == ("C1", "1.000001", "D")
    [entry] = await store.audit_since(0, subject="dg-1")
    assert (entry.action, entry.detail) == ("slack.upload", {"filename": "d.json"})


async def test_ephemeral_answers_fall_back_to_a_direct_message(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    slack = notifier(store, fake_slack)
    await slack.replier("C1", "U1")(text=f"in channel {SECRET}", response_type="ephemeral")
    await slack.replier("", "U2")(text="no channel")

    [ephemeral] = fake_slack.calls_to("chat.postEphemeral")
    assert (ephemeral.args["channel"], ephemeral.args["user"]) == ("C1", "U1")
    assert SECRET not in ephemeral.args["text"]
    [direct] = fake_slack.calls_to("chat.postMessage")
    assert (direct.args["channel"], direct.args["text"]) == ("U2", "no channel")


async def test_a_failed_update_does_not_raise(store: Store, fake_slack: FakeSlackApi) -> None:
    fake_slack.answer("chat.update", {"ok": False, "error": "message_not_found"})
    await notifier(store, fake_slack).update("C1", "1.000001", "refreshed")
    assert len(fake_slack.calls_to("chat.update", ok_only=False)) == 1


async def test_user_groups_are_cached_unless_fresh_members_are_asked_for(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    slack = notifier(store, fake_slack)
    fake_slack.set_usergroup("S1", ["U1"])
    assert await slack.group_members("S1") == {"U1"}
    fake_slack.set_usergroup("S1", ["U1", "U2"])
    assert await slack.group_members("S1") == {"U1"}
    assert await slack.group_members("S1", fresh=True) == {"U1", "U2"}
    assert len(fake_slack.calls_to("usergroups.users.list")) == 2
    expired = notifier(store, fake_slack, group_ttl=0.0)
    await expired.group_members("S1")
    await expired.group_members("S1")
    assert len(fake_slack.calls_to("usergroups.users.list")) == 4


async def test_a_post_that_went_out_is_not_failed_by_its_audit(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    slack = notifier(store, fake_slack)
    await store.close()
    assert await slack.post("C1", "still sent") != ""
    assert posted(fake_slack) == ["still sent"]
