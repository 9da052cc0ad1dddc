"""ALB maintenance mode (runbook 003) on moto: a fixed 503 and back to the target group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.catalog import load_catalog
from bot.store.sqlite import SqliteStore
from playbooks.base import StepContext, StepFailed
from playbooks.runner import PlaybookRunner, RunResult, plan, step_context
from playbooks.steps.alb import TAG, AlbMaintenanceOff, AlbMaintenanceOn
from tests.testbed.alb import actions, make_listener
from tests.testbed.aws import Aws


def tags(aws: Aws, listener: str) -> dict[str, str]:
    found = aws.client("elbv2").describe_tags(ResourceArns=[listener])["TagDescriptions"][0]
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def context(aws: Aws, **params: Any) -> StepContext:
    return StepContext(target="web", params=params, aws=aws.step_clients(), outputs={})


async def test_on_then_off_with_the_saved_actions(aws: Aws) -> None:
    arns = make_listener(aws, with_rule=True)
    ctx = context(aws, listener_arn=arns["listener"])
    on = await AlbMaintenanceOn(message="Back at 14:00").run(ctx)
    assert actions(aws, arns["listener"]) == [
        {
            "Type": "fixed-response",
            "FixedResponseConfig": {
                "MessageBody": "Back at 14:00",
                "StatusCode": "503",
                "ContentType": "text/plain",
            },
        }
    ]
    assert on["restore_target_group_arn"] == arns["api"]
    assert tags(aws, arns["listener"]) == {TAG: arns["api"]}
    assert on["rules_still_forwarding"] == [f"priority 10: forward to {arns['spare']}"]
    assert "1 listener rule(s) still forward traffic" in on["summary"]

    off = await AlbMaintenanceOff(restore_actions=on["saved_actions"]).run(ctx)
    assert off["restored"] == f"forward to {arns['api']}" and off["already"] is False
    assert actions(aws, arns["listener"])[0]["TargetGroupArn"] == arns["api"]
    assert tags(aws, arns["listener"]) == {}


async def test_on_twice_keeps_the_real_previous_action(aws: Aws) -> None:
    arns = make_listener(aws)
    ctx = context(aws, listener_arn=arns["listener"])
    await AlbMaintenanceOn().run(ctx)
    again = await AlbMaintenanceOn().run(ctx)
    assert again["already"] is True and again["restore_target_group_arn"] == arns["api"]
    assert again["saved_actions"] == [{"Type": "forward", "TargetGroupArn": arns["api"]}]
    done = await AlbMaintenanceOn().already_done(ctx)
    assert done is not None and done["resumed"] is True


async def test_off_without_a_tag_uses_the_target_parameter(aws: Aws) -> None:
    arns = make_listener(aws)
    # maintenance switched on by hand, as in the runbook: no tag was left
    aws.client("elbv2").modify_listener(
        ListenerArn=arns["listener"],
        DefaultActions=AlbMaintenanceOn().page(),
    )
    with pytest.raises(StepFailed, match="set restore_target_group_arn"):
        await AlbMaintenanceOff().run(context(aws, listener_arn=arns["listener"]))
    ctx = context(aws, listener_arn=arns["listener"], restore_target_group_arn=arns["spare"])
    assert await AlbMaintenanceOff().already_done(ctx) is None
    await AlbMaintenanceOff().run(ctx)
    assert actions(aws, arns["listener"])[0]["TargetGroupArn"] == arns["spare"]
    assert (await AlbMaintenanceOff().already_done(ctx) or {})["resumed"] is True


async def test_off_leaves_a_listener_that_is_not_in_maintenance_alone(aws: Aws) -> None:
    arns = make_listener(aws)
    ctx = context(aws, listener_arn=arns["listener"], restore_target_group_arn=arns["spare"])
    with pytest.raises(StepFailed, match=r"not in maintenance mode \(forward to .*api"):
        await AlbMaintenanceOff().run(ctx)
    assert actions(aws, arns["listener"])[0]["TargetGroupArn"] == arns["api"]


async def test_aws_errors_are_readable(aws: Aws) -> None:
    arns = make_listener(aws)
    missing = arns["listener"][:-4] + "0000"
    with pytest.raises(StepFailed, match=r"listener .*0000 was not found in eu-central-1"):
        await AlbMaintenanceOn().run(context(aws, listener_arn=missing))
    with pytest.raises(StepFailed, match="is not a listener ARN"):
        await AlbMaintenanceOn().plan(context(aws, listener_arn="my-alb"))


def _target(tmp_path: Path, entry: dict[str, Any]) -> Any:
    entry = {"region": "eu-central-1", **entry}
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"web": entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    return load_catalog(tmp_path / "rollbot.yml").targets["web"]


async def _run(tmp_path: Path, playbook: str, rid: str, **params: Any) -> tuple[Any, RunResult]:
    tgt = _target(tmp_path, {"playbook": playbook, **params})
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        return tgt, await PlaybookRunner(store, rid).run(tgt.steps, step_context(tgt, "previous"))
    finally:
        await store.close()


async def test_on_and_off_playbooks_as_two_separate_runs(aws: Aws, tmp_path: Path) -> None:
    arns = make_listener(aws)
    tgt, on = await _run(tmp_path, "alb-maintenance-on", "rb-on", listener_arn=arns["listener"])
    assert on.ok, on.error
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    page = AlbMaintenanceOn().page()
    assert planned[0].calls[1] == (
        f"elbv2.modify_listener(ListenerArn='{arns['listener']}', DefaultActions={page!r})"
    )
    assert actions(aws, arns["listener"])[0]["Type"] == "fixed-response"

    off_catalog = {"playbook": "alb-maintenance-off", "listener_arn": arns["listener"]}
    tgt = _target(tmp_path, off_catalog)
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    forward = [{"Type": "forward", "TargetGroupArn": arns["api"]}]
    assert planned[0].calls[1].endswith(f"DefaultActions={forward!r})")  # from the tag

    _, off = await _run(tmp_path, "alb-maintenance-off", "rb-off", listener_arn=arns["listener"])
    assert off.ok, off.error
    assert off.steps[0].output["restored"] == f"forward to {arns['api']}"
    assert actions(aws, arns["listener"])[0]["TargetGroupArn"] == arns["api"]
    assert tags(aws, arns["listener"]) == {}
