"""kill -9 at every step boundary of the ECS playbooks, and inside a change after AWS made it:
the restarted bot resumes from the journal and no change reaches moto twice."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    SERVICE,
    ApiTestBed,
    audit_actions,
    click,
    is_completion,
    read_journal,
    record_state,
    request_rollback,
)
from tests.testbed.aws import service_state
from tests.testbed.aws_gate import AwsGate
from tests.testbed.ports import wait_until
from tests.testbed.slack_api import FakeSlackApi

IMAGE_TARGET = """\
  api-image:
    playbook: ecs-image
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
    health_urls: ["{health}"]
    poll_delay: 0.2
    poll_timeout: 20
"""

# where the bot dies: (AWS operation or "health", before/after the call reaches its server)
REVISION_CRASHES = {
    "before resolve": ("DescribeServices", "before"),
    "between resolve and update": ("UpdateService", "before"),
    "inside update, after AWS changed": ("UpdateService", "after"),
    "between update and stable": ("DescribeServices", "before", "UpdateService"),
    "between stable and health": ("health", "before"),
}


def crash_bot(
    bot: Any, gate: AwsGate, health: Any, op: str, when: str, armed_by: str = ""
) -> list[float]:
    """Arm the crash point; returns a list that gets the time of the kill."""
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.time())
        bot.kill(signal.SIGKILL)

    def arm() -> None:
        if op == "health":
            health.on_next_hit = kill
        else:
            gate.trap(op, when, kill)

    if armed_by:  # the crash point is the first such call after this one
        gate.trap(armed_by, "after", arm)
    else:
        arm()
    return killed


def start_rollback(bot: Any, fake_slack: FakeSlackApi, text: str) -> tuple[str, str]:
    value = request_rollback(bot, fake_slack, text)
    return value, json.loads(value)["id"]


def restart_after_kill(bot: Any, killed: list[float]) -> None:
    wait_until(lambda: bool(killed) and not bot.alive, 30, "the crash point")
    bot.start()


def finish(fake_slack: FakeSlackApi, db: Path, rollback_id: str) -> None:
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    time.sleep(0.5)  # a second completion would show up by now
    texts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert sum("ROLLBACK COMPLETE" in t for t in texts) == 1, texts
    assert sum("resumed by replica" in t for t in texts) == 1
    assert record_state(db, rollback_id) == "succeeded"
    # every state the rollback went through is in the audit log, once
    states = [a for _, a in audit_actions(db) if a.startswith("rollback.")]
    assert states == [
        "rollback.requested",
        "rollback.awaiting_approval",
        "rollback.approved",
        "rollback.running",
        "rollback.verifying",
        "rollback.succeeded",
    ], states


@pytest.mark.parametrize("crash", REVISION_CRASHES, ids=lambda c: c.replace(" ", "-"))
def test_ecs_revision_survives_a_kill(
    crash: str, api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    aws, arns, health = api_bed.aws, api_bed.arns, api_bed.health
    env = {"AWS_ENDPOINT_URL": aws_gate.url, "ROLLBOT_LEASE_SECONDS": "2"}
    bot = api_bed.start_bot(env=env)
    value, rollback_id = start_rollback(bot, fake_slack, "api to 2 because crash test")
    assert aws_gate.forwarded["UpdateService"] == 0
    killed = crash_bot(bot, aws_gate, health, *REVISION_CRASHES[crash])
    click(bot, "rollback_approve", value, LEAD)
    restart_after_kill(bot, killed)

    finish(fake_slack, api_bed.db, rollback_id)
    assert aws_gate.forwarded["UpdateService"] == 1  # the change reached AWS exactly once
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] in (arns[1], f"{SERVICE}:2")
    journal = read_journal(api_bed.db)
    ends = {e.step_id: e for e in journal if e.event == "end"}
    assert [e.outcome for e in ends.values()] == ["ok"] * 4
    starts = [e.step_id for e in journal if e.event == "start"]
    # the step the bot died in (or was about to start) is journaled again; resolve and the
    # checks simply run again, the change only after a look at the service found it not made
    assert starts.count("update") == (2 if crash == "between resolve and update" else 1)
    resumed = crash == "inside update, after AWS changed"
    assert ends["update"].output["resumed"] is resumed


def test_ecs_image_registers_its_revision_once_across_a_kill(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    aws, health = api_bed.aws, api_bed.health
    env = {"AWS_ENDPOINT_URL": aws_gate.url, "ROLLBOT_LEASE_SECONDS": "2"}
    bot = api_bed.start_bot(env=env, extra=IMAGE_TARGET.format(health=health.url))
    value, rollback_id = start_rollback(bot, fake_slack, "api-image to v1 because crash test")
    killed = crash_bot(bot, aws_gate, health, "RegisterTaskDefinition", "after")
    click(bot, "rollback_approve", value, LEAD)
    restart_after_kill(bot, killed)

    finish(fake_slack, api_bed.db, rollback_id)
    assert aws_gate.forwarded["RegisterTaskDefinition"] == 1
    assert aws_gate.forwarded["UpdateService"] == 1
    running = service_state(aws, CLUSTER, SERVICE)["taskDefinition"]
    assert running.endswith(f"{SERVICE}:4")  # the one revision the bot registered
