"""ECS steps that register a changed task-definition revision or change a service's count."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from playbooks import changes
from playbooks.base import ChangeStep, NothingToDo, RequestRefused, StepContext, StepFailed
from playbooks.redact import HIDDEN, SECRET_NAME
from playbooks.steps.ecs import PREVIOUS, EcsResolveRevision
from playbooks.steps.ecs_common import _EcsStep, family_and_revision
from playbooks.steps.ecs_image import image_for
from playbooks.steps.env_changes import shown_changes

# Fields describe_task_definition returns that register_task_definition refuses.
READ_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)


class EcsRegisterRevision(_EcsStep, ChangeStep):
    """New revision of the service's task definition with the image or environment changed."""

    type: Literal["ecs.register_revision"] = "ecs.register_revision"
    container: str | None = None  # default: the target's `container`, else the first one
    # a tag or digest of the container's repository, a full image the target's allowed_images
    # match, or `previous`: the image this container had in the revision that ran before
    image: str | None = None
    environment: dict[str, str] = {}  # variables to set (runbook 000: TORNADO_PROCESSES=1)
    environment_from: str | None = None  # a task definition whose environment to restore
    base_task_definition: str | None = None  # default: what the service runs now
    # the container already as asked (same image, same environment) makes the request a no-op
    stop_when_current: bool = True

    summary: ClassVar[str] = "Register a task-definition revision"
    # iam:PassRole: registering a revision that names a task or execution role passes it on
    aws_actions: ClassVar[tuple[str, ...]] = (
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "iam:PassRole",
    )

    async def _base(self, ctx: StepContext) -> dict[str, Any]:
        arn = self.base_task_definition or (await self.service_state(ctx))["taskDefinition"]
        found = await self.call(ctx, "describe_task_definition", taskDefinition=arn)
        return found["taskDefinition"]

    def _container(self, ctx: StepContext, taskdef: dict[str, Any]) -> dict[str, Any]:
        name = self.container or ctx.param("container")
        containers = taskdef.get("containerDefinitions", [])
        for c in containers:
            if name is None or c.get("name") == name:
                return c
        known = ", ".join(c.get("name", "?") for c in containers)
        raise StepFailed(f"container {name!r} not in the task definition (has: {known})")

    async def _image(self, ctx: StepContext, container: dict[str, Any]) -> str | None:
        if not self.image:
            return None
        if self.image.strip().lower() in PREVIOUS:
            return await self._previous_image(ctx, container["name"])
        return image_for(self.image, container.get("image", ""), self._allowed(ctx))

    def _allowed(self, ctx: StepContext) -> list[str]:
        return list(ctx.param("allowed_images") or [])

    async def _previous_image(self, ctx: StepContext, name: str) -> str:
        """`previous`: the image the container had in the revision that ran before."""
        lookup = EcsResolveRevision(cluster=self.cluster, service=self.service)
        state = await self.service_state(ctx)
        family, current = family_and_revision(state["taskDefinition"])
        try:
            before, _ = await lookup.previous_revision(ctx, state, family, current)
        except StepFailed as exc:
            raise RequestRefused(f"ecs-image needs `to TAG`: {exc}") from None
        for c in before.get("containerDefinitions", []):
            if c.get("name") == name and c.get("image"):
                return str(c["image"])
        raise RequestRefused(
            f"ecs-image needs `to TAG`: {family}:{before['revision']}, the revision that ran"
            f" before, has no container {name!r}"
        )

    async def _desired_env(self, ctx: StepContext, current: list[dict[str, str]]) -> list | None:
        env = {e["name"]: e["value"] for e in current}
        if self.environment_from:
            source = await self.call(
                ctx, "describe_task_definition", taskDefinition=self.environment_from
            )
            env = {
                e["name"]: e["value"]
                for e in self._container(ctx, source["taskDefinition"]).get("environment", [])
            }
        if not self.environment and not self.environment_from:
            return None
        env.update(self.environment)
        return [{"name": k, "value": v} for k, v in sorted(env.items())]

    async def _changes(self, ctx: StepContext) -> tuple[dict[str, Any], dict[str, Any]]:
        base = await self._base(ctx)
        container = self._container(ctx, base)
        image = await self._image(ctx, container)
        env = await self._desired_env(ctx, container.get("environment", []))
        if image is None and env is None:
            raise StepFailed("register_revision needs an image, environment or environment_from")
        return base, {"name": container["name"], "image": image, "environment": env}

    async def plan(self, ctx: StepContext) -> list[str]:
        base, change = await self._changes(ctx)
        if self.stop_when_current:
            _stop_if_unchanged(self._container(ctx, base), change, f"{base['family']}")
        parts = [
            f"family={base['family']!r}",
            f"from revision {base['revision']}",
            f"container={change['name']!r}",
        ]
        if change["image"]:
            parts.append(f"image={change['image']!r}")
        if change["environment"] is not None:
            before = self._container(ctx, base).get("environment", [])
            parts.append("environment changes=" + shown_changes(before, change["environment"]))
        return [f"ecs.register_task_definition({', '.join(parts)})"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        base, change = await self._changes(ctx)
        spec = {k: v for k, v in base.items() if k not in READ_ONLY}
        for c in spec["containerDefinitions"]:
            if c["name"] == change["name"]:
                if change["image"]:
                    c["image"] = change["image"]
                if change["environment"] is not None:
                    c["environment"] = change["environment"]
        registered = (await self.call(ctx, "register_task_definition", **spec))["taskDefinition"]
        return {
            "task_definition": registered["taskDefinitionArn"],
            "revision": registered["revision"],
            "base_revision": base["revision"],
            "image": change["image"] or "",
            "environment": _shown_env(change["environment"] or []),
        }

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`api (new revision of api:42): TORNADO_PROCESSES: 4 -> 1`, image as `a -> b`."""
        base, change = await self._changes(ctx)
        container = self._container(ctx, base)
        parts = []
        if change["image"] and change["image"] != container.get("image"):
            before, after = container.get("image", ""), change["image"]
            parts.append(f"image `{changes.image_tag(before)}` -> `{changes.image_tag(after)}`")
        if change["environment"] is not None:
            now = {e["name"]: e["value"] for e in container.get("environment", [])}
            wanted = {e["name"]: e["value"] for e in change["environment"]}
            parts.append(changes.env_changes(now, wanted))
        where = f"{change['name']} (new revision of `{base['family']}:{base['revision']}`)"
        return f"{where}: {'; '.join(parts) or 'nothing differs'}"

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        """After a crash: the newest revision of the family already carries the change."""
        base, change = await self._changes(ctx)
        newest = await self.call(ctx, "describe_task_definition", taskDefinition=base["family"])
        taskdef = newest["taskDefinition"]
        if taskdef["revision"] <= base["revision"]:
            return None
        container = self._container(ctx, taskdef)
        if change["image"] and container.get("image") != change["image"]:
            return None
        env = sorted(container.get("environment", []), key=lambda e: e["name"])
        if change["environment"] is not None and env != change["environment"]:
            return None
        return {
            "task_definition": taskdef["taskDefinitionArn"],
            "revision": taskdef["revision"],
            "base_revision": base["revision"],
            "image": change["image"] or "",
            "environment": _shown_env(change["environment"] or []),
            "resumed": True,
        }


def _stop_if_unchanged(container: dict[str, Any], change: dict[str, Any], family: str) -> None:
    """A new revision identical to the running one changes nothing: say so instead."""
    same_image = change["image"] in (None, container.get("image"))
    current_env = sorted(container.get("environment", []), key=lambda e: e["name"])
    same_env = change["environment"] is None or change["environment"] == current_env
    if same_image and same_env:
        what = f"image {change['image']}" if change["image"] else "that environment"
        raise NothingToDo(
            f"container {change['name']} of {family} already runs {what}: nothing to roll back"
        )


def _shown_env(env: list[dict[str, str]]) -> str:
    """Environment for plans and journals: values of secret-looking names are hidden."""
    shown = [f"{e['name']}={HIDDEN if SECRET_NAME.search(e['name']) else e['value']}" for e in env]
    return "[" + ", ".join(shown) + "]"


class EcsScaleService(_EcsStep, ChangeStep):
    """Set a service's desired count: stop it (0), or bring it back (runbooks 000, 001)."""

    type: Literal["ecs.scale"] = "ecs.scale"
    desired_count: int

    summary: ClassVar[str] = "Scale the service"
    aws_actions: ClassVar[tuple[str, ...]] = ("ecs:DescribeServices", "ecs:UpdateService")

    def title(self) -> str:
        return self.name or f"Scale {self.service or 'the service'} to {self.desired_count}"

    async def plan(self, ctx: StepContext) -> list[str]:
        cluster, service = self.names(ctx)
        return [
            f"ecs.update_service(cluster={cluster!r}, service={service!r}, "
            f"desiredCount={self.desired_count})"
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        cluster, service = self.names(ctx)
        before = (await self.service_state(ctx)).get("desiredCount")
        await self.call(
            ctx, "update_service", cluster=cluster, service=service, desiredCount=self.desired_count
        )
        return {"service": service, "desired_before": before, "desired": self.desired_count}

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`worker: 3 -> 0`"""
        state = await self.service_state(ctx)
        return f"{state['serviceName']}: {state.get('desiredCount')} -> {self.desired_count}"

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        state = await self.service_state(ctx)
        if state.get("desiredCount") != self.desired_count:
            return None
        return {"service": state["serviceName"], "desired": self.desired_count, "resumed": True}
