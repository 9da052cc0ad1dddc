"""Every AWS step calls only the IAM actions it declares in `aws_actions`: each one is run on
moto (plan, run, and the resume check) while the AWS layer records the actions of every call."""

from __future__ import annotations

from typing import Any

import pytest

import playbooks.steps  # noqa: F401  (registers every step type)
from playbooks.aws import AwsStep, iam_action, recording_actions
from playbooks.base import STEP_TYPES, Step, StepContext
from playbooks.steps.alb import AlbMaintenanceOff, AlbMaintenanceOn
from playbooks.steps.ecs import EcsResolveRevision, EcsUpdateService, EcsWaitStable
from playbooks.steps.ecs_taskdef import EcsRegisterRevision, EcsScaleService
from playbooks.steps.rds import RdsListSnapshots, RdsRestoreSnapshot, RdsWaitAvailable
from tests.playbooks.test_alb import make_listener
from tests.playbooks.test_rds import SOURCE, make_database
from tests.testbed.aws import REGION, Aws, make_ecs_service

CLUSTER = "actions-cluster"
AWS_STEPS = sorted(
    (cls for cls in STEP_TYPES.values() if issubclass(cls, AwsStep)), key=lambda c: c.__name__
)


def context(aws: Aws, **params: Any) -> StepContext:
    return StepContext(
        target="api",
        params={"region": REGION, **params},
        aws=aws.step_clients(),
        poll_delay=0.01,
        poll_timeout=5,
    )


async def used(step: Step, ctx: StepContext, resume: bool = True) -> set[str]:
    """The IAM actions of everything the step does: plan, run and the resume check."""
    with recording_actions() as called:
        await step.plan(ctx)
        ctx.outputs[step.type] = await step.run(ctx)
        if resume:
            await step.already_done(ctx)
    return called


def check(step: AwsStep, called: set[str], declared: tuple[str, ...] | None = None) -> None:
    assert called, f"{step.type}: no AWS call was recorded"
    undeclared = called - set(step.aws_actions if declared is None else declared)
    assert not undeclared, f"{step.type} calls {sorted(undeclared)} without declaring them"


def test_every_aws_step_declares_actions_of_its_own_service() -> None:
    assert {c.__name__ for c in AWS_STEPS} >= {
        "EcsResolveRevision",
        "EcsUpdateService",
        "EcsWaitStable",
        "EcsRegisterRevision",
        "EcsScaleService",
        "AlbMaintenanceOn",
        "AlbMaintenanceOff",
        "RdsListSnapshots",
        "RdsRestoreSnapshot",
        "RdsWaitAvailable",
    }
    for cls in AWS_STEPS:
        own = iam_action(cls.service_name, "")
        assert cls.aws_actions, f"{cls.__name__} declares no AWS actions"
        assert all(":" in a and "*" not in a for a in cls.aws_actions), cls.__name__
        assert any(a.startswith(own) for a in cls.aws_actions), cls.__name__


async def test_ecs_steps_call_only_what_they_declare(aws: Aws) -> None:
    arns = make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    ctx = context(aws, cluster=CLUSTER, service="api")
    steps: list[AwsStep] = [
        EcsResolveRevision(),
        EcsRegisterRevision(environment={"MODE": "single"}),
        EcsUpdateService(task_definition=arns[1]),
        EcsWaitStable(task_definition=arns[1]),
        EcsScaleService(desired_count=2),
    ]
    for step in steps:
        check(step, await used(step, ctx))


async def test_alb_steps_call_only_what_they_declare(aws: Aws) -> None:
    arns = make_listener(aws, with_rule=True)
    ctx = context(aws, listener_arn=arns["listener"])
    on = AlbMaintenanceOn()
    check(on, await used(on, ctx))
    saved = ctx.outputs[on.type]["saved_actions"]
    check(on, await used(on, ctx))  # already in maintenance: reads the saved tag instead
    # without `use`: the target group comes from the listener's tag, which run() then removes
    off = AlbMaintenanceOff()
    check(off, await used(off, ctx, resume=False))
    check(off, await used(AlbMaintenanceOff(restore_actions=saved), ctx))


async def test_rds_steps_call_only_what_they_declare(aws: Aws) -> None:
    make_database(aws)
    ctx = context(aws, db_instance=SOURCE)
    listed = RdsListSnapshots()
    check(listed, await used(listed, ctx))
    restore = RdsRestoreSnapshot(snapshot_id=ctx.outputs[listed.type]["snapshot_id"])
    check(restore, await used(restore, ctx))
    wait = RdsWaitAvailable(db_instance_id=ctx.outputs[restore.type]["new_instance_id"])
    check(wait, await used(wait, ctx))


@pytest.mark.parametrize("action", ["ecs:DescribeServices", "ecs:UpdateService"])
async def test_an_undeclared_action_is_caught(aws: Aws, action: str) -> None:
    """The check itself can fail: a step declaring less than it calls is reported."""
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=2)
    step = EcsScaleService(desired_count=1)
    called = await used(step, context(aws, cluster=CLUSTER, service="api"))
    assert action in called
    fewer = tuple(a for a in step.aws_actions if a != action)
    with pytest.raises(AssertionError, match=action):
        check(step, called, fewer)
