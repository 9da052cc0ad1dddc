"""What every ECS step shares: the base class on one service (with ECS's own error sentences
and revision look-ups) and the parsing of task-definition names."""

from __future__ import annotations

from typing import Any, ClassVar

from playbooks.aws import AwsError, AwsStep
from playbooks.base import StepContext, StepFailed


def family_and_revision(task_definition: str) -> tuple[str, int]:
    """'arn:...:task-definition/api:7' or 'api:7' -> ('api', 7)."""
    tail = task_definition.rsplit("/", 1)[-1]
    family, _, revision = tail.rpartition(":")
    if not family or not revision.isdigit():
        raise StepFailed(f"{task_definition!r} does not name a task-definition revision")
    return family, int(revision)


def short_name(task_definition: str) -> str:
    """'arn:...:task-definition/api:7' -> 'api:7', for messages people read."""
    return task_definition.rsplit("/", 1)[-1]


def same_revision(a: str | None, b: str | None) -> bool:
    """Compare by family and revision: ECS may report an ARN or the short name it was given."""
    if not a or not b:
        return False
    try:
        return family_and_revision(a) == family_and_revision(b)
    except StepFailed:
        return a == b


class _EcsStep(AwsStep):
    """An ECS step on one service (the target's cluster and service unless set on the step)."""

    cluster: str | None = None
    service: str | None = None

    service_name: ClassVar[str] = "ecs"

    def names(self, ctx: StepContext) -> tuple[str, str]:
        cluster = self.cluster or ctx.param("cluster")
        service = self.service or ctx.param("service")
        if not cluster or not service:
            raise StepFailed(f"{self.type} needs a cluster and a service")
        return cluster, service

    def hints(self, ctx: StepContext) -> dict[str, str]:
        cluster = self.cluster or ctx.param("cluster") or ""
        service = self.service or ctx.param("service") or ""
        region = self.region_name(ctx)
        return {
            "ClusterNotFoundException": (
                f"ECS cluster {cluster!r} was not found in {region} (check the target's cluster)"
            ),
            "ServiceNotFoundException": (
                f"service {service!r} not found in cluster {cluster!r} ({region})"
            ),
            "ServiceNotActiveException": (
                f"service {service!r} in cluster {cluster!r} is not active (it is being deleted)"
            ),
        }

    async def service_state(self, ctx: StepContext) -> dict[str, Any]:
        cluster, service = self.names(ctx)
        found = await self.call(ctx, "describe_services", cluster=cluster, services=[service])
        live = [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]
        if not live:
            raise StepFailed(f"service {service!r} not found in cluster {cluster!r}")
        return live[0]

    async def describe_revision(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        """describe_task_definition, or None when no such revision exists."""
        try:
            found = await self.call(ctx, "describe_task_definition", taskDefinition=name)
        except AwsError as exc:
            # ECS answers a missing revision with a generic ClientException
            if exc.code == "ClientException":
                return None
            raise
        return found["taskDefinition"]

    async def active_revisions(self, ctx: StepContext, family: str) -> list[int]:
        """ACTIVE revision numbers of `family`, ascending. Sorted and filtered here: ECS
        look-alikes such as moto ignore sort= and maxResults=."""
        arns = await self.paginate(
            ctx, "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE"
        )
        parsed = [family_and_revision(arn) for arn in arns]
        return sorted({rev for fam, rev in parsed if fam == family})
