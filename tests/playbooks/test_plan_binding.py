"""The playbook side of an approval: the digest of a plan's changing calls, a run that refuses
a change step whose calls differ from the approved ones, "nothing to do" said by the steps,
and the images an image rollback may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store.sqlite import SqliteStore
from playbooks.base import NothingToDo, RequestRefused
from playbooks.runner import PlannedStep, PlaybookRunner, plan, plan_digest, step_context
from playbooks.steps.ecs_image import image_for, repository
from playbooks.steps.github import GitHubResolveRef
from tests.playbooks.test_ecs_playbooks import CLUSTER, target
from tests.playbooks.test_github import REPO, context
from tests.testbed.aws import Aws, make_ecs_service, register_revisions, service_state
from tests.testbed.github_api import FakeGitHub, sha

ECR = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("v2", f"{ECR}/api:v2"),
        (":v2", f"{ECR}/api:v2"),
        (DIGEST, f"{ECR}/api@{DIGEST}"),
        (f"@{DIGEST}", f"{ECR}/api@{DIGEST}"),
        (f"{ECR}/api:v1", f"{ECR}/api:v1"),  # its own repository, written out
        (f"{ECR}/api-hotfix:v9", f"{ECR}/api-hotfix:v9"),  # allowed by a pattern
    ],
)
def test_images_the_target_allows(ref: str, expected: str) -> None:
    assert image_for(ref, f"{ECR}/api:v3", [f"{ECR}/api-hotfix:*"]) == expected


@pytest.mark.parametrize(
    "ref",
    ["evil.example.com/x:latest", "x:latest", f"{ECR}/other:v1", "docker.io/library/api:v2"],
)
def test_images_from_elsewhere_are_refused_with_the_reason(ref: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        image_for(ref, f"{ECR}/api:v3", [f"{ECR}/api-hotfix:*"])
    assert ref in str(refused.value) and f"{ECR}/api-hotfix:*" in str(refused.value)


def test_repository_ignores_tag_digest_and_keeps_a_registry_port() -> None:
    assert repository(f"{ECR}/team/api:v3") == f"{ECR}/team/api"
    assert repository(f"{ECR}/api@{DIGEST}") == f"{ECR}/api"
    assert repository("localhost:5000/api") == "localhost:5000/api"


def test_the_digest_binds_the_changing_calls_only() -> None:
    read = PlannedStep(0, "resolve", "Find", False, ["describe_services(...)"], {"a": 1})
    change = PlannedStep(1, "update", "Update", True, ["update_service(td='api:2')"])
    same = [PlannedStep(0, "resolve", "Find", False, ["other read"], {"a": 2}), change]
    assert plan_digest([read, change]) == plan_digest(same)
    moved = PlannedStep(1, "update", "Update", True, ["update_service(td='api:3')"])
    assert plan_digest([read, change]) != plan_digest([read, moved])
    kept = [PlannedStep.from_dict(i, p.to_dict()) for i, p in enumerate([read, change])]
    assert kept == [read, change]


async def test_a_change_step_whose_calls_moved_does_not_run(aws: Aws, tmp_path: Path) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    tgt = target(tmp_path, "ecs-revision", service="api")
    approved = await plan(tgt.steps, step_context(tgt, "previous"))  # :3 -> :2
    (fourth,) = register_revisions(aws, "api", 1)
    aws.client("ecs").update_service(cluster=CLUSTER, service="api", taskDefinition=fourth)
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        runner = PlaybookRunner(store, "rb-moved", approved=approved)
        result = await runner.run(tgt.steps, step_context(tgt, "previous"))
    finally:
        await store.close()
    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "update"
    assert "not approved" in result.error and arns[1] in result.error
    assert service_state(aws, CLUSTER, "api")["taskDefinition"] == fourth


async def test_the_approved_plan_runs_when_nothing_moved(aws: Aws, tmp_path: Path) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    tgt = target(tmp_path, "ecs-revision", service="api")
    approved = await plan(tgt.steps, step_context(tgt, "previous"))
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        runner = PlaybookRunner(store, "rb-same", approved=approved)
        result = await runner.run(tgt.steps, step_context(tgt, "previous"))
    finally:
        await store.close()
    assert result.ok, result.error
    assert service_state(aws, CLUSTER, "api")["taskDefinition"] in (arns[1], "api:2")


async def test_a_revision_already_running_is_nothing_to_do(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    tgt = target(tmp_path, "ecs-revision", service="api")
    with pytest.raises(NothingToDo, match="already on api:3: nothing to roll back"):
        await plan(tgt.steps, step_context(tgt, "3"))


async def test_an_environment_already_set_is_nothing_to_do(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=1, environment={"WORKERS": "1"})
    tgt = target(tmp_path, "ecs-env-override", service="api", environment="{WORKERS: '1'}")
    with pytest.raises(NothingToDo, match="already runs that environment"):
        await plan(tgt.steps, step_context(tgt, "previous"))


async def test_an_image_already_running_is_nothing_to_do(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=2)
    tgt = target(tmp_path, "ecs-image", service="api")
    with pytest.raises(NothingToDo, match=f"already runs image {ECR}/api:v2"):
        await plan(tgt.steps, step_context(tgt, "v2"))


async def test_ecs_image_previous_is_the_image_of_the_revision_before(
    aws: Aws, tmp_path: Path
) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    tgt = target(tmp_path, "ecs-image", service="api")
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    assert f"image='{ECR}/api:v2'" in planned[0].calls[0]
    make_ecs_service(aws, CLUSTER, "solo", "solo", revisions=1)
    solo = target(tmp_path, "ecs-image", service="solo")
    with pytest.raises(RequestRefused, match="ecs-image needs `to TAG`"):
        await plan(solo.steps, step_context(solo, "previous"))


@pytest.fixture
def gh(github_api: FakeGitHub) -> FakeGitHub:
    github_api.add_repo(REPO)
    github_api.add_workflow(REPO, "deploy-prod.yml")
    return github_api


async def test_github_previous_already_live_is_nothing_to_do(gh: FakeGitHub) -> None:
    gh.add_run(REPO, "deploy-prod.yml", sha("good"), minutes_ago=60)
    gh.add_run(REPO, "deploy-prod.yml", sha("bad"), minutes_ago=30)
    planned = await GitHubResolveRef().run(context(gh))
    assert planned["commit"] == sha("good")
    gh.add_run(REPO, "deploy-prod.yml", sha("good"), minutes_ago=1)  # someone redeployed it
    again = context(gh)
    again.approved = {"": planned}  # GitHubResolveRef() has the empty id
    with pytest.raises(NothingToDo, match=r"already runs \w+, where the approved plan"):
        await GitHubResolveRef().run(again)
    # without an approved plan, the same history is an ordinary rollback one deploy back
    assert (await GitHubResolveRef().run(context(gh)))["commit"] == sha("bad")
