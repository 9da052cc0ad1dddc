"""Channels the bot cannot act in, as the fake Slack answers for them: a public channel it was
not invited to (posts work with chat:write.public, uploads answer not_in_channel, joining
helps), a private channel or someone else's DM (channel_not_found everywhere), and the bot's
own DM with a person, reached by posting to the user id."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.testbed.slack_api import TOKEN, FakeSlackApi


def client(fake: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.url, token=TOKEN)


async def test_public_channel_not_joined_refuses_uploads_until_the_bot_joins(
    fake_slack: FakeSlackApi,
) -> None:
    fake_slack.bot_not_in("C0PUBLIC")
    web_client = client(fake_slack)
    posted = await web_client.chat_postMessage(channel="C0PUBLIC", text="announcement")
    assert posted["ok"]  # chat:write.public: posting needs no membership
    info = await web_client.conversations_info(channel="C0PUBLIC")
    assert info["channel"]["is_member"] is False
    with pytest.raises(SlackApiError) as refused:
        await web_client.files_upload_v2(
            channel="C0PUBLIC", thread_ts=posted["ts"], filename="d.txt", content="evidence"
        )
    assert refused.value.response["error"] == "not_in_channel"
    assert fake_slack.uploaded_files == [] and fake_slack.errors == []

    joined = await web_client.conversations_join(channel="C0PUBLIC")
    assert joined["ok"] and fake_slack.joined == ["C0PUBLIC"]
    assert (await web_client.conversations_info(channel="C0PUBLIC"))["channel"]["is_member"]
    await web_client.files_upload_v2(channel="C0PUBLIC", filename="d.txt", content="evidence")
    assert fake_slack.uploaded_files[0].channel == "C0PUBLIC"
    again = await web_client.conversations_join(channel="C0PUBLIC")
    assert again["warning"] == "already_in_channel"


async def test_a_public_channel_the_bot_may_not_join(fake_slack: FakeSlackApi) -> None:
    fake_slack.bot_not_in("C0PUBLIC", can_join=False)
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).conversations_join(channel="C0PUBLIC")
    assert refused.value.response["error"] == "missing_scope"
    with pytest.raises(SlackApiError) as upload:
        await client(fake_slack).files_upload_v2(channel="C0PUBLIC", filename="a", content="b")
    assert upload.value.response["error"] == "not_in_channel"
    assert fake_slack.errors == []


@pytest.mark.parametrize("channel", ["G0PRIVATE", "D0SOMEONEELSE"])
async def test_private_channels_and_other_peoples_dms_do_not_exist_for_the_bot(
    fake_slack: FakeSlackApi, channel: str
) -> None:
    fake_slack.bot_not_in(channel, private=True)
    web_client = client(fake_slack)
    attempts = [
        web_client.chat_postMessage(channel=channel, text="x"),
        web_client.chat_postEphemeral(channel=channel, user="U0REQ", text="x"),
        web_client.conversations_info(channel=channel),
        web_client.files_upload_v2(channel=channel, filename="a", content="b"),
    ]
    for attempt in attempts:
        with pytest.raises(SlackApiError) as refused:
            await attempt
        assert refused.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as join:
        await web_client.conversations_join(channel=channel)
    assert join.value.response["error"] == "method_not_supported_for_channel_type"
    # other channels are unaffected, and a refusal is the test's choice, not the bot's mistake
    await web_client.chat_postEphemeral(channel="C0OTHER", user="U0REQ", text="x")
    assert fake_slack.errors == []
    refused_calls = [c for c in fake_slack.calls if not c.ok]
    assert {c.error for c in refused_calls} == {
        "channel_not_found",
        "method_not_supported_for_channel_type",
    }


async def test_any_refusal_for_chosen_methods(fake_slack: FakeSlackApi) -> None:
    fake_slack.refuse_in_channel("C0ARCHIVED", "is_archived", ("chat.postMessage",))
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).chat_postMessage(channel="C0ARCHIVED", text="x")
    assert refused.value.response["error"] == "is_archived"
    fake_slack.reset()
    assert (await client(fake_slack).chat_postMessage(channel="C0ARCHIVED", text="x"))["ok"]


async def test_a_post_to_a_user_id_lands_in_the_bots_dm_with_them(
    fake_slack: FakeSlackApi,
) -> None:
    web_client = client(fake_slack)
    posted = await web_client.chat_postMessage(channel="U0REQ", text="your rollback waits")
    assert posted["channel"] == "D0REQ"
    assert fake_slack.messages[("D0REQ", posted["ts"])]["text"] == "your rollback waits"
    opened = await web_client.conversations_open(users="U0REQ")
    assert opened["channel"]["id"] == "D0REQ"
    await web_client.chat_update(channel="D0REQ", ts=posted["ts"], text="approved")
    assert fake_slack.messages[("D0REQ", posted["ts"])]["text"] == "approved"
