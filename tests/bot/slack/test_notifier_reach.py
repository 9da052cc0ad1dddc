"""The notifier in channels the bot cannot reach: it joins a public channel to attach a file,
posts the file's text when Slack still refuses it, and answers by DM where an ephemeral
message cannot go."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.notifier import SlackNotifier
from bot.store.base import Store
from tests.testbed.slack_api import TOKEN, FakeSlackApi


def notifier(store: Store, fake: FakeSlackApi) -> SlackNotifier:
    return SlackNotifier(store, AsyncWebClient(token=TOKEN, base_url=fake.url))


async def test_upload_into_a_public_channel_joins_it_first(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.bot_not_in("C0PUB")
    await notifier(store, fake_slack).upload(
        "C0PUB", "1.000001", filename="a.txt", content="evidence", title="A", subject="rb-1"
    )
    assert fake_slack.joined == ["C0PUB"]
    assert [u.channel for u in fake_slack.uploaded_files] == ["C0PUB"]
    actions = [e.action for e in await store.audit_since(0, subject="rb-1")]
    assert "slack.joined" in actions and "slack.upload" in actions


async def test_attach_posts_the_text_when_the_file_is_refused(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.bot_not_in("C0PUB", can_join=False)
    content = "\n".join(f"line {i} " + "x" * 100 for i in range(400))  # ~40 kB
    attached = await notifier(store, fake_slack).attach(
        "C0PUB", "1.000001", filename="a.txt", content=content, title="Report", subject="rb-1"
    )
    assert attached is False and fake_slack.uploaded_files == []
    (post,) = fake_slack.calls_to("chat.postMessage")
    assert "could not be attached" in post.text and "not_in_channel" in post.text
    assert post.args["thread_ts"] == "1.000001"
    assert "more lines — the rest is kept by the bot under rb-1" in str(post.args["blocks"])
    assert fake_slack.errors == []


async def test_an_ephemeral_that_cannot_be_delivered_becomes_a_dm(
    store: Store, fake_slack: FakeSlackApi
) -> None:
    fake_slack.bot_not_in("G0PRIV", private=True)
    await notifier(store, fake_slack).ephemeral("G0PRIV", "U0REQ", "waiting for approval")
    (dm,) = fake_slack.calls_to("chat.postMessage")
    assert dm.args["channel"] == "U0REQ" and dm.response["channel"] == "D0REQ"
    # other refusals are not hidden behind a DM
    fake_slack.answer("chat.postEphemeral", {"ok": False, "error": "invalid_blocks"})
    with pytest.raises(SlackApiError):
        await notifier(store, fake_slack).ephemeral("C1", "U0REQ", "x")
