"""RDS restore of runbook 003: pick a snapshot, restore it into a NEW instance, wait for it; the
instance in use is only read, and pointing the application at the copy stays a person's call."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks import changes
from playbooks.aws import AwsStep
from playbooks.base import ChangeStep, StepContext, StepFailed

LATEST = ("previous", "prev", "latest", "")
INSTANCE_ID = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")
RESTORED_FROM = "rollbot:restored-from"
SOURCE = "rollbot:source-instance"
FAILED_STATES = {
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
    "inaccessible-encryption-credentials",
    "deleting",
}
SHOWN_SNAPSHOTS = 10


class _RdsStep(AwsStep):
    db_instance: str | None = None  # the instance in use; default: the target's db_instance

    service_name: ClassVar[str] = "rds"

    def source(self, ctx: StepContext) -> str:
        name = self.db_instance or ctx.param("db_instance")
        if not name or not INSTANCE_ID.match(name):
            raise StepFailed(f"{name!r} is not a DB instance identifier: set db_instance")
        return name

    def hints(self, ctx: StepContext) -> dict[str, str]:
        where = self.region_name(ctx)
        meanings = {
            "DBInstanceNotFound": f"DB instance {self.db_instance or ctx.param('db_instance')}"
            f" was not found in {where}",
            "DBSnapshotNotFound": f"the snapshot was not found in {where}",
            "InsufficientDBInstanceCapacity": "AWS has no capacity for that instance class here",
            "StorageQuotaExceeded": "the account's RDS storage quota is used up",
            "InstanceQuotaExceeded": "the account's RDS instance quota is used up",
        }
        return {code: f"{meaning} ({code})" for code, meaning in meanings.items()}

    async def instance(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        try:
            found = await self.call(ctx, "describe_db_instances", DBInstanceIdentifier=name)
        except StepFailed as exc:
            if exc.output.get("aws_error") == "DBInstanceNotFound":
                return None
            raise
        return found["DBInstances"][0]


class RdsListSnapshots(_RdsStep):
    """The available snapshots of the instance, newest first; picks the requested one, or the
    newest for `previous`/`latest`."""

    type: Literal["rds.list_snapshots"] = "rds.list_snapshots"
    snapshot: str | None = None  # usually `use: {snapshot: request.ref}`

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Find the snapshot to restore"
    aws_actions: ClassVar[tuple[str, ...]] = ("rds:DescribeDBInstances", "rds:DescribeDBSnapshots")

    async def plan(self, ctx: StepContext) -> list[str]:
        return [f"rds.describe_db_snapshots(DBInstanceIdentifier={self.source(ctx)!r})"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        source = self.source(ctx)
        if await self.instance(ctx, source) is None:
            raise StepFailed(f"DB instance {source} was not found in {self.region_name(ctx)}")
        snapshots = await self._available(ctx, source)
        listed = [_line(s) for s in snapshots[:SHOWN_SNAPSHOTS]]
        wanted = (self.snapshot if self.snapshot is not None else ctx.ref).strip()
        chosen = self._choose(snapshots, wanted, source, listed)
        return {
            "snapshot_id": chosen["DBSnapshotIdentifier"],
            "created": chosen["SnapshotCreateTime"].isoformat(),
            "snapshot_type": chosen.get("SnapshotType", ""),
            "source_instance": source,
            "available": listed,
            "summary": f"{_line(chosen)} of {source}",
        }

    async def _available(self, ctx: StepContext, source: str) -> list[dict[str, Any]]:
        snapshots = await self.paginate(
            ctx, "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=source
        )
        ready = [s for s in snapshots if s.get("Status") == "available"]
        return sorted(ready, key=lambda s: s["SnapshotCreateTime"], reverse=True)

    def _choose(
        self, snapshots: list[dict[str, Any]], wanted: str, source: str, listed: list[str]
    ) -> dict[str, Any]:
        if not snapshots:
            raise StepFailed(f"{source} has no available snapshot to restore")
        if wanted.lower() in LATEST:
            return snapshots[0]
        # automated snapshots are called rds:NAME; accept NAME alone as well
        for s in snapshots:
            if s["DBSnapshotIdentifier"] in (wanted, f"rds:{wanted}"):
                return s
        raise StepFailed(
            f"{wanted!r} is not an available snapshot of {source}; newest: {'; '.join(listed)}"
        )


def _line(snapshot: dict[str, Any]) -> str:
    created = snapshot["SnapshotCreateTime"].strftime("%Y-%m-%d %H:%M UTC%z").replace("+0000", "")
    return f"{snapshot['DBSnapshotIdentifier']} ({snapshot.get('SnapshotType', '?')}, {created})"


class RdsRestoreSnapshot(_RdsStep, ChangeStep):
    """restore_db_instance_from_db_snapshot into a NEW instance, with the network settings of
    the instance in use; refuses any identifier that names an existing instance it did not
    restore itself, so the instance in use can never be the target."""

    type: Literal["rds.restore_snapshot"] = "rds.restore_snapshot"
    snapshot_id: str | None = None  # `use: {snapshot_id: snapshots.snapshot_id}`
    new_instance_id: str | None = None  # default: restored_instance_id, else SOURCE-restored
    instance_class: str | None = None  # default: the target's instance_class, else the source's
    multi_az: bool | None = None  # default: the target's multi_az, else the source's
    publicly_accessible: bool = False

    summary: ClassVar[str] = "Restore the snapshot into a new DB instance"
    # rds:AddTagsToResource: the restore call tags the new instance with where it came from
    aws_actions: ClassVar[tuple[str, ...]] = (
        "rds:DescribeDBInstances",
        "rds:ListTagsForResource",
        "rds:RestoreDBInstanceFromDBSnapshot",
        "rds:AddTagsToResource",
    )

    def new_id(self, ctx: StepContext) -> str:
        source = self.source(ctx)
        new = self.new_instance_id or ctx.param("restored_instance_id") or f"{source}-restored"
        if not INSTANCE_ID.match(new):
            raise StepFailed(f"{new!r} is not a valid DB instance identifier")
        # RDS identifiers are case-insensitive: "Prod-DB" is the instance "prod-db"
        if new.lower() == source.lower():
            raise StepFailed(
                f"the restored instance would be {new}, the instance in use: a restore always"
                " goes to a new instance (set restored_instance_id)"
            )
        return new

    def _snapshot(self) -> str:
        if not self.snapshot_id:
            raise StepFailed("no snapshot to restore: `use` a rds.list_snapshots step")
        return self.snapshot_id

    async def request(self, ctx: StepContext) -> dict[str, Any]:
        """The exact restore call, settings copied from the instance in use."""
        source = self.source(ctx)
        src = await self.instance(ctx, source)
        if src is None:
            raise StepFailed(f"DB instance {source} was not found in {self.region_name(ctx)}")
        multi_az = self.multi_az if self.multi_az is not None else ctx.param("multi_az")
        call: dict[str, Any] = {
            "DBInstanceIdentifier": self.new_id(ctx),
            "DBSnapshotIdentifier": self.snapshot_id or "<snapshot>",
            "DBInstanceClass": self.instance_class
            or ctx.param("instance_class")
            or src["DBInstanceClass"],
            "MultiAZ": bool(src.get("MultiAZ")) if multi_az is None else bool(multi_az),
            "PubliclyAccessible": self.publicly_accessible,
        }
        groups = [g["VpcSecurityGroupId"] for g in src.get("VpcSecurityGroups", [])]
        if groups:
            call["VpcSecurityGroupIds"] = groups
        subnet_group = (src.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        if subnet_group:
            call["DBSubnetGroupName"] = subnet_group
        return call

    async def plan(self, ctx: StepContext) -> list[str]:
        call = await self.request(ctx)
        args = ", ".join(f"{k}={v!r}" for k, v in call.items())
        return [
            f"rds.describe_db_instances(DBInstanceIdentifier={call['DBInstanceIdentifier']!r})"
            " -> must not exist yet",
            f"rds.restore_db_instance_from_db_snapshot({args})",
        ]

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`new instance replaydash-restored from snapshot of 2026-11-20 03:00 (replaydash kept)`"""
        snapshot = self._snapshot()
        made = next(
            (o.get("created") for o in ctx.outputs.values() if o.get("snapshot_id") == snapshot),
            None,
        )
        when = changes.minute(dt.datetime.fromisoformat(made)) if made else snapshot
        return (
            f"new instance `{self.new_id(ctx)}` from snapshot of {when}"
            f" (`{self.source(ctx)}` stays as it is)"
        )

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        snapshot = self._snapshot()
        call = await self.request(ctx)
        new = call["DBInstanceIdentifier"]
        existing = await self._ours(ctx, new, snapshot)
        if existing is not None:
            return existing
        call["Tags"] = [
            {"Key": RESTORED_FROM, "Value": snapshot},
            {"Key": SOURCE, "Value": self.source(ctx)},
        ]
        made = (await self.call(ctx, "restore_db_instance_from_db_snapshot", **call))["DBInstance"]
        return self._output(made, snapshot, already=False)

    async def _ours(self, ctx: StepContext, new: str, snapshot: str) -> dict[str, Any] | None:
        """An instance already called `new`: ours from this snapshot (done), or refused."""
        found = await self.instance(ctx, new)
        if found is None:
            return None
        tags = await self.call(ctx, "list_tags_for_resource", ResourceName=found["DBInstanceArn"])
        restored_from = {t["Key"]: t["Value"] for t in tags.get("TagList", [])}.get(RESTORED_FROM)
        if restored_from != snapshot:
            raise StepFailed(
                f"DB instance {new} already exists and was not restored from {snapshot} by"
                " Rollbot; it is left alone (choose another restored_instance_id)"
            )
        return self._output(found, snapshot, already=True)

    def _output(self, db: dict[str, Any], snapshot: str, already: bool) -> dict[str, Any]:
        name = db["DBInstanceIdentifier"]
        return {
            "new_instance_id": name,
            "arn": db.get("DBInstanceArn", ""),
            "status": db.get("DBInstanceStatus", ""),
            "snapshot_id": snapshot,
            "already": already,
            "summary": f"{'found' if already else 'restoring'} {name} from {snapshot}",
        }

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        out = await self._ours(ctx, self.new_id(ctx), self._snapshot())
        return {**out, "resumed": True} if out else None


class RdsWaitAvailable(_RdsStep):
    """Poll until the restored instance is `available`; output its endpoint."""

    type: Literal["rds.wait_available"] = "rds.wait_available"
    db_instance_id: str | None = None  # `use: {db_instance_id: restore.new_instance_id}`
    delay: float | None = Field(default=None, gt=0)  # default: the target's poll_delay
    timeout: float | None = Field(default=None, gt=0)  # default: the target's poll_timeout

    summary: ClassVar[str] = "Wait for the restored instance"
    aws_actions: ClassVar[tuple[str, ...]] = ("rds:DescribeDBInstances",)

    def _name(self, ctx: StepContext) -> str:
        name = self.db_instance_id or ctx.param("restored_instance_id")
        if not name:
            raise StepFailed("no instance to wait for: `use` the restore step's new_instance_id")
        return name

    def _timing(self, ctx: StepContext) -> tuple[float, float]:
        return self.delay or ctx.poll_delay, self.timeout or ctx.poll_timeout

    async def plan(self, ctx: StepContext) -> list[str]:
        delay, timeout = self._timing(ctx)
        return [
            f"rds.describe_db_instances(DBInstanceIdentifier={self._name(ctx)!r}) every"
            f" {delay:g}s until available, at most {timeout:g}s"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        name = self._name(ctx)
        delay, timeout = self._timing(ctx)
        started, polls = time.monotonic(), 0
        while True:
            polls += 1
            db = await self.instance(ctx, name)
            status = db.get("DBInstanceStatus", "") if db else "missing"
            if status == "available":
                return _endpoint(db or {}, polls, time.monotonic() - started)
            if status in FAILED_STATES or db is None:
                raise StepFailed(f"{name} is {status}: the restore did not succeed")
            waited = time.monotonic() - started
            if waited >= timeout:
                raise StepFailed(
                    f"{name} still {status} after {timeout:g}s; the restore goes on in AWS",
                    {"status": status, "polls": polls},
                )
            await asyncio.sleep(min(delay, timeout - waited))


def _endpoint(db: dict[str, Any], polls: int, waited: float) -> dict[str, Any]:
    endpoint = db.get("Endpoint") or {}
    address, port = endpoint.get("Address", ""), endpoint.get("Port")
    return {
        "instance_id": db["DBInstanceIdentifier"],
        "status": "available",
        "endpoint": address,
        "port": port,
        "polls": polls,
        "waited_seconds": round(waited, 2),
        "summary": f"{db['DBInstanceIdentifier']} available at {address}:{port}; pointing the"
        " application at it is a separate, deliberate change",
    }
