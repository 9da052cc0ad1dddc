"""ALB maintenance mode of runbook 003: the listener answers a fixed 503, then forwards again to
the target group kept in the step output and in a listener tag (for a separate "off" run)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks.aws import AwsStep
from playbooks.base import ChangeStep, StepContext, StepFailed

# The saved target group, for an "off" run that has no output of the "on" run to `use`.
TAG = "rollbot:restore-target-group"
DEFAULT_MESSAGE = "Service under maintenance. We'll be back soon!"


def is_fixed_response(actions: list[dict[str, Any]]) -> bool:
    return bool(actions) and all(a.get("Type") == "fixed-response" for a in actions)


def forward_target(actions: list[dict[str, Any]]) -> str | None:
    """The target group of a plain, single forward action; None for anything else."""
    if len(actions) != 1 or actions[0].get("Type") != "forward":
        return None
    action = actions[0]
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    arns = {g["TargetGroupArn"] for g in groups} | (
        {action["TargetGroupArn"]} if action.get("TargetGroupArn") else set()
    )
    return arns.pop() if len(arns) == 1 else None


def forward(target_group_arn: str) -> list[dict[str, Any]]:
    return [{"Type": "forward", "TargetGroupArn": target_group_arn}]


def shown(actions: list[dict[str, Any]] | str) -> str:
    """Actions for a plan line or message: a target group ARN is easier to check than JSON."""
    if isinstance(actions, str):
        return actions  # a `use:` placeholder while planning
    target = forward_target(actions)
    if target:
        return f"forward to {target}"
    return ", ".join(a.get("Type", "?") for a in actions) or "no actions"


class _AlbStep(AwsStep):
    listener_arn: str | None = None  # default: the target's listener_arn

    service_name: ClassVar[str] = "elbv2"

    def arn(self, ctx: StepContext) -> str:
        arn = self.listener_arn or ctx.param("listener_arn")
        if not arn or ":listener/" not in arn:
            raise StepFailed(f"{arn!r} is not a listener ARN: set listener_arn on the target")
        return arn

    def hints(self, ctx: StepContext) -> dict[str, str]:
        where = self.region_name(ctx)
        listener = self.listener_arn or ctx.param("listener_arn")
        return {
            "ListenerNotFound": f"listener {listener} was not found in {where} (ListenerNotFound)",
            "TargetGroupNotFound": (
                f"the target group to forward to was not found in {where} (TargetGroupNotFound)"
            ),
        }

    async def actions(self, ctx: StepContext) -> list[dict[str, Any]]:
        found = await self.call(ctx, "describe_listeners", ListenerArns=[self.arn(ctx)])
        return list(found["Listeners"][0].get("DefaultActions", []))

    async def saved_target(self, ctx: StepContext) -> str | None:
        found = await self.call(ctx, "describe_tags", ResourceArns=[self.arn(ctx)])
        tags = found["TagDescriptions"][0].get("Tags", []) if found["TagDescriptions"] else []
        return next((t["Value"] for t in tags if t["Key"] == TAG), None)

    async def modify(self, ctx: StepContext, actions: list[dict[str, Any]]) -> None:
        await self.call(ctx, "modify_listener", ListenerArn=self.arn(ctx), DefaultActions=actions)


class AlbMaintenanceOn(_AlbStep, ChangeStep):
    """Save the listener's default actions, then answer every request with a fixed 503."""

    type: Literal["alb.maintenance_on"] = "alb.maintenance_on"
    status_code: str = Field(default="503", pattern=r"^[2-5]\d\d$")
    content_type: Literal[
        "text/plain", "text/css", "text/html", "application/javascript", "application/json"
    ] = "text/plain"
    message: str = Field(default=DEFAULT_MESSAGE, max_length=1024)

    summary: ClassVar[str] = "Turn maintenance mode on (fixed 503 at the load balancer)"
    aws_actions: ClassVar[tuple[str, ...]] = (
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:ModifyListener",
    )

    def page(self) -> list[dict[str, Any]]:
        config = {
            "StatusCode": self.status_code,
            "ContentType": self.content_type,
            "MessageBody": self.message,
        }
        return [{"Type": "fixed-response", "FixedResponseConfig": config}]

    async def plan(self, ctx: StepContext) -> list[str]:
        arn = self.arn(ctx)
        return [
            f"elbv2.describe_listeners(ListenerArns=[{arn!r}]) -> keep DefaultActions in the"
            f" output and the target group in tag {TAG}",
            f"elbv2.modify_listener(ListenerArn={arn!r}, DefaultActions={self.page()!r})",
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        current = await self.actions(ctx)
        forwarding = await self._rules_forwarding(ctx)
        if is_fixed_response(current):
            # saving the maintenance page as "previous" would make it impossible to leave
            return await self._already(ctx, current, forwarding)
        target = forward_target(current)
        if target:
            # tag first: a crash after it leaves the listener unchanged, never unrecoverable
            await self.call(
                ctx, "add_tags", ResourceArns=[self.arn(ctx)], Tags=[{"Key": TAG, "Value": target}]
            )
        await self.modify(ctx, self.page())
        return self._output(current, target, forwarding, already=False)

    async def _already(
        self, ctx: StepContext, current: list[dict[str, Any]], forwarding: list[str]
    ) -> dict[str, Any]:
        target = await self.saved_target(ctx)
        saved = forward(target) if target else []
        out = self._output(saved, target, forwarding, already=True)
        if not target:
            out["summary"] += "; nothing saved: turning it off needs restore_target_group_arn"
        return out

    async def _rules_forwarding(self, ctx: StepContext) -> list[str]:
        """Listener rules keep forwarding in maintenance mode: only the default action changes."""
        found = await self.paginate(ctx, "describe_rules", "Rules", ListenerArn=self.arn(ctx))
        rules = [r for r in found if not r.get("IsDefault")]
        return [
            f"priority {r.get('Priority')}: {shown(r.get('Actions', []))}"
            for r in rules
            if any(a.get("Type") == "forward" for a in r.get("Actions", []))
        ]

    def _output(
        self,
        saved: list[dict[str, Any]],
        target: str | None,
        forwarding: list[str],
        already: bool,
    ) -> dict[str, Any]:
        summary = f"{'already in' if already else 'now in'} maintenance ({self.status_code})"
        summary += f"; was: {shown(saved)}" if saved else ""
        if saved and not target:
            # no tag can hold these: a separate "off" run cannot find them
            summary += "; these actions are kept only in this output, restore them from it"
        if forwarding:
            summary += f"; {len(forwarding)} listener rule(s) still forward traffic"
        return {
            "saved_actions": saved,
            "restore_target_group_arn": target or "",
            "rules_still_forwarding": forwarding,
            "already": already,
            "summary": summary,
        }

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        current = await self.actions(ctx)
        if not is_fixed_response(current):
            return None
        out = await self._already(ctx, current, await self._rules_forwarding(ctx))
        return {**out, "resumed": True}


class AlbMaintenanceOff(_AlbStep, ChangeStep):
    """Forward to the application again: the actions saved by maintenance_on (`use:`), else
    restore_target_group_arn, else the target group kept in the listener's tag."""

    type: Literal["alb.maintenance_off"] = "alb.maintenance_off"
    restore_actions: list[dict[str, Any]] | None = (
        None  # `use: {restore_actions: on.saved_actions}`
    )
    restore_target_group_arn: str | None = None  # default: the target's restore_target_group_arn

    summary: ClassVar[str] = "Turn maintenance mode off (forward to the application)"
    aws_actions: ClassVar[tuple[str, ...]] = (
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:RemoveTags",
    )

    def _given(self, ctx: StepContext) -> list[dict[str, Any]] | str | None:
        if self.restore_actions:
            return self.restore_actions
        target = self.restore_target_group_arn or ctx.param("restore_target_group_arn")
        return forward(target) if target else None

    async def _wanted(self, ctx: StepContext) -> list[dict[str, Any]]:
        given = self._given(ctx)
        if isinstance(given, list):
            return given
        target = await self.saved_target(ctx)
        if not target:
            raise StepFailed(
                f"no forward action to restore: the listener has no {TAG} tag; set"
                " restore_target_group_arn on the target"
            )
        return forward(target)

    async def plan(self, ctx: StepContext) -> list[str]:
        arn = self.arn(ctx)
        given = self._given(ctx)
        if given is None:
            target = await self.saved_target(ctx)
            given = forward(target) if target else f"<the target group in tag {TAG}: none>"
        actions = given if isinstance(given, str) else repr(given)
        return [
            f"elbv2.describe_listeners(ListenerArns=[{arn!r}]) -> must be in maintenance",
            f"elbv2.modify_listener(ListenerArn={arn!r}, DefaultActions={actions})",
            f"elbv2.remove_tags(ResourceArns=[{arn!r}], TagKeys=[{TAG!r}])",
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        wanted = await self._wanted(ctx)
        current = await self.actions(ctx)
        if _same(current, wanted):
            await self._untag(ctx)
            return {"restored": shown(wanted), "already": True, "summary": "already forwarding"}
        if not is_fixed_response(current):
            raise StepFailed(
                f"the listener is not in maintenance mode ({shown(current)}), so it is left"
                " alone: someone may have changed it since"
            )
        await self.modify(ctx, wanted)
        await self._untag(ctx)
        return {"restored": shown(wanted), "already": False, "summary": shown(wanted)}

    async def _untag(self, ctx: StepContext) -> None:
        await self.call(ctx, "remove_tags", ResourceArns=[self.arn(ctx)], TagKeys=[TAG])

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        wanted = await self._wanted(ctx)
        if not _same(await self.actions(ctx), wanted):
            return None
        return {"restored": shown(wanted), "already": True, "resumed": True}


def _same(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    target = forward_target(wanted)
    if target is not None:
        return forward_target(current) == target
    return current == wanted
