"""RDS snapshot restore (runbook 003) on moto: always into a new instance, the old one only read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.catalog import load_catalog
from bot.store.sqlite import SqliteStore
from playbooks.base import StepContext, StepFailed
from playbooks.runner import PlaybookRunner, plan, step_context
from playbooks.steps.rds import RdsListSnapshots, RdsRestoreSnapshot, RdsWaitAvailable
from tests.testbed.aws import Aws

SOURCE = "replaydash-production-postgres"


def make_database(aws: Aws) -> dict[str, Any]:
    rds = aws.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier=SOURCE,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
    )
    for name in ("before-migration", "nightly"):
        rds.create_db_snapshot(DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier=name)
    return rds.describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]


def context(aws: Aws, ref: str = "previous", **params: Any) -> StepContext:
    return StepContext(
        target="db",
        params={"db_instance": SOURCE, **params},
        ref=ref,
        aws=aws.step_clients(),
        outputs={},
        poll_delay=0.01,
        poll_timeout=5,
    )


def record_operations(ctx: StepContext) -> list[str]:
    """Names of every RDS API operation the steps call from now on."""
    seen: list[str] = []
    client = ctx.aws.client("rds", None)
    client.meta.events.register("before-call.rds", lambda model, **_: seen.append(model.name))
    return seen


async def test_list_picks_the_newest_or_the_named_snapshot(aws: Aws) -> None:
    make_database(aws)
    newest = await RdsListSnapshots().run(context(aws))
    assert newest["snapshot_id"] == "nightly" and newest["source_instance"] == SOURCE
    assert [line.split()[0] for line in newest["available"]][:2] == ["nightly", "before-migration"]
    named = await RdsListSnapshots(snapshot="before-migration").run(context(aws))
    assert named["snapshot_id"] == "before-migration" and named["snapshot_type"] == "manual"
    with pytest.raises(StepFailed, match=r"'last-week' is not an available snapshot .*nightly"):
        await RdsListSnapshots(snapshot="last-week").run(context(aws))
    with pytest.raises(StepFailed, match="DB instance nope was not found"):
        await RdsListSnapshots().run(context(aws, db_instance="nope"))


async def test_restore_makes_a_new_instance_and_never_touches_the_old(aws: Aws) -> None:
    source = make_database(aws)
    ctx = context(aws)
    calls = record_operations(ctx)
    step = RdsRestoreSnapshot(snapshot_id="before-migration")
    out = await step.run(ctx)
    assert out["new_instance_id"] == f"{SOURCE}-restored" and out["already"] is False
    rds = aws.client("rds")
    made = rds.describe_db_instances(DBInstanceIdentifier=f"{SOURCE}-restored")["DBInstances"][0]
    assert made["DBInstanceClass"] == "db.t4g.medium"
    assert [g["VpcSecurityGroupId"] for g in made["VpcSecurityGroups"]] == [
        g["VpcSecurityGroupId"] for g in source["VpcSecurityGroups"]
    ]
    tag_list = rds.list_tags_for_resource(ResourceName=made["DBInstanceArn"])["TagList"]
    assert {"Key": "rollbot:restored-from", "Value": "before-migration"} in tag_list
    again = await step.run(ctx)  # a second run finds its own instance
    assert again["already"] is True
    assert (await step.already_done(ctx) or {})["resumed"] is True
    after = rds.describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]
    moving = "LatestRestorableTime"  # a clock, not a setting
    assert {**after, moving: None} == {**source, moving: None}
    changing = [c for c in calls if not c.startswith(("Describe", "List"))]
    assert changing == ["RestoreDBInstanceFromDBSnapshot"]


async def test_the_instance_in_use_can_never_be_the_target(aws: Aws) -> None:
    make_database(aws)
    for name in (SOURCE, SOURCE.upper()):
        step = RdsRestoreSnapshot(snapshot_id="nightly", new_instance_id=name)
        with pytest.raises(StepFailed, match="always goes to a new instance"):
            await step.run(context(aws))
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier="reporting",
        DBInstanceClass="db.t4g.small",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
    )
    taken = RdsRestoreSnapshot(snapshot_id="nightly", new_instance_id="reporting")
    with pytest.raises(StepFailed, match="reporting already exists and was not restored"):
        await taken.run(context(aws))
    with pytest.raises(StepFailed, match="not a valid DB instance identifier"):
        await RdsRestoreSnapshot(snapshot_id="x", new_instance_id="bad--name").run(context(aws))


async def test_wait_available_gives_the_endpoint(aws: Aws) -> None:
    make_database(aws)
    ctx = context(aws)
    await RdsRestoreSnapshot(snapshot_id="nightly", new_instance_id="db-restored").run(ctx)
    out = await RdsWaitAvailable(db_instance_id="db-restored").run(ctx)
    assert out["status"] == "available" and out["endpoint"].startswith("db-restored.")
    assert out["port"] == 5432
    with pytest.raises(StepFailed, match="db-missing is missing"):
        await RdsWaitAvailable(db_instance_id="db-missing").run(ctx)


async def test_rds_restore_playbook_is_dangerous_and_plans_the_exact_call(
    aws: Aws, tmp_path: Path
) -> None:
    source = make_database(aws)
    entry = {
        "playbook": "rds-restore",
        "db_instance": SOURCE,
        "region": "eu-central-1",
        "restored_instance_id": "prod-restored-0224",
        "poll_delay": 0.01,
    }
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"db": entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    tgt = load_catalog(tmp_path / "rollbot.yml").targets["db"]
    assert tgt.playbook.spec.dangerous is True

    planned = await plan(tgt.steps, step_context(tgt, "before-migration"))
    group = source["VpcSecurityGroups"][0]["VpcSecurityGroupId"]
    assert planned[1].calls[1] == (
        "rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier='prod-restored-0224',"
        " DBSnapshotIdentifier='before-migration', DBInstanceClass='db.t4g.medium',"
        f" MultiAZ=False, PubliclyAccessible=False, VpcSecurityGroupIds=['{group}'])"
    )
    assert "at most 2700s" in planned[2].calls[0]

    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        result = await PlaybookRunner(store, "rb-db").run(
            tgt.steps, step_context(tgt, "before-migration")
        )
    finally:
        await store.close()
    assert result.ok, result.error
    assert result.steps[2].output["instance_id"] == "prod-restored-0224"
    assert "separate, deliberate change" in result.steps[2].output["summary"]
