"""An approval binds to the plan the approver saw: through `rollbot serve`, moto behind the AWS
gate, SQLite and Redis. A world that moved between request and click changes nothing and goes
back for approval; a world already where the plan led is "nothing to do"; a request that needs
no rollback, or asks for an image from elsewhere, is answered before anything is announced."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    MESSAGE_OF,
    REQUESTER,
    SERVICE,
    ApiTestBed,
    audit_actions,
    click,
    has_ended,
    is_completion,
    record_state,
    request_rollback,
)
from tests.e2e.plan_helpers import approval_messages, approve_value, text_of
from tests.testbed.aws import make_ecs_service, register_revisions, service_state
from tests.testbed.aws_gate import AwsGate
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

READS = ("Describe", "List", "Get", "Filter", "Lookup")
REPO = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
IMAGE_TARGETS = f"""\
  api-image:
    playbook: ecs-image
    cluster: {CLUSTER}
    service: {SERVICE}
    region: eu-central-1
    allowed_images: ["{REPO}/sandbox-broker-hotfix:*"]
    poll_delay: 0.2
    poll_timeout: 20
  solo-image:
    playbook: ecs-image
    cluster: {CLUSTER}
    service: solo
    region: eu-central-1
    poll_delay: 0.2
"""


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


def changes(gate: AwsGate) -> dict[str, int]:
    """Every AWS operation that reached moto and is not a read."""
    return {op: n for op, n in gate.forwarded.items() if not op.startswith(READS)}


def deploy(api_bed: ApiTestBed) -> str:
    """Someone deploys a new revision of the service outside Rollbot."""
    (arn,) = register_revisions(api_bed.aws, SERVICE, 1)
    api_bed.aws.client("ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
    return arn


def test_a_world_changed_before_the_click_changes_nothing_and_asks_again(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi, store_env: dict[str, str]
) -> None:
    arns = api_bed.arns
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url, **store_env})
    value = request_rollback(bot, fake_slack, "api because errors after deploy")
    first = approval_messages(fake_slack, 1)[0]
    assert f"taskDefinition='{arns[1]}'" in json.dumps(first.args["blocks"])  # :3 -> :2

    fourth = deploy(api_bed)  # :4 goes live before anyone clicks
    click(bot, "rollback_approve", value, LEAD)
    said = text_of(fake_slack, "The plan changed before the run")
    assert "sandbox-broker is now on sandbox-broker:4, was sandbox-broker:3" in said
    assert "Nothing was changed" in said
    second = approval_messages(fake_slack, 2)[1]
    new_plan = json.dumps(second.args["blocks"])
    assert f"taskDefinition='{arns[2]}'" in new_plan and arns[1] not in new_plan  # :4 -> :3
    superseded = fake_slack.wait_for("chat.update", lambda c: "Superseded" in json.dumps(c.args))
    assert superseded[0].args["ts"] == MESSAGE_OF[value]
    time.sleep(0.5)
    assert changes(aws_gate) == {}  # not one change reached AWS
    assert service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"] == fourth

    # the old button no longer decides anything
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for_response(lambda r: "does not belong" in r.get("text", ""))
    time.sleep(0.5)
    assert changes(aws_gate) == {}

    click(bot, "rollback_approve", approve_value(second), LEAD)
    done = fake_slack.wait_for("chat.postMessage", has_ended, timeout=40)[0].args["text"]
    assert "ROLLBACK COMPLETE" in done, done
    assert changes(aws_gate) == {"UpdateService": 1}  # exactly the newly approved call
    running = service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"]
    assert running in (arns[2], f"{SERVICE}:3")
    if not store_env:
        audit = [a for _, a in audit_actions(api_bed.db)]
        assert audit.count("rollback.replanned") == 1
        assert audit.count("rollback.approved") == 2


def test_a_world_already_where_the_plan_led_is_nothing_to_do(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi, store_env: dict[str, str]
) -> None:
    arns = api_bed.arns
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url, **store_env})
    value = request_rollback(bot, fake_slack, "api")  # :3 -> :2
    rollback_id = json.loads(value)["id"]
    # someone rolled back by hand meanwhile
    api_bed.aws.client("ecs").update_service(
        cluster=CLUSTER, service=SERVICE, taskDefinition=arns[1]
    )
    click(bot, "rollback_approve", value, LEAD)
    said = text_of(fake_slack, "NOTHING TO DO")
    assert "sandbox-broker is already on sandbox-broker:2" in said, said
    assert "Nothing was changed" in said
    time.sleep(0.5)
    texts = fake_slack.texts()
    assert not any("ROLLBACK FAILED" in t or "ROLLBACK COMPLETE" in t for t in texts), texts
    assert changes(aws_gate) == {}
    if not store_env:
        assert record_state(api_bed.db, rollback_id) == "succeeded"
        actions = [a for _, a in audit_actions(api_bed.db)]
        assert actions.count("rollback.nothing_to_do") == 1
    # the target is free again
    request_rollback(bot, fake_slack, "api to 1", nth=1)


def test_a_request_for_the_revision_already_running_is_answered_before_approval(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi, store_env: dict[str, str]
) -> None:
    bot = api_bed.start_bot(env=store_env)
    bot.sender.post(*slash_command("/rollback", "api to 3", user_id=REQUESTER))
    answer = fake_slack.wait_for_response(lambda r: "nothing to roll back" in r.get("text", ""))
    assert "sandbox-broker is already on sandbox-broker:3: nothing to roll back" in answer["text"]
    time.sleep(0.5)
    assert fake_slack.calls_to("chat.postMessage") == []  # nothing announced as a rollback
    # the target was freed: the next request is planned and asked for
    value = request_rollback(bot, fake_slack, "api to 2")
    assert json.loads(value)["id"].startswith("rb-")


def test_an_image_from_elsewhere_is_refused_at_request_time(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi, store_env: dict[str, str]
) -> None:
    make_ecs_service(api_bed.aws, CLUSTER, "solo", "solo", revisions=1)
    env = {"AWS_ENDPOINT_URL": aws_gate.url, **store_env}
    bot = api_bed.start_bot(env=env, extra=IMAGE_TARGETS)
    bot.sender.post(
        *slash_command("/rollback", "api-image to evil.example.com/x:latest", user_id=REQUESTER)
    )
    refusal = fake_slack.wait_for_response(lambda r: "refused" in r.get("text", ""))["text"]
    assert "evil.example.com/x:latest" in refusal
    assert f"not a tag or digest of {REPO}/sandbox-broker" in refusal
    assert "allowed_images" in refusal
    # no `to`: a service with no earlier revision has no previous image to go back to
    bot.sender.post(*slash_command("/rollback", "solo-image", user_id=REQUESTER))
    fake_slack.wait_for_response(lambda r: "ecs-image needs `to TAG`" in r.get("text", ""))
    time.sleep(0.5)
    assert fake_slack.calls_to("chat.postMessage") == []
    assert changes(aws_gate) == {}
    if not store_env:
        refused = [a for a in audit_actions(api_bed.db) if a[1] == "rollback.request_refused"]
        assert refused == [(REQUESTER, "rollback.request_refused")] * 2
    # an image the target allows is planned and asked for
    allowed = f"api-image to {REPO}/sandbox-broker-hotfix:v9"
    value = request_rollback(bot, fake_slack, allowed)
    plan = json.dumps(approval_messages(fake_slack, 1)[0].args["blocks"])
    assert f"image='{REPO}/sandbox-broker-hotfix:v9'" in plan and value


def test_ecs_image_without_to_goes_back_to_the_image_that_ran_before(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url}, extra=IMAGE_TARGETS)
    value = request_rollback(bot, fake_slack, "api-image")
    plan = json.dumps(approval_messages(fake_slack, 1)[0].args["blocks"])
    assert f"image='{REPO}/sandbox-broker:v2'" in plan and ":previous" not in plan
    click(bot, "rollback_approve", value, LEAD)
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)[0]
    assert "ROLLBACK COMPLETE" in done.args["text"]
    running = service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"]
    assert running.endswith(f"{SERVICE}:4")
    spec = api_bed.aws.client("ecs").describe_task_definition(taskDefinition=running)
    assert spec["taskDefinition"]["containerDefinitions"][0]["image"] == f"{REPO}/sandbox-broker:v2"
    assert changes(aws_gate) == {"RegisterTaskDefinition": 1, "UpdateService": 1}


def test_a_world_that_moves_during_the_run_stops_it_before_the_change(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url})
    value = request_rollback(bot, fake_slack, "api")  # :3 -> :2
    deployed: list[str] = []
    # the plan made again just before the run still holds; right after it looked, :4 goes live
    aws_gate.trap("ListTaskDefinitions", "after", lambda: deployed.append(deploy(api_bed)))
    click(bot, "rollback_approve", value, LEAD)
    text = fake_slack.wait_for("chat.postMessage", has_ended, timeout=40)[0].args["text"]
    assert deployed and "ROLLBACK FAILED" in text, text
    assert "would now make calls that were not approved, so it did not run" in text
    assert changes(aws_gate) == {}
    assert service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"] == deployed[0]
