"""The ECS steps on their own: against moto server, and botocore's Stubber for real rollouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from playbooks.aws import AwsClients, failure
from playbooks.base import STEP_TYPES, StepContext, StepFailed
from playbooks.loader import load_playbook
from playbooks.steps.ecs import (
    EcsResolveRevision,
    EcsUpdateService,
    EcsWaitStable,
    family_and_revision,
)
from playbooks.steps.ecs_taskdef import _shown_env
from tests.testbed.aws import ACCOUNT, REGION, Aws, make_ecs_service, service_state

CLUSTER = "sandbox-broker-cluster"
ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/api:{{}}"


def context(aws: Aws | None, ref: str = "previous", **params: Any) -> StepContext:
    return StepContext(
        target="api",
        params={"cluster": CLUSTER, "service": "api", "region": REGION, **params},
        ref=ref,
        aws=aws.step_clients() if aws else AwsClients(region=REGION),
        poll_delay=0.05,
        poll_timeout=2,
    )


def snapshot(aws: Aws) -> dict[str, Any]:
    """Everything a step could change: services, deployments and task definitions."""
    ecs = aws.client("ecs")
    services = ecs.describe_services(cluster=CLUSTER, services=["api"])["services"]
    return {
        "services": [(s["taskDefinition"], s["desiredCount"], s["deployments"]) for s in services],
        "active": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
        "inactive": ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"],
    }


# --- ecs.resolve_revision --------------------------------------------------------------------


async def test_previous_skips_a_deregistered_revision(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=4)
    aws.client("ecs").deregister_task_definition(taskDefinition=arns[2])  # api:3 is gone
    out = await EcsResolveRevision().run(context(aws))
    assert out == {
        "cluster": CLUSTER,
        "service": "api",
        "family": "api",
        "current_task_definition": arns[3],
        "current_revision": 4,
        "current_images": [f"{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com/api:v4"],
        "target_task_definition": arns[1],
        "target_revision": 2,
        "target_images": [f"{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com/api:v2"],
        "source": "history",
        "same_as_current": False,
        "world": {"subject": "api", "on": "api:4"},
        "summary": f"api: api:4 -> api:2 ({ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com/api:v2)",
    }


async def test_previous_is_older_than_the_current_revision_not_the_newest(aws: Aws) -> None:
    # the service was already rolled back to 3 of 5: "previous" means 2, never 4 or 5
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=5, running_revision=3)
    make_ecs_service(aws, CLUSTER, "other", "api-worker", revisions=2)  # a family sharing a prefix
    out = await EcsResolveRevision().run(context(aws))
    assert (out["current_revision"], out["target_task_definition"]) == (3, arns[1])


@pytest.mark.parametrize("ref", ["2", "api:2", ARN.format(2), " 2 "])
async def test_explicit_revision(aws: Aws, ref: str) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    out = await EcsResolveRevision().run(context(aws, ref=ref))
    assert (out["target_revision"], out["target_task_definition"]) == (2, arns[1])
    assert out["source"] == "requested"


async def test_step_ref_overrides_the_request(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    out = await EcsResolveRevision(ref="1").run(context(aws, ref="previous"))
    assert out["target_revision"] == 1


async def test_missing_and_deregistered_revisions_list_the_available_ones(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    with pytest.raises(StepFailed) as missing:
        await EcsResolveRevision().run(context(aws, ref="9"))
    assert str(missing.value) == (
        "revision '9' of api is not an ACTIVE task definition (available: 1, 2, 3)"
    )
    aws.client("ecs").deregister_task_definition(taskDefinition=arns[0])
    with pytest.raises(StepFailed) as gone:
        await EcsResolveRevision().run(context(aws, ref="api:1"))
    assert str(gone.value) == (
        "revision 'api:1' of api is not an ACTIVE task definition, it was deregistered"
        " (available: 2, 3)"
    )


async def test_long_histories_show_the_newest_revisions(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=12)
    with pytest.raises(StepFailed, match=r"\(available: \.\.\., 3, 4, .*, 11, 12\)"):
        await EcsResolveRevision().run(context(aws, ref="40"))


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("worker:1", "worker:1 is not a revision of api, the family the service runs"),
        ("v1.2.3", "'v1.2.3' is not a task-definition revision: use previous, a number"),
        ("api:latest", "'api:latest' is not a task-definition revision"),
    ],
)
async def test_refs_that_are_not_revisions_of_the_service(aws: Aws, ref: str, message: str) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=2)
    with pytest.raises(StepFailed, match=message):
        await EcsResolveRevision().run(context(aws, ref=ref))


async def test_nothing_older_to_go_back_to(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=1)
    with pytest.raises(StepFailed, match=r"no ACTIVE revision of api older than 1 .*ACTIVE: 1\)"):
        await EcsResolveRevision().run(context(aws))


# --- ecs.update_service ----------------------------------------------------------------------


async def test_update_then_already_done(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    step = EcsUpdateService(task_definition=arns[1])
    ctx = context(aws)
    assert await step.already_done(ctx) is None
    out = await step.run(ctx)
    assert out["task_definition"] == arns[1]
    assert out["previous_task_definition"] == arns[2]
    assert out["deployment_id"].startswith("ecs-svc/") and out["resumed"] is False
    assert out["summary"] == "api deploying api:2 (was api:3)"
    assert service_state(aws, CLUSTER, "api")["taskDefinition"] == arns[1]
    done = await step.already_done(ctx)
    assert done is not None and done["resumed"] is True and done["task_definition"] == arns[1]


async def test_already_done_compares_family_and_revision(aws: Aws) -> None:
    # moto keeps the literal string it was given: "api:2", not the ARN
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    aws.client("ecs").update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")
    assert service_state(aws, CLUSTER, "api")["taskDefinition"] == "api:2"
    assert await EcsUpdateService(task_definition=arns[1]).already_done(context(aws)) is not None
    assert await EcsUpdateService(task_definition=arns[0]).already_done(context(aws)) is None


async def test_update_needs_a_task_definition(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api")
    with pytest.raises(StepFailed, match="needs a task_definition"):
        await EcsUpdateService().run(context(aws))


# --- ecs.wait_stable -------------------------------------------------------------------------


async def test_wait_stable_after_scaling_and_update(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3, desired=0)
    aws.client("ecs").update_service(cluster=CLUSTER, service="api", desiredCount=2)
    await EcsUpdateService(task_definition=arns[1]).run(context(aws))
    out = await EcsWaitStable(task_definition=arns[1]).run(context(aws))
    assert {k: out[k] for k in ("running", "desired", "revision", "rollout_state", "polls")} == {
        "running": 2,
        "desired": 2,
        "revision": 2,
        "rollout_state": "COMPLETED",
        "polls": 1,
    }
    assert out["summary"] == "api stable on api:2, 2/2 running"


async def test_wait_stable_times_out_with_what_it_saw(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=2, running=False)
    step = EcsWaitStable(delay=0.05, timeout=0.3)
    started = datetime.now(UTC)
    with pytest.raises(StepFailed) as failed:
        await step.run(context(aws, poll_timeout=600))
    assert timedelta(seconds=0.3) <= datetime.now(UTC) - started < timedelta(seconds=2)
    assert str(failed.value) == (
        "api not stable after 0.3s: waiting for one deployment with 2 of its tasks running;"
        " last seen: service on api:2, 0/2 running,"
        " deployments: PRIMARY api:2 IN_PROGRESS 0/2"
    )
    assert failed.value.output["polls"] >= 3


async def test_wait_stable_fails_when_the_service_runs_another_revision(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    with pytest.raises(StepFailed, match="api settled on api:3, not api:1"):
        await EcsWaitStable(task_definition=arns[0]).run(context(aws))


# --- AWS errors ------------------------------------------------------------------------------

STEPS = [
    EcsResolveRevision(),
    EcsUpdateService(task_definition="api:1"),
    EcsWaitStable(timeout=1),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.type)
async def test_missing_cluster_is_a_readable_failure(aws: Aws, step: Any) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api")
    with pytest.raises(StepFailed) as failed:
        await step.run(context(aws, cluster="nope"))
    assert str(failed.value) == (
        "ECS cluster 'nope' was not found in eu-central-1 (check the target's cluster)"
    )
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.type)
async def test_missing_service_is_a_readable_failure(aws: Aws, step: Any) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api")
    with pytest.raises(StepFailed, match=f"service 'missing' not found in cluster '{CLUSTER}'"):
        await step.run(context(aws, service="missing"))


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.type)
async def test_no_region_is_a_readable_failure(monkeypatch: pytest.MonkeyPatch, step: Any) -> None:
    for key in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    ctx = StepContext(target="api", params={"cluster": CLUSTER, "service": "api"})
    with pytest.raises(StepFailed, match="no AWS region: set `region` on the target"):
        await step.run(ctx)


def test_connection_and_credential_problems_read_well() -> None:
    down = failure(EndpointConnectionError(endpoint_url="https://ecs.x"), "ecs.update_service", "r")
    assert str(down) == (
        "ecs.update_service: cannot reach the ECS API in r: Could not connect to the endpoint URL:"
        ' "https://ecs.x"'
    )
    creds = failure(NoCredentialsError(), "ecs.describe_services", "r")
    assert "no AWS credentials found" in str(creds)


# --- plans -----------------------------------------------------------------------------------


async def test_plans_name_the_exact_calls_and_change_nothing(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    before = snapshot(aws)
    ctx = context(aws)
    assert await EcsUpdateService(task_definition=arns[1]).plan(ctx) == [
        f"ecs.update_service(cluster='{CLUSTER}', service='api', taskDefinition='{arns[1]}',"
        " forceNewDeployment=True)"
    ]
    assert await EcsResolveRevision().plan(context(aws, ref="2")) == [
        f"ecs.describe_services(cluster='{CLUSTER}', services=['api'])",
        "ecs.describe_task_definition(taskDefinition='<family>:2')",
    ]
    assert (await EcsResolveRevision().plan(ctx))[1].startswith(
        "ecs.list_task_definitions(familyPrefix=<family of the current revision>, status='ACTIVE')"
    )
    assert await EcsWaitStable(task_definition=arns[1], delay=5, timeout=300).plan(ctx) == [
        f"ecs.describe_services(cluster='{CLUSTER}', services=['api']) every 5s until"
        f" services_stable on taskDefinition='{arns[1]}' and rollout COMPLETED, at most 300s"
    ]
    await EcsResolveRevision().run(ctx)  # planning runs the look-up for real: still read-only
    assert snapshot(aws) == before


def test_steps_are_registered_and_the_playbook_binds() -> None:
    assert {"ecs.resolve_revision", "ecs.update_service", "ecs.wait_stable", "http.check"} <= set(
        STEP_TYPES
    )
    assert (EcsResolveRevision.mutating, EcsUpdateService.mutating, EcsWaitStable.mutating) == (
        False,
        True,
        False,
    )
    assert EcsUpdateService.can_check_done and EcsResolveRevision.resolves
    playbook = load_playbook("ecs-revision")
    steps = playbook.bind({"cluster": "c", "service": "s", "health_urls": []})
    assert [(s.id, s.type) for s in steps] == [
        ("resolve", "ecs.resolve_revision"),
        ("update", "ecs.update_service"),
        ("stable", "ecs.wait_stable"),
        ("health", "http.check"),
    ]
    assert steps[1].use == {"task_definition": "resolve.target_task_definition"}


def test_family_and_revision() -> None:
    assert family_and_revision(ARN.format(7)) == ("api", 7)
    assert family_and_revision("my-app:12") == ("my-app", 12)
    with pytest.raises(StepFailed):
        family_and_revision("my-app")


# --- real rollout shapes (moto has one deployment only) through botocore's Stubber -----------


class StubbedAws(AwsClients):
    """AwsClients whose ECS client answers from a Stubber queue."""

    def __init__(self) -> None:
        super().__init__(region=REGION)
        self.ecs = boto3.client(
            "ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stub = Stubber(self.ecs)

    def client(self, service: str, region: str | None = None) -> Any:
        return self.ecs


def stubbed_context(stubbed: StubbedAws, ref: str = "previous") -> StepContext:
    ctx = context(None, ref=ref)
    ctx.aws = stubbed
    return ctx


T0 = datetime(2025, 10, 8, 12, 0, tzinfo=UTC)


def deployment(rev: int, status: str, rollout: str, running: int, minutes: int) -> dict[str, Any]:
    return {
        "id": f"ecs-svc/{rev}{minutes}",
        "status": status,
        "taskDefinition": ARN.format(rev),
        "desiredCount": 2,
        "runningCount": running,
        "pendingCount": 2 - running,
        "rolloutState": rollout,
        "rolloutStateReason": f"ECS deployment ecs-svc/{rev}{minutes} {rollout.lower()}.",
        "createdAt": T0 + timedelta(minutes=minutes),
        "updatedAt": T0 + timedelta(minutes=minutes),
    }


def services_answer(current: int, running: int, *deployments: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": "api",
                "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
                "status": "ACTIVE",
                "taskDefinition": ARN.format(current),
                "desiredCount": 2,
                "runningCount": running,
                "pendingCount": 0,
                "deployments": list(deployments),
            }
        ],
        "failures": [],
    }


def taskdef_answer(rev: int, status: str = "ACTIVE") -> dict[str, Any]:
    return {
        "taskDefinition": {
            "taskDefinitionArn": ARN.format(rev),
            "family": "api",
            "revision": rev,
            "status": status,
            "containerDefinitions": [{"name": "api", "image": f"repo/api:v{rev}"}],
        }
    }


DESCRIBE = {"cluster": CLUSTER, "services": ["api"]}


async def test_previous_is_the_older_deployment_still_active() -> None:
    # 9 is rolling out, 8 failed earlier and still drains, 7 served before: go back to 7
    aws = StubbedAws()
    answer = services_answer(
        9,
        4,
        deployment(9, "PRIMARY", "IN_PROGRESS", 2, 30),
        deployment(8, "ACTIVE", "FAILED", 0, 20),
        deployment(7, "ACTIVE", "COMPLETED", 2, 10),
    )
    aws.stub.add_response("describe_services", answer, DESCRIBE)
    aws.stub.add_response(
        "describe_task_definition", taskdef_answer(9), {"taskDefinition": ARN.format(9)}
    )
    aws.stub.add_response(
        "describe_task_definition", taskdef_answer(7), {"taskDefinition": ARN.format(7)}
    )
    with aws.stub:
        out = await EcsResolveRevision().run(stubbed_context(aws))
    aws.stub.assert_no_pending_responses()
    assert (out["target_revision"], out["source"], out["target_images"]) == (
        7,
        "deployment",
        ["repo/api:v7"],
    )


async def test_a_deregistered_deployment_falls_back_to_history() -> None:
    aws = StubbedAws()
    answer = services_answer(
        9,
        4,
        deployment(9, "PRIMARY", "IN_PROGRESS", 2, 30),
        deployment(7, "ACTIVE", "COMPLETED", 2, 10),
    )
    arns = [ARN.format(n) for n in (8, 6, 7, 9)]  # unsorted, as some ECS look-alikes answer
    aws.stub.add_response("describe_services", answer, DESCRIBE)
    aws.stub.add_response(
        "describe_task_definition", taskdef_answer(9), {"taskDefinition": ARN.format(9)}
    )
    aws.stub.add_response(
        "describe_task_definition", taskdef_answer(7, "INACTIVE"), {"taskDefinition": ARN.format(7)}
    )
    aws.stub.add_response(
        "list_task_definitions",
        {"taskDefinitionArns": arns},
        {"familyPrefix": "api", "status": "ACTIVE"},
    )
    aws.stub.add_response(
        "describe_task_definition", taskdef_answer(8), {"taskDefinition": "api:8"}
    )
    with aws.stub:
        out = await EcsResolveRevision().run(stubbed_context(aws))
    assert (out["target_revision"], out["source"]) == (8, "history")


async def test_wait_stable_follows_a_real_rollout_to_completion() -> None:
    aws = StubbedAws()
    for answer in (
        services_answer(
            7,
            3,
            deployment(7, "PRIMARY", "IN_PROGRESS", 1, 30),
            deployment(9, "ACTIVE", "COMPLETED", 2, 10),
        ),
        services_answer(7, 2, deployment(7, "PRIMARY", "IN_PROGRESS", 2, 30)),
        services_answer(7, 2, deployment(7, "PRIMARY", "COMPLETED", 2, 30)),
    ):
        aws.stub.add_response("describe_services", answer, DESCRIBE)
    with aws.stub:
        out = await EcsWaitStable(task_definition=ARN.format(7), delay=0.01).run(
            stubbed_context(aws)
        )
    assert (out["polls"], out["rollout_state"], out["revision"]) == (3, "COMPLETED", 7)


async def test_wait_stable_stops_at_a_failed_rollout() -> None:
    # the circuit breaker gave up on 7 and is rolling back to 9: no point waiting on
    aws = StubbedAws()
    aws.stub.add_response(
        "describe_services",
        services_answer(
            7,
            3,
            deployment(7, "PRIMARY", "IN_PROGRESS", 1, 30),
            deployment(9, "ACTIVE", "COMPLETED", 2, 10),
        ),
        DESCRIBE,
    )
    failed_7 = deployment(7, "ACTIVE", "FAILED", 0, 30)
    failed_7["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    aws.stub.add_response(
        "describe_services",
        services_answer(9, 2, deployment(9, "PRIMARY", "IN_PROGRESS", 2, 35), failed_7),
        DESCRIBE,
    )
    with aws.stub, pytest.raises(StepFailed) as failed:
        await EcsWaitStable(task_definition=ARN.format(7), delay=0.01).run(stubbed_context(aws))
    assert str(failed.value) == (
        "the deployment of api:7 to api FAILED:"
        " ECS deployment circuit breaker: tasks failed to start."
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "AccessDeniedException",
            "the bot's AWS identity may not call ecs.describe_services: User x is not"
            " authorized (grant ecs:DescribeServices to its role)",
        ),
        (
            "ThrottlingException",
            "AWS kept throttling ecs.describe_services; try again in a minute",
        ),
        (
            "InvalidParameterException",
            "ECS refused ecs.describe_services: User x is not authorized",
        ),
        (
            "ServerException",
            "ecs.describe_services failed: ServerException: User x is not authorized",
        ),
    ],
)
async def test_aws_errors_become_sentences(code: str, message: str) -> None:
    aws = StubbedAws()
    aws.stub.add_client_error("describe_services", code, "User x is not authorized.")
    with aws.stub, pytest.raises(StepFailed) as failed:
        await EcsResolveRevision().run(stubbed_context(aws))
    assert str(failed.value) == message
    assert failed.value.output == {"aws_error": code}


async def test_throttling_after_retries_says_how_many() -> None:
    aws = StubbedAws()
    answer = services_answer(9, 2, deployment(9, "PRIMARY", "COMPLETED", 2, 10))
    aws.stub.add_response("describe_services", answer, DESCRIBE)
    aws.stub.add_client_error(
        "update_service",
        "ThrottlingException",
        "Rate exceeded",
        response_meta={"RetryAttempts": 4},
    )
    with aws.stub, pytest.raises(StepFailed) as failed:
        await EcsUpdateService(task_definition="api:7").run(stubbed_context(aws))
    assert str(failed.value) == (
        "AWS kept throttling ecs.update_service after 5 attempts; try again in a minute"
    )


def test_plans_hide_every_name_the_redactor_counts_as_secret() -> None:
    env = [
        {"name": "DB_PWD", "value": "S3cretPw1"},
        {"name": "SENTRY_DSN", "value": "https://k@sentry.example/1"},
        {"name": "MODE", "value": "multi"},
    ]
    assert _shown_env(env) == "[DB_PWD=[redacted], SENTRY_DSN=[redacted], MODE=multi]"
