"""Slack answering 429 or 5xx for a while, and Slack's own retried deliveries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.test_rollback_flow import LEAD, REQUESTER, approval_value, catalog, click
from tests.testbed.aws import Aws, make_ecs_service
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import sign, slash_command


def test_rate_limited_slack_still_gets_every_post_once_in_order(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker")
    bot = rollbot_server(config=catalog(tmp_path, http_backend().url), env=aws.env)
    fake_slack.fail_next("chat.postMessage", 2, status=429, retry_after=1)
    fake_slack.fail_next("files.getUploadURLExternal", 1, status=503)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
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
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker")
    bot = rollbot_server(config=catalog(tmp_path, http_backend().url), env=aws.env)
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
