"""Channels the bot cannot reach: an incident channel it was not invited to (it joins, or posts
the diagnostics as text when it may not), and a form submitted from a private channel it is not
in (the requester is told by DM). The rollback never stops after its announcement."""

from __future__ import annotations

import json

from tests.e2e.helpers import LEAD, REQUESTER, ApiTestBed, approval_value, click, has_ended
from tests.testbed.slack_api import Call, FakeSlackApi
from tests.testbed.slack_requests import selected, text_input, view_submission

PRIVATE = "G0PRIVATE"


def submit_form(bot: object, origin: str) -> None:
    state = {
        "target": {"value": selected("api")},
        "ref": {"value": text_input("previous")},
        "reason": {"value": text_input("5xx after deploy")},
        "severity": {"value": selected("high")},
    }
    meta = json.dumps({"channel": origin, "diagnosis": ""})
    reply = bot.sender.post(  # type: ignore[attr-defined]
        *view_submission("rollback_modal", state, REQUESTER, private_metadata=meta)
    )
    assert reply.status == 200 and not reply.text


def is_dm_to_requester(call: Call) -> bool:
    return call.response.get("channel") == "D0REQUESTER"


def test_channel_not_joinable_and_form_from_a_private_channel(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    fake_slack.bot_not_in("C0INCIDENTS", can_join=False)
    fake_slack.bot_not_in(PRIVATE, private=True)
    bot = api_bed.start_bot()
    submit_form(bot, PRIVATE)

    approval = fake_slack.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"], timeout=30
    )[0]
    # the diagnostics could not be attached: they are in the thread as text, saying so
    (diag,) = fake_slack.wait_for(
        "chat.postMessage", lambda c: "could not be attached" in c.args["text"]
    )
    assert diag.args["thread_ts"] == approval.args["thread_ts"]
    assert "not_in_channel" in diag.args["text"]
    assert "Diagnosis of api" in json.dumps(diag.args["blocks"])
    assert [u.filename for u in fake_slack.uploaded_files] == []
    assert [c.error for c in fake_slack.calls_to("conversations.join", ok_only=False)] == [
        "missing_scope"
    ]
    # the requester is told by DM, as the ephemeral answer cannot reach the private channel
    (dm,) = fake_slack.wait_for("chat.postMessage", is_dm_to_requester)
    assert "waiting for approval" in dm.args["text"]
    ephemerals = fake_slack.calls_to("chat.postEphemeral", ok_only=False)
    assert [c.error for c in ephemerals] == ["channel_not_found"]
    posts = " ".join(fake_slack.texts())
    assert "could not be prepared" not in posts

    # approved, it runs to the end; the incident report arrives as text too
    value = approval.args["blocks"][-1]["elements"][0]["value"]
    api_bed.health.status = 200
    assert click(bot, "rollback_approve", value, LEAD, approval.response["ts"])[0] == 200
    fake_slack.wait_for("chat.postMessage", has_ended, timeout=40)
    fake_slack.wait_for(
        "chat.postMessage",
        lambda c: "Incident report" in c.args["text"] and "could not be attached" in c.args["text"],
        timeout=20,
    )
    assert fake_slack.errors == []


def test_a_public_channel_the_bot_was_not_invited_to_is_joined_for_files(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    fake_slack.bot_not_in("C0INCIDENTS")
    bot = api_bed.start_bot()
    bot.sender.command("/rollback", "api because 5xx", user_id=REQUESTER)
    approval_value(fake_slack)
    assert fake_slack.joined == ["C0INCIDENTS"]
    (diag,) = [u for u in fake_slack.uploaded_files if u.filename.startswith("diagnostics-")]
    assert diag.channel == "C0INCIDENTS"
    refused = fake_slack.calls_to("files.completeUploadExternal", ok_only=False)
    assert [c.error for c in refused] == ["not_in_channel", ""]
    assert fake_slack.errors == []
