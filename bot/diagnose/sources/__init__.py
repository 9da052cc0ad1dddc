"""Evidence sources (runbook 001's pre-rollback commands): one collector per source, each
returning plain JSON-able data, one module per kind of evidence. `plan` says which sources a
target has; `AWS_ACTIONS` which IAM actions each kind of source calls."""

from __future__ import annotations

import functools
from typing import Any

from bot.diagnose.sources import cloudwatch_logs, cloudwatch_metrics, ecs, taskdef_history
from bot.diagnose.sources.cloudwatch_logs import logs
from bot.diagnose.sources.cloudwatch_metrics import load_balancer_dimension, metrics
from bot.diagnose.sources.context import (
    Collector,
    Options,
    SourceContext,
    SourceError,
    aws_client_factory,
    describe_error,
)
from bot.diagnose.sources.ecs import ecs_service, stopped_tasks
from bot.diagnose.sources.health_endpoints import health, nearest_rank
from bot.diagnose.sources.host import containers, nginx_test
from bot.diagnose.sources.taskdef_history import task_definitions

__all__ = [
    "AWS_ACTIONS",
    "Collector",
    "Options",
    "SourceContext",
    "SourceError",
    "aws_client_factory",
    "containers",
    "describe_error",
    "ecs_service",
    "health",
    "load_balancer_dimension",
    "logs",
    "metrics",
    "nearest_rank",
    "nginx_test",
    "plan",
    "stopped_tasks",
    "task_definitions",
]

# Source kind -> the IAM actions its collector calls (sources without AWS calls need none).
AWS_ACTIONS: dict[str, tuple[str, ...]] = {
    "ecs_service": ecs.SERVICE_ACTIONS,
    "stopped_tasks": ecs.STOPPED_TASKS_ACTIONS,
    "task_definitions": taskdef_history.ACTIONS,
    "logs": cloudwatch_logs.ACTIONS,
    "metrics": cloudwatch_metrics.ACTIONS,
}


def plan(params: dict[str, Any], options: Options) -> dict[str, Collector | str]:
    """Source name -> collector, or why it is skipped."""
    out: dict[str, Collector | str] = {}
    has_ecs = bool(params.get("cluster") and params.get("service"))
    no_ecs = "not configured (no cluster/service)"
    out["ecs_service"] = ecs_service if has_ecs else no_ecs
    out["stopped_tasks"] = stopped_tasks if has_ecs else no_ecs
    out["task_definitions"] = task_definitions if has_ecs else no_ecs
    groups = [str(g) for g in params.get("log_groups") or []]
    for group in groups:
        out[f"logs {group}"] = functools.partial(logs, group=group)
    if not groups:
        out["logs"] = "not configured (no log_groups)"
    urls = [str(u) for u in params.get("health_urls") or []]
    for url in urls:
        out[f"health {url}"] = functools.partial(health, url=url)
    if not urls:
        out["health"] = "not configured (no health_urls)"
    if params.get("compose_project") or "compose_command" in params or "compose_file" in params:
        out["containers"] = containers
    if params.get("nginx_conf") or params.get("nginx_command"):
        out["nginx_test"] = nginx_test
    has_metrics = has_ecs or options.load_balancer
    out["metrics"] = (
        metrics if has_metrics else "not configured (no cluster/service or load balancer)"
    )
    return out
