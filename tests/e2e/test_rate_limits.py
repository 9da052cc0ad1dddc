"""Rate limits as people meet them in `rollbot serve`: rollback requests and cancels beyond
their limit are answered "try again in N s" at once, audited, and shared by replicas."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

CATALOG = """\
approvers: [U0LEAD]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
"""


def write_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(CATALOG)
    return path


def refusals(db: Path, expected: int) -> list[tuple[str, str, str]]:
    """The rate-limit refusals on the audit log, once `expected` are there (they are written
    just after the answer)."""
    deadline = time.monotonic() + 10
    while True:
        rows = sqlite3.connect(db).execute(
            "SELECT actor, action, subject FROM audit WHERE action LIKE '%.rate_limited' "
            "ORDER BY seq"
        )
        found = [(a, b, c) for a, b, c in rows]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_cancels_beyond_the_limit_are_refused_across_replicas(
    rollbot_server, tmp_path: Path, fake_slack: FakeSlackApi
) -> None:
    env = {"ROLLBOT_CANCEL_PER_USER": "2"}
    config = write_catalog(tmp_path)
    one, two = rollbot_server(config=config, env=env), rollbot_server(config=config, env=env)
    answers = [
        json.dumps(bot.sender.post(*slash_command("/rollback", f"cancel rb-0000000{i}")).body)
        for i, bot in enumerate([one, two, one, two])
    ]
    assert answers[:2] == ["{}", "{}"], answers  # acknowledged, answered afterwards
    fake_slack.wait_for_response(lambda r: "No rollback `rb-00000001`" in r["text"])
    assert all("try again in" in a and "cancel requests from you" in a for a in answers[2:])
    assert refusals(tmp_path / "rollbot.db", 2) == [
        ("U0REQUESTER", "cancel.rate_limited", "rb-00000002"),
        ("U0REQUESTER", "cancel.rate_limited", "rb-00000003"),
    ]
    # someone else is not held back by it
    other = one.sender.post(*slash_command("/rollback", "cancel rb-00000009", user_id="U0OTHER"))
    assert other.body == {}
    fake_slack.wait_for_response(lambda r: "No rollback `rb-00000009`" in r["text"])


def test_rollback_requests_beyond_the_target_limit_are_refused_at_once(
    rollbot_server, tmp_path: Path
) -> None:
    bot = rollbot_server(config=write_catalog(tmp_path), env={"ROLLBOT_ROLLBACK_PER_TARGET": "1"})
    text = "api to 1 because of load"
    first = bot.sender.post(*slash_command("/rollback", text, user_id="U0A"))
    assert "requested" in json.dumps(first.body)
    for user in ("U0B", "U0C"):
        reply = bot.sender.post(*slash_command("/rollback", text, user_id=user))
        assert reply.elapsed < 3.0
        answer = json.dumps(reply.body)
        assert "try again in" in answer and "rollback requests for `api`" in answer, answer
    assert [r[:2] for r in refusals(tmp_path / "rollbot.db", 2)] == [
        ("U0B", "rollback.rate_limited"),
        ("U0C", "rollback.rate_limited"),
    ]
