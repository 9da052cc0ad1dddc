"""ECS steps of runbooks 001 and 003: find the revision to go back to, deploy it, wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks import changes
from playbooks.base import ChangeStep, NothingToDo, StepContext, StepFailed, world
from playbooks.steps.ecs_common import _EcsStep, family_and_revision, same_revision, short_name

PREVIOUS = ("previous", "prev", "")
SHOWN_REVISIONS = 10  # the "available" list in error messages: the newest ones


def _images(taskdef: dict[str, Any]) -> list[str]:
    return [c.get("image", "") for c in taskdef.get("containerDefinitions", [])]


class EcsResolveRevision(_EcsStep):
    """Which revision to roll back to: `previous`, a revision number, family:revision or an ARN."""

    type: Literal["ecs.resolve_revision"] = "ecs.resolve_revision"
    ref: str | None = None  # default: the ref of the request
    # the service already on the revision to go to means the whole request is a no-op
    # (false where the playbook does more than this one service's revision)
    stop_when_current: bool = True

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Find the revision to roll back to"
    aws_actions: ClassVar[tuple[str, ...]] = (
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:ListTaskDefinitions",
    )

    def _ref(self, ctx: StepContext) -> str:
        return (self.ref if self.ref is not None else ctx.ref or "").strip()

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        ref = self._ref(ctx)
        calls = [f"ecs.describe_services(cluster={cluster!r}, services=[{service!r}])"]
        if ref.lower() in PREVIOUS:
            calls.append(
                "ecs.list_task_definitions(familyPrefix=<family of the current revision>,"
                " status='ACTIVE') unless an older deployment is still active"
            )
            target = "<previous revision>"
        else:
            target = ref if ":" in ref else f"<family>:{ref}"
        calls.append(f"ecs.describe_task_definition(taskDefinition={target!r})")
        return calls

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        cluster = self.names(ctx)[0]
        state = await self.service_state(ctx)
        family, current_rev = family_and_revision(state["taskDefinition"])
        self._stop_if_approved_reached(ctx, state["serviceName"], family, current_rev)
        current = await self.describe_revision(ctx, state["taskDefinition"])
        ref = self._ref(ctx)
        if ref.lower() in PREVIOUS:
            target, source = await self.previous_revision(ctx, state, family, current_rev)
        else:
            target, source = await self._explicit(ctx, ref, family), "requested"
        if self.stop_when_current and target["revision"] == current_rev:
            raise NothingToDo(
                f"{state['serviceName']} is already on {family}:{current_rev}: nothing to roll back"
            )
        current_arn = current["taskDefinitionArn"] if current else state["taskDefinition"]
        return {
            "cluster": cluster,
            "service": state["serviceName"],
            "family": family,
            "current_task_definition": current_arn,
            "current_revision": current_rev,
            "current_images": _images(current or {}),
            "target_task_definition": target["taskDefinitionArn"],
            "target_revision": target["revision"],
            "target_images": _images(target),
            "source": source,
            "same_as_current": target["revision"] == current_rev,
            **world(state["serviceName"], f"{family}:{current_rev}"),
            "summary": (
                f"{state['serviceName']}: {family}:{current_rev} -> {family}:{target['revision']}"
                f" ({', '.join(_images(target))})"
            ),
        }

    def _stop_if_approved_reached(
        self, ctx: StepContext, service: str, family: str, current: int
    ) -> None:
        """Re-planned before a run: the service already where the approved plan led."""
        approved = ctx.approved.get(self.id) or {}
        if not self.stop_when_current or approved.get("family") != family:
            return
        if approved.get("target_revision") == current:
            raise NothingToDo(
                f"{service} is already on {family}:{current}, where the approved plan was to"
                " take it: nothing to do"
            )

    async def previous_revision(
        self, ctx: StepContext, state: dict[str, Any], family: str, current: int
    ) -> tuple[dict[str, Any], str]:
        """What ran before: an older deployment still active, else the newest older ACTIVE one."""
        older_deployments = sorted(
            (
                d
                for d in state.get("deployments", [])
                if d.get("status") == "ACTIVE"
                # a failed rollout still draining is not a state to go back to
                and d.get("rolloutState") != "FAILED"
                and not same_revision(d.get("taskDefinition"), state["taskDefinition"])
            ),
            key=_created,
            reverse=True,
        )
        for deployment in older_deployments:
            taskdef = await self.describe_revision(ctx, deployment["taskDefinition"])
            if taskdef and taskdef.get("status") == "ACTIVE":
                return taskdef, "deployment"
        active = await self.active_revisions(ctx, family)
        older = [r for r in active if r < current]
        if not older:
            raise StepFailed(
                f"no ACTIVE revision of {family} older than {current} to go back to"
                f" (ACTIVE: {_shown(active)})"
            )
        taskdef = await self.describe_revision(ctx, f"{family}:{older[-1]}")
        if taskdef is None:  # deregistered between the two calls
            raise StepFailed(f"{family}:{older[-1]} disappeared while resolving; try again")
        return taskdef, "history"

    async def _explicit(self, ctx: StepContext, ref: str, family: str) -> dict[str, Any]:
        if ref.isdigit():
            wanted = f"{family}:{int(ref)}"
        elif ":" in ref:
            try:
                ref_family, revision = family_and_revision(ref)
            except StepFailed:
                raise StepFailed(_not_a_revision(ref)) from None
            if ref_family != family:
                raise StepFailed(
                    f"{short_name(ref)} is not a revision of {family}, the family the service runs"
                )
            wanted = f"{family}:{revision}"
        else:
            raise StepFailed(_not_a_revision(ref))
        taskdef = await self.describe_revision(ctx, wanted)
        if taskdef is not None and taskdef.get("status") == "ACTIVE":
            return taskdef
        gone = ", it was deregistered" if taskdef is not None else ""
        active = await self.active_revisions(ctx, family)
        raise StepFailed(
            f"revision {ref!r} of {family} is not an ACTIVE task definition{gone}"
            f" (available: {_shown(active)})"
        )


def _described(resolved: dict[str, Any], which: str) -> dict[str, Any]:
    """A resolve step's output as the part of a task definition a change sentence shows."""
    images = resolved[f"{which}_images"]
    return {
        "family": resolved["family"],
        "revision": resolved[f"{which}_revision"],
        "containerDefinitions": [{"image": image} for image in images],
    }


def _created(deployment: dict[str, Any]) -> float:
    created = deployment.get("createdAt")
    return created.timestamp() if hasattr(created, "timestamp") else 0.0


def _not_a_revision(ref: str) -> str:
    return (
        f"{ref!r} is not a task-definition revision:"
        " use previous, a number like 7, family:7 or a task-definition ARN"
    )


def _shown(revisions: list[int]) -> str:
    if not revisions:
        return "none"
    newest = revisions[-SHOWN_REVISIONS:]
    more = "..., " if len(revisions) > len(newest) else ""
    return more + ", ".join(map(str, newest))


class EcsUpdateService(_EcsStep, ChangeStep):
    """Deploy a task definition (runbook: aws ecs update-service --force-new-deployment)."""

    type: Literal["ecs.update_service"] = "ecs.update_service"
    task_definition: str | None = None

    summary: ClassVar[str] = "Update the service to the target revision"
    aws_actions: ClassVar[tuple[str, ...]] = ("ecs:DescribeServices", "ecs:UpdateService")

    def _target(self) -> str:
        if not self.task_definition:
            raise StepFailed(f"{self.type} needs a task_definition (or use: from a resolve step)")
        return self.task_definition

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        return [
            f"ecs.update_service(cluster={cluster!r}, service={service!r}, "
            f"taskDefinition={self._target()!r}, forceNewDeployment=True)"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        cluster, service = self.names(ctx)
        target = self._target()
        before = (await self.service_state(ctx))["taskDefinition"]
        answer = await self.call(
            ctx,
            "update_service",
            cluster=cluster,
            service=service,
            taskDefinition=target,
            forceNewDeployment=True,
        )
        return self._output(ctx, answer["service"], before, resumed=False)

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        state = await self.service_state(ctx)
        if not same_revision(state["taskDefinition"], self._target()):
            return None
        return self._output(ctx, state, "", resumed=True)

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`svc-api: api:42 (image api:v2.3) -> api:41 (image api:v2.2), 2 tasks`"""
        state = await self.service_state(ctx)
        resolved = self._resolved(ctx)
        if resolved is not None:  # the resolve step already described both revisions
            now = _described(resolved, "current")
            target = _described(resolved, "target")
        else:
            now = await self.describe_revision(ctx, state["taskDefinition"])
            target = await self.describe_revision(ctx, self._target())
            if now is None or target is None:
                return None
        tasks = state.get("desiredCount", 0)
        return (
            f"{state['serviceName']}: {changes.revision(now)} -> {changes.revision(target)},"
            f" {tasks} task{'s' if tasks != 1 else ''}"
        )

    def _resolved(self, ctx: StepContext) -> dict[str, Any] | None:
        return next(
            (
                out
                for out in ctx.outputs.values()
                if out.get("target_task_definition") == self.task_definition
                and "current_images" in out
            ),
            None,
        )

    def _output(
        self, ctx: StepContext, state: dict[str, Any], before: str, resumed: bool
    ) -> dict[str, Any]:
        primary = next((d for d in state.get("deployments", []) if d["status"] == "PRIMARY"), {})
        target = self._target()
        was = f" (was {short_name(before)})" if before else ""
        return {
            "cluster": self.names(ctx)[0],
            "service": state["serviceName"],
            "task_definition": target,
            "previous_task_definition": before,
            "deployment_id": primary.get("id", ""),
            "resumed": resumed,
            "summary": f"{state['serviceName']} deploying {short_name(target)}{was}",
        }


class EcsWaitStable(_EcsStep):
    """Wait until the rollout is over: one PRIMARY deployment on the target, running == desired,
    rollout COMPLETED (when ECS reports a rollout state)."""

    type: Literal["ecs.wait_stable"] = "ecs.wait_stable"
    task_definition: str | None = None  # when set, the service must have settled on it
    delay: float | None = Field(default=None, gt=0)  # default: the target's poll_delay
    timeout: float | None = Field(default=None, gt=0)  # default: the target's poll_timeout

    summary: ClassVar[str] = "Wait for the service to be stable"
    aws_actions: ClassVar[tuple[str, ...]] = ("ecs:DescribeServices",)

    def _timing(self, ctx: StepContext) -> tuple[float, float]:
        return self.delay or ctx.poll_delay, self.timeout or ctx.poll_timeout

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        delay, timeout = self._timing(ctx)
        on = f" on taskDefinition={self.task_definition!r}" if self.task_definition else ""
        return [
            f"ecs.describe_services(cluster={cluster!r}, services=[{service!r}]) every {delay:g}s"
            f" until services_stable{on} and rollout COMPLETED, at most {timeout:g}s"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        # botocore's services_stable waiter would sleep in a thread that cannot be cancelled
        # (a cancelled rollback or SIGTERM would wait for it); its acceptors are applied here
        # to each answer instead, between sleeps on the event loop.
        cluster, service = self.names(ctx)
        delay, timeout = self._timing(ctx)
        acceptors = self._acceptors(ctx)
        started = time.monotonic()
        polls = 0
        while True:
            polls += 1
            answer = await self.call(ctx, "describe_services", cluster=cluster, services=[service])
            verdict = next((a.state for a in acceptors if a.matcher_func(answer)), "retry")
            state = (answer.get("services") or [{}])[0]
            if verdict == "failure":
                raise StepFailed(_gone(answer, cluster, service), {"polls": polls})
            waiting = self._waiting_for(state, verdict == "success")
            if waiting is None:
                return self._output(state, polls, time.monotonic() - started)
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                seen = describe_service(state)
                raise StepFailed(
                    f"{service} not stable after {timeout:g}s: waiting for {waiting}; last seen:"
                    f" {seen}",
                    {"polls": polls, "last_seen": seen},
                )
            await asyncio.sleep(min(delay, remaining))

    def _acceptors(self, ctx: StepContext) -> list[Any]:
        return self.waiter_acceptors(ctx, "services_stable", "describe_services")

    def _waiting_for(self, state: dict[str, Any], stable: bool) -> str | None:
        """What the rollout still lacks, None when done; StepFailed when it cannot finish."""
        deployments = state.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        self._check_not_failed(state, deployments)
        if not stable or not primary:
            return f"one deployment with {state.get('desiredCount')} of its tasks running"
        rollout = primary.get("rolloutState")
        # ECS without rollout states (and older APIs): one deployment, running == desired is done
        if rollout not in (None, "COMPLETED"):
            return f"the rollout to complete (now {rollout})"
        target = self.task_definition
        if target and not same_revision(state["taskDefinition"], target):
            raise StepFailed(
                f"{state['serviceName']} settled on {short_name(state['taskDefinition'])},"
                f" not {short_name(target)}: another deployment or a circuit"
                " breaker rollback replaced it",
                {"last_seen": describe_service(state)},
            )
        return None

    def _check_not_failed(self, state: dict[str, Any], deployments: list[dict[str, Any]]) -> None:
        for d in deployments:
            ours = d.get("status") == "PRIMARY" or same_revision(
                d.get("taskDefinition"), self.task_definition
            )
            if ours and d.get("rolloutState") == "FAILED":
                reason = d.get("rolloutStateReason") or "no reason given"
                raise StepFailed(
                    f"the deployment of {short_name(d.get('taskDefinition', '?'))} to"
                    f" {state['serviceName']} FAILED: {reason}",
                    {"last_seen": describe_service(state)},
                )

    def _output(self, state: dict[str, Any], polls: int, waited: float) -> dict[str, Any]:
        primary = next(d for d in state["deployments"] if d.get("status") == "PRIMARY")
        return {
            "service": state["serviceName"],
            "task_definition": state["taskDefinition"],
            "revision": family_and_revision(state["taskDefinition"])[1],
            "running": state.get("runningCount"),
            "desired": state.get("desiredCount"),
            "rollout_state": primary.get("rolloutState"),
            "polls": polls,
            "waited_seconds": round(waited, 2),
            "summary": (
                f"{state['serviceName']} stable on {short_name(state['taskDefinition'])},"
                f" {state.get('runningCount')}/{state.get('desiredCount')} running"
            ),
        }


def describe_service(state: dict[str, Any]) -> str:
    """One line on a service's rollout, e.g. for a timeout message."""
    parts = [
        f"{d.get('status')} {short_name(d.get('taskDefinition', '?'))}"
        f" {d.get('rolloutState', 'no rollout state')}"
        f" {d.get('runningCount')}/{d.get('desiredCount')}"
        for d in state.get("deployments", [])
    ]
    return (
        f"service on {short_name(state.get('taskDefinition', '?'))},"
        f" {state.get('runningCount')}/{state.get('desiredCount')} running,"
        f" deployments: {'; '.join(parts) or 'none'}"
    )


def _gone(answer: dict[str, Any], cluster: str, service: str) -> str:
    services = answer.get("services") or []
    if not services:
        return f"service {service!r} not found in cluster {cluster!r}"
    return f"service {service!r} in cluster {cluster!r} is {services[0].get('status')}"
