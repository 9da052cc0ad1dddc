"""Every shipped ECS playbook, planned and run by the engine against moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.catalog import load_catalog
from bot.store.sqlite import SqliteStore
from playbooks.runner import PlaybookRunner, plan, step_context
from tests.testbed.aws import Aws, make_ecs_service, service_state

CLUSTER = "sandbox-broker-cluster"


def target(tmp_path: Path, playbook: str, **params: Any) -> Any:
    lines = [f"    {k}: {v}" for k, v in params.items()]
    (tmp_path / "rollbot.yml").write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  t:\n"
        f"    playbook: {playbook}\n    cluster: {CLUSTER}\n    region: eu-central-1\n"
        "    poll_delay: 0.05\n    poll_timeout: 5\n" + "\n".join(lines) + "\n"
    )
    return load_catalog(tmp_path / "rollbot.yml").targets["t"]


async def run(tmp_path: Path, tgt: Any, ref: str = "previous") -> Any:
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        return await PlaybookRunner(store, "rb-test").run(tgt.steps, step_context(tgt, ref))
    finally:
        await store.close()


def taskdef(aws: Aws, arn_or_name: str) -> dict[str, Any]:
    return aws.client("ecs").describe_task_definition(taskDefinition=arn_or_name)["taskDefinition"]


async def test_revision_rollback_to_previous_skips_deregistered(aws: Aws, tmp_path: Path) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=4)
    aws.client("ecs").deregister_task_definition(taskDefinition=arns[2])  # api:3 is gone
    tgt = target(tmp_path, "ecs-revision", service="api")
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    assert f"taskDefinition='{arns[1]}'" in planned[1].calls[0]
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    assert result.steps[0].output["target_revision"] == 2
    assert service_state(aws, CLUSTER, "api")["taskDefinition"] in (arns[1], "api:2")


async def test_image_rollback_registers_a_revision_with_the_old_tag(
    aws: Aws, tmp_path: Path
) -> None:
    make_ecs_service(
        aws,
        CLUSTER,
        "api",
        "api",
        revisions=2,
        environment={"DB_PASSWORD": "hunter2", "MODE": "fast"},
    )
    tgt = target(tmp_path, "ecs-image", service="api")
    planned = await plan(tgt.steps, step_context(tgt, "v20240224-120000"))
    assert (
        "image='123456789012.dkr.ecr.eu-central-1.amazonaws.com/api:v20240224-120000'"
        in (planned[0].calls[0])
    )
    assert "hunter2" not in str(planned)
    result = await run(tmp_path, tgt, "v20240224-120000")
    assert result.ok, result.error
    new = taskdef(aws, "api:3")
    assert new["containerDefinitions"][0]["image"].endswith("/api:v20240224-120000")
    assert {"name": "DB_PASSWORD", "value": "hunter2"} in new["containerDefinitions"][0][
        "environment"
    ]
    assert service_state(aws, CLUSTER, "api")["taskDefinition"].endswith("api:3")
    assert "hunter2" not in str(result.steps[0].output)


async def test_environment_override_and_environment_rollback(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(
        aws, CLUSTER, "ide", "ide", revisions=2, environment={"TORNADO_PROCESSES": "2"}
    )
    tgt = target(
        tmp_path, "ecs-env-override", service="ide", environment="{TORNADO_PROCESSES: '1'}"
    )
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    env = taskdef(aws, "ide:3")["containerDefinitions"][0]["environment"]
    assert env == [{"name": "TORNADO_PROCESSES", "value": "1"}]

    # env rollback: the environment of the revision before the current one (ide:2 has "2")
    tgt = target(tmp_path, "ecs-env-rollback", service="ide")
    (tmp_path / "rollbot.db").unlink()
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    assert taskdef(aws, "ide:4")["containerDefinitions"][0]["environment"] == [
        {"name": "TORNADO_PROCESSES", "value": "2"}
    ]


async def test_scale_to_zero_and_restart(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, CLUSTER, "worker", "worker", desired=3)
    result = await run(tmp_path, target(tmp_path, "ecs-scale", service="worker"))
    assert result.ok, result.error
    state = service_state(aws, CLUSTER, "worker")
    assert (state["desiredCount"], state["runningCount"]) == (0, 0)

    (tmp_path / "rollbot.db").unlink()
    result = await run(tmp_path, target(tmp_path, "ecs-restart", service="worker", desired_count=2))
    assert result.ok, result.error
    assert [s.step_id for s in result.steps] == ["stop", "stopped", "start", "stable", "health"]
    state = service_state(aws, CLUSTER, "worker")
    assert (state["desiredCount"], state["runningCount"]) == (2, 2)


async def test_multi_service_rolls_api_then_worker(aws: Aws, tmp_path: Path) -> None:
    api = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    worker = make_ecs_service(aws, CLUSTER, "worker", "worker", revisions=3)
    tgt = target(tmp_path, "ecs-multi-service", service="api", worker_service="worker")
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    assert f"taskDefinition='{api[1]}'" in planned[1].calls[0]
    assert f"taskDefinition='{worker[1]}'" in planned[5].calls[0]
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    order = [s.step_id for s in result.steps]
    assert order.index("api-stable") < order.index("worker-update")
    assert service_state(aws, CLUSTER, "api")["taskDefinition"].endswith("api:2")
    assert service_state(aws, CLUSTER, "worker")["taskDefinition"].endswith("worker:2")


async def test_worker_is_not_touched_when_the_api_fails(
    aws: Aws, tmp_path: Path, http_backend: Any
) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    make_ecs_service(aws, CLUSTER, "worker", "worker", revisions=3)
    bad = http_backend()
    bad.status = 503
    tgt = target(
        tmp_path,
        "ecs-multi-service",
        service="api",
        worker_service="worker",
        health_urls=f'["{bad.url}"]',
    )
    tgt.steps[3] = tgt.steps[3].model_copy(update={"attempts": 1})
    result = await run(tmp_path, tgt)
    assert not result.ok and result.failed_step.step_id == "api-health"
    assert "503" in result.error
    assert [s.step_id for s in result.steps][-1] == "api-health"
    assert service_state(aws, CLUSTER, "worker")["taskDefinition"].endswith("worker:3")


@pytest.mark.parametrize(
    ("service", "error"),
    [
        ("missing", "service 'missing' not found in cluster"),
    ],
)
async def test_aws_errors_end_the_run_with_a_clear_message(
    aws: Aws, tmp_path: Path, service: str, error: str
) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api")
    result = await run(tmp_path, target(tmp_path, "ecs-revision", service=service))
    assert not result.ok and error in result.error


async def test_missing_cluster_is_a_clear_failure(aws: Aws, tmp_path: Path) -> None:
    (tmp_path / "rollbot.yml").write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  t:\n    playbook: ecs-revision\n"
        "    cluster: nope\n    service: api\n    region: eu-central-1\n"
    )
    tgt = load_catalog(tmp_path / "rollbot.yml").targets["t"]
    result = await run(tmp_path, tgt)
    assert not result.ok
    assert "ClusterNotFoundException" in result.error or "not found" in result.error
