"""Slack answering 429 or 5xx for a while, and Slack's own retried deliveries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.e2e.helpers import (
    LEAD,
    REQUESTER,
    ApiTestBed,
    approval_value,
    audit_actions,
    click,
    is_completion,
    record_state,
    request_rollback,
)
from tests.testbed.ports import wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import sign, slash_command


def test_rate_limited_slack_still_gets_every_post_once_in_order(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    fake_slack.fail_next("chat.postMessage", 2, status=429, retry_after=1)
    fake_slack.fail_next("files.getUploadURLExternal", 1, status=503)
    value = request_rollback(bot, fake_slack, "api")
    fake_slack.fail_next("chat.postMessage", 2, status=429, retry_after=1)
    fake_slack.fail_next("chat.update", 1, status=500)
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "ROLLBACK COMPLETE" in c.args["text"], timeout=40
    )
    texts = [c.args["text"].split("\n")[0] for c in fake_slack.calls_to("chat.postMessage")]
    heads = [t for t in texts if "Status update" not in t]
    assert heads[0].startswith(":rotating_light: *ROLLBACK REQUESTED")
    assert heads[1].startswith("Approval needed")
    assert heads[2].startswith("Progress of")
    assert heads[-1].startswith(":white_check_mark: *ROLLBACK COMPLETE")
    assert len(heads) == len(set(heads)) == 4
    refused = [c for c in fake_slack.calls_to("chat.postMessage", ok_only=False) if not c.ok]
    assert len(refused) == 4  # the injected 429s were really hit, then retried
    assert fake_slack.errors == []


def test_retried_delivery_of_a_command_is_answered_once(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    body, headers = slash_command("/rollback", "api because retried", user_id=REQUESTER)
    assert bot.sender.post(body, headers)[0] == 200
    retried = sign(body, retry_num=1)  # Slack's redelivery: the same body, a retry header
    status, answer = bot.sender.post(body, retried)
    assert status == 200 and not answer
    approval_value(fake_slack)
    requested = [
        c for c in fake_slack.calls_to("chat.postMessage") if "ROLLBACK REQUESTED" in c.args["text"]
    ]
    assert len(requested) == 1
    assert json.dumps(requested[0].args).count("retried") == 1


def test_posts_slack_keeps_refusing_wait_in_the_outbox_and_arrive_in_order_after_a_crash(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api because outage")
    rollback_id = json.loads(value)["id"]
    # Slack is down for longer than slack_sdk's retries last
    fake_slack.fail_next("chat.postMessage", 1000, status=503)
    fake_slack.fail_next("files.getUploadURLExternal", 1000, status=503)
    click(bot, "rollback_approve", value, LEAD)

    db = api_bed.db
    wait_until(lambda: record_state(db, rollback_id) == "succeeded", 60, "the rollback")
    wait_until(lambda: len(outbox(db)) == 3, 30, "3 queued calls")  # progress, end, report
    methods = [m for m, _ in outbox(db)]
    assert methods == ["chat_postMessage", "chat_postMessage", "files_upload_v2"]
    assert not [c for c in fake_slack.calls_to("chat.postMessage") if is_completion(c)]

    # the bot dies with the queue full; Slack recovers; the restarted bot delivers it
    bot.kill()
    fake_slack.heal()
    bot.start()
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)[0]
    report = fake_slack.wait_for(
        "files.completeUploadExternal", lambda c: True, count=2, timeout=30
    )[1]
    wait_until(lambda: outbox(db) == [], 10, "an empty outbox")
    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    after = posts[posts.index("Approval needed for rollback of api") + 1 :]
    assert len(after) == 2
    assert after[0] == "Progress of api" and after[1].startswith(
        ":white_check_mark: *ROLLBACK COMPLETE"
    )
    assert done.time < report.time
    assert report.args["thread_ts"] == done.args["thread_ts"]
    actions = [a for _, a in audit_actions(db)]
    assert actions.count("slack.queued") == 3 and actions.count("slack.delivered") == 3
    assert fake_slack.errors == []


def outbox(db: Path) -> list[tuple[str, str]]:
    rows = sqlite3.connect(db).execute("SELECT seq, entry FROM outbox ORDER BY seq")
    return [(json.loads(e)["method"], json.loads(e)["kwargs"]["channel"]) for _, e in rows]
