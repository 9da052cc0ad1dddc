"""Status updates at the interval, and a bot killed mid-rollback that resumes after restart."""

from __future__ import annotations

import itertools
import signal
import time

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    REQUESTER,
    SERVICE,
    ApiTestBed,
    click,
    is_completion,
    read_journal,
    record_state,
    request_rollback,
)
from tests.testbed.aws import service_state
from tests.testbed.slack_api import Call, FakeSlackApi
from tests.testbed.slack_requests import slash_command


def is_status(call: Call) -> bool:
    return "Status update" in call.args.get("text", "")


def test_status_updates_continue_across_a_kill_and_restart(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    health = api_bed.health
    health.status = 503  # verification is slow: the service answers 503 for a while
    env = {"ROLLBOT_STATUS_INTERVAL": "1", "ROLLBOT_LEASE_SECONDS": "2"}
    bot = api_bed.start_bot(env=env)
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "api because slow"), LEAD)

    before = fake_slack.wait_for("chat.postMessage", is_status, count=3, timeout=20)
    gaps = [b.at - a.at for a, b in itertools.pairwise(before)]
    assert all(0.5 < g < 2.5 for g in gaps), gaps
    assert "Check the health endpoints" in before[-1].args["text"]

    bot.kill(signal.SIGKILL)  # dies inside the verification step
    killed_at = time.time()
    bot.restart()
    fake_slack.wait_for(
        "chat.postMessage", lambda c: is_status(c) and c.at > killed_at, timeout=20
    )  # the survivor took over the schedule
    health.status = 200
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)[0]
    assert any(
        "resumed by replica" in c.args["text"] for c in fake_slack.calls_to("chat.postMessage")
    )
    assert "ROLLBACK COMPLETE" in done.args["text"]
    journal = read_journal(api_bed.db)
    starts = [e.step_id for e in journal if e.event == "start"]
    assert starts.count("update") == 1  # the change was never made twice
    assert starts.count("health") == 2  # the read-only check simply ran again
    assert service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"].endswith(":2")
    assert fake_slack.errors == []


def test_a_request_whose_bot_died_while_preparing_is_ended_and_its_target_freed(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    health = api_bed.health
    health.delay = 1.0  # the diagnostics take a few seconds after the ack
    bot = api_bed.start_bot(env={"ROLLBOT_LEASE_SECONDS": "2"})
    status, _ = bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    assert status == 200
    bot.kill(signal.SIGKILL)  # inside the preparation: nothing posted, the target locked
    assert fake_slack.calls_to("chat.postMessage") == []
    bot.start()

    told = fake_slack.wait_for(
        "chat.postMessage", lambda c: c.args["channel"] == REQUESTER, timeout=20
    )[0]
    assert "stopped while it was being prepared" in told.args["text"]
    assert "Nothing was changed" in told.args["text"]
    rollback_id = told.args["text"].split("`")[1]
    assert record_state(api_bed.db, rollback_id) == "interrupted"
    health.delay = 0
    # the target is free: the new request reaches its approver
    request_rollback(bot, fake_slack, "api")
    assert fake_slack.errors == []
