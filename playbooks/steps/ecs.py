"""ECS steps of runbooks 001 and 003: find the revision to go back to, deploy it, wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from playbooks.base import StepContext, StepFailed, register_step
from playbooks.steps.ecs_taskdef import _EcsStep


def family_and_revision(task_definition: str) -> tuple[str, int]:
    """'arn:...:task-definition/api:7' or 'api:7' -> ('api', 7)."""
    tail = task_definition.rsplit("/", 1)[-1]
    family, _, revision = tail.rpartition(":")
    if not family or not revision.isdigit():
        raise StepFailed(f"{task_definition!r} does not name a task-definition revision")
    return family, int(revision)


@register_step
class EcsResolveRevision(_EcsStep):
    """Which revision to roll back to: `previous`, a revision number, or family:revision."""

    type: Literal["ecs.resolve_revision"] = "ecs.resolve_revision"
    ref: str | None = None  # default: the ref of the request

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Find the revision to roll back to"

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        return [
            f"ecs.describe_services(cluster={cluster!r}, services=[{service!r}])",
            "ecs.list_task_definitions(familyPrefix=<family>, status='ACTIVE')",
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        state = await self.service_state(ctx)
        current = state["taskDefinition"]
        family, current_rev = family_and_revision(current)
        active = await self._active_revisions(ctx, family)
        target_rev = self._choose(self.ref or ctx.ref, state, family, current_rev, active)
        described = await self.call(
            ctx, "describe_task_definition", taskDefinition=f"{family}:{target_rev}"
        )
        taskdef = described["taskDefinition"]
        return {
            "cluster": self.names(ctx)[0],
            "service": state["serviceName"],
            "current_task_definition": current,
            "current_revision": current_rev,
            "target_task_definition": taskdef["taskDefinitionArn"],
            "target_revision": target_rev,
            "target_images": [c.get("image", "") for c in taskdef.get("containerDefinitions", [])],
        }

    async def _active_revisions(self, ctx: StepContext, family: str) -> list[int]:
        # Sorted here: some ECS implementations ignore sort=DESC and maxResults.
        paginator = self.ecs(ctx).get_paginator("list_task_definitions")

        def collect() -> list[str]:
            arns: list[str] = []
            for page in paginator.paginate(familyPrefix=family, status="ACTIVE"):
                arns += page.get("taskDefinitionArns", [])
            return arns

        try:
            arns = await asyncio.to_thread(collect)
        except Exception as exc:
            from playbooks.steps.ecs_taskdef import aws_failure

            raise aws_failure("ecs.list_task_definitions", exc) from None
        revisions = {family_and_revision(a)[1] for a in arns if family_and_revision(a)[0] == family}
        return sorted(revisions)

    def _choose(
        self, ref: str, state: dict[str, Any], family: str, current: int, active: list[int]
    ) -> int:
        if ref in ("previous", ""):
            return self._previous(state, family, current, active)
        wanted = family_and_revision(ref)[1] if ":" in ref else (int(ref) if ref.isdigit() else 0)
        if (
            wanted
            and (":" not in ref or family_and_revision(ref)[0] == family)
            and wanted in active
        ):
            return wanted
        shown = ", ".join(map(str, active[-10:])) or "none"
        raise StepFailed(
            f"revision {ref!r} of {family} is not an ACTIVE task definition (available: {shown})"
        )

    def _previous(self, state: dict[str, Any], family: str, current: int, active: list[int]) -> int:
        """What ran before: an older deployment still listed, else the newest older ACTIVE one."""
        for deployment in state.get("deployments", []):
            fam, rev = family_and_revision(deployment.get("taskDefinition", ""))
            if deployment.get("status") != "PRIMARY" and fam == family and rev != current:
                return rev
        older = [r for r in active if r < current]
        if not older:
            raise StepFailed(f"no ACTIVE revision of {family} older than {current} to go back to")
        return older[-1]


@register_step
class EcsUpdateService(_EcsStep):
    """Deploy a task definition (runbook: aws ecs update-service --force-new-deployment)."""

    type: Literal["ecs.update_service"] = "ecs.update_service"
    task_definition: str | None = None

    mutating: ClassVar[bool] = True
    can_check_done: ClassVar[bool] = True
    summary: ClassVar[str] = "Update the service to the target revision"

    def _target(self) -> str:
        if not self.task_definition:
            raise StepFailed("ecs.update_service needs a task_definition")
        return self.task_definition

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        return [
            f"ecs.update_service(cluster={cluster!r}, service={service!r}, "
            f"taskDefinition={self.task_definition!r}, forceNewDeployment=True)"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        cluster, service = self.names(ctx)
        before = (await self.service_state(ctx))["taskDefinition"]
        await self.call(
            ctx,
            "update_service",
            cluster=cluster,
            service=service,
            taskDefinition=self._target(),
            forceNewDeployment=True,
        )
        return {"service": service, "task_definition": self._target(), "previous": before}

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        state = await self.service_state(ctx)
        # compare by family and revision: the service may report a short name or a full ARN
        if family_and_revision(state["taskDefinition"]) != family_and_revision(self._target()):
            return None
        return {"service": state["serviceName"], "task_definition": self._target(), "resumed": True}


@register_step
class EcsWaitStable(_EcsStep):
    """Wait until the rollout is over: one PRIMARY deployment, running == desired."""

    type: Literal["ecs.wait_stable"] = "ecs.wait_stable"
    task_definition: str | None = None  # when set, the PRIMARY deployment must run it
    delay: float | None = None
    timeout: float | None = None

    summary: ClassVar[str] = "Wait for the service to be stable"

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        return [
            f"ecs.describe_services(cluster={cluster!r}, services=[{service!r}]) every "
            f"{self.delay or ctx.poll_delay:g}s until stable (at most "
            f"{self.timeout or ctx.poll_timeout:g}s)"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        delay, timeout = self.delay or ctx.poll_delay, self.timeout or ctx.poll_timeout
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            polls += 1
            state = await self.service_state(ctx)
            problem = self._unstable(state)
            if problem is None:
                return {
                    "service": state["serviceName"],
                    "running": state.get("runningCount"),
                    "desired": state.get("desiredCount"),
                    "polls": polls,
                    "task_definition": state["taskDefinition"],
                }
            if time.monotonic() + delay > deadline:
                raise StepFailed(
                    f"not stable after {timeout:g}s: {problem}",
                    {"polls": polls, "last_seen": problem},
                )
            await asyncio.sleep(delay)

    def _unstable(self, state: dict[str, Any]) -> str | None:
        deployments = state.get("deployments", [])
        primary = [d for d in deployments if d.get("status") == "PRIMARY"]
        running, desired = state.get("runningCount"), state.get("desiredCount")
        if len(deployments) > 1:
            return f"{len(deployments)} deployments still active"
        if len(primary) != 1:
            return "no PRIMARY deployment"
        rollout = primary[0].get("rolloutState")
        if rollout == "FAILED":
            raise StepFailed(f"the deployment failed: {primary[0].get('rolloutStateReason', '')}")
        if rollout not in (None, "COMPLETED"):
            return f"rollout {rollout}, {running}/{desired} running"
        if running != desired:
            return f"{running}/{desired} tasks running"
        if self.task_definition and family_and_revision(
            state["taskDefinition"]
        ) != family_and_revision(self.task_definition):
            return f"service runs {state['taskDefinition']}, not {self.task_definition}"
        return None
