"""AWS faults during a rollback, injected between the bot and moto: throttling is retried by
botocore's standard mode; access denied ends the rollback with a clear message."""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    SERVICE,
    ApiTestBed,
    click,
    is_completion,
    request_rollback,
)
from tests.testbed.aws import service_state
from tests.testbed.aws_gate import AwsGate
from tests.testbed.slack_api import FakeSlackApi


def rollback(bot: Any, fake_slack: FakeSlackApi, gate: AwsGate, op: str, n: int, code: str) -> str:
    """Request and approve `/rollback api to 2`, with `op` refused `n` times after approval."""
    value = request_rollback(bot, fake_slack, "api to 2")
    gate.fail(op, n, code)
    click(bot, "rollback_approve", value, LEAD)
    ended = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: "ROLLBACK COMPLETE" in c.args["text"] or "FAILED" in c.args["text"],
        timeout=40,
    )
    return ended[0].args["text"]


def test_throttled_calls_are_retried_and_the_rollback_completes(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    aws, arns = api_bed.aws, api_bed.arns
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url})
    text = rollback(bot, fake_slack, aws_gate, "UpdateService", 2, "ThrottlingException")
    assert "ROLLBACK COMPLETE" in text
    assert aws_gate.refused["UpdateService"] == 2 and aws_gate.forwarded["UpdateService"] == 1
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] in (arns[1], f"{SERVICE}:2")


def test_access_denied_ends_the_rollback_with_a_clear_message(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    aws, arns = api_bed.aws, api_bed.arns
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url})
    text = rollback(bot, fake_slack, aws_gate, "UpdateService", 1, "AccessDeniedException")
    assert "FAILED" in text and not is_completion(fake_slack.calls_to("chat.postMessage")[0])
    assert "AccessDenied" in text and "Failed at:* step 2 of 4, Update the service" in text
    assert aws_gate.refused["UpdateService"] == 1  # not retried: retrying cannot help
    assert aws_gate.forwarded["UpdateService"] == 0
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] == arns[2]
    # the target is free again: the next request gets its own approval
    request_rollback(bot, fake_slack, "api to 1", nth=1)
