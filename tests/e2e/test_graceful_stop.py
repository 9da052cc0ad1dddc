"""SIGTERM drains: a request already acknowledged is finished before the bot exits, and a
playbook still running is handed back so another replica resumes it at once."""

from __future__ import annotations

import json
import signal
import time

from tests.e2e.helpers import (
    LEAD,
    REQUESTER,
    ApiTestBed,
    approval_value,
    click,
    is_completion,
    read_journal,
    record_state,
    request_rollback,
)
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command


def test_sigterm_finishes_an_acknowledged_request_before_exiting(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    health = api_bed.health
    health.delay = 0.7  # the diagnostics take a few seconds after the ack
    leaving, staying = api_bed.start_bot(), api_bed.start_bot()
    status, _ = leaving.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    assert status == 200
    assert fake_slack.calls_to("chat.postMessage") == []  # still capturing diagnostics
    assert leaving.kill(signal.SIGTERM, timeout=30) == 0

    # everything the request started was done before the process left
    value = approval_value(fake_slack)
    assert "listener(s) still running" not in leaving.stderr_text()
    rollback_id = json.loads(value)["id"]
    assert record_state(api_bed.db, rollback_id) == "awaiting_approval"
    health.delay = 0
    click(staying, "rollback_approve", value, LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)


def test_sigterm_hands_a_running_playbook_to_another_replica_at_once(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    health = api_bed.health
    # a long lease: the survivor must not be waiting for the leaver's claim to lapse
    env = {"ROLLBOT_LEASE_SECONDS": "60", "ROLLBOT_DRAIN_SECONDS": "1"}
    first = api_bed.start_bot(env=env)
    value = request_rollback(first, fake_slack, "api")
    health.status = 503  # the playbook stays in its verification step
    click(first, "rollback_approve", value, LEAD)
    second = api_bed.start_bot(env=env)  # started after the first claimed the job
    db = api_bed.db
    deadline = time.monotonic() + 20
    while "health" not in [e.step_id for e in read_journal(db) if e.event == "start"]:
        assert time.monotonic() < deadline, "the playbook never reached its health check"
        time.sleep(0.1)

    stopped = time.time()
    assert first.kill(signal.SIGTERM, timeout=15) == 0
    assert "handing job rollback.execute" in first.stderr_text()
    resumed = fake_slack.wait_for(
        "chat.postMessage", lambda c: "resumed by replica" in c.args["text"], timeout=15
    )[0]
    assert resumed.at - stopped < 15  # far inside the 60 s lease: handed back, not lapsed
    health.status = 200
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)
    assert record_state(db, json.loads(value)["id"]) == "succeeded"
    starts = [e.step_id for e in read_journal(db) if e.event == "start"]
    assert starts.count("update") == 1 and starts.count("health") == 2
    assert second.alive
