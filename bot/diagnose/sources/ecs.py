"""Evidence from the ECS service: its deployments and events, and the tasks that stopped."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.diagnose.sources.context import SourceContext, SourceError, epoch, iso
from playbooks import aws
from playbooks.steps.ecs_common import short_name

# The IAM actions each source calls (the IAM policy is built from these).
SERVICE_ACTIONS = ("ecs:DescribeServices",)
STOPPED_TASKS_ACTIONS = ("ecs:ListTasks", "ecs:DescribeTasks")
EVENTS = 10  # service events shown
STOPPED_EVENT = re.compile(r"has stopped (\d+) running tasks?")


async def describe_service(ctx: SourceContext) -> dict[str, Any]:
    cluster, service = ctx.params["cluster"], ctx.params["service"]
    found = await aws.call(
        ctx.client("ecs"), "describe_services", cluster=cluster, services=[service]
    )
    if not found.get("services"):
        reasons = ", ".join(f.get("reason", "") for f in found.get("failures", []))
        raise SourceError(f"service {service} not found in cluster {cluster} ({reasons})")
    return found["services"][0]


async def ecs_service(ctx: SourceContext) -> dict[str, Any]:
    s = await describe_service(ctx)
    events = sorted(s.get("events", []), key=lambda e: epoch(e.get("createdAt")))
    events = events[::-1][:EVENTS]  # newest first, as the console shows them
    return {
        "status": s.get("status"),
        "task_definition": short_name(s.get("taskDefinition", "")),
        "running": s.get("runningCount"),
        "desired": s.get("desiredCount"),
        "pending": s.get("pendingCount"),
        "deployments": [_deployment(d) for d in s.get("deployments", [])],
        "events": [{"at": iso(e.get("createdAt")), "message": e.get("message")} for e in events],
        "restarts_from_events": _stopped_in_events(events, ctx.start),
    }


def _deployment(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": d.get("status"),
        "task_definition": short_name(d.get("taskDefinition", "")),
        "rollout_state": d.get("rolloutState"),
        "rollout_reason": d.get("rolloutStateReason"),
        "running": d.get("runningCount"),
        "desired": d.get("desiredCount"),
        "failed_tasks": d.get("failedTasks"),
        "created_at": iso(d.get("createdAt")),
    }


def _stopped_in_events(events: list[dict[str, Any]], since: datetime) -> int:
    total = 0
    for e in events:
        at, found = e.get("createdAt"), STOPPED_EVENT.search(e.get("message", ""))
        if found and isinstance(at, datetime) and at >= since:
            total += int(found.group(1))
    return total


async def _stopped(ctx: SourceContext) -> list[dict[str, Any]]:
    ecs, cluster, service = ctx.client("ecs"), ctx.params["cluster"], ctx.params["service"]
    arns = await aws.paginate(
        ecs,
        "list_tasks",
        "taskArns",
        max_items=300,
        cluster=cluster,
        serviceName=service,
        desiredStatus="STOPPED",
    )
    tasks: list[dict[str, Any]] = []
    for i in range(0, len(arns), 100):  # describe_tasks takes at most 100
        found = await aws.call(ecs, "describe_tasks", cluster=cluster, tasks=arns[i : i + 100])
        tasks += found.get("tasks", [])
    # filter on the group as well: not every ECS implementation honours serviceName
    return [t for t in tasks if t.get("group") in (None, f"service:{service}")]


async def stopped_tasks(ctx: SourceContext) -> dict[str, Any]:
    tasks = await _stopped(ctx)
    dated = [t for t in tasks if isinstance(t.get("stoppedAt"), datetime)]
    recent = sorted(
        (t for t in dated if t["stoppedAt"] >= ctx.start), key=lambda t: t["stoppedAt"]
    )[::-1]
    return {
        "in_window": len(recent),
        "without_time": len(tasks) - len(dated),
        "tasks": [_task(t) for t in recent[:EVENTS]],
    }


def _task(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": t.get("taskArn", "").rsplit("/", 1)[-1],
        "task_definition": short_name(t.get("taskDefinitionArn", "")),
        "stopped_at": iso(t.get("stoppedAt")),
        "stop_code": t.get("stopCode"),
        "reason": t.get("stoppedReason"),
        "containers": [
            {"name": c.get("name"), "exit_code": c.get("exitCode"), "reason": c.get("reason")}
            for c in t.get("containers", [])
        ],
    }
