"""Evidence sources (runbook 001's pre-rollback commands): one collector per source, each
returning plain JSON-able data. AWS calls run in worker threads; health checks use aiohttp."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import math
import os
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from bot.diagnose.matrix import Thresholds
from bot.diagnose.redact import Redactor

# A pool of our own: the default executor has cpu+4 workers shared with the rest of the bot,
# and a source that hangs past its timeout keeps its thread until botocore gives up.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="diagnose")
_CLIENT_LOCK = threading.Lock()  # boto3's default session is not safe for concurrent creation
_CLIENTS: dict[tuple[str, str | None, str | None], Any] = {}
LOG_EVENTS_CAP = 10_000  # past this many matches the count says "at least"
HISTORY = 5  # task-definition revisions shown
EVENTS = 10  # service events shown
HEALTH_BODY = 300  # bytes of a failing health answer kept as evidence

Collector = Callable[["SourceContext"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Options:
    """How a target is diagnosed. Set per target under `diagnose:` in rollbot.yml (a playbook
    may also declare these names as its own parameters, which then win):

      window_minutes      10       how far back logs, metrics and restarts are read
      log_filter_pattern  "ERROR"  CloudWatch Logs filter pattern for the error lines
      source_timeout      8        seconds each source may take (the capture's bound)
      health_samples      3        requests per health URL, one after another
      load_balancer       unset    ALB name dimension (app/NAME/ID) or ARN: 5xx rate and p95
      thresholds          {}       overrides of the decision matrix (matrix.Thresholds)
      redact_names        default  regexes of variable names whose values are hidden;
                                   replaces redact.DEFAULT_NAME_PATTERNS when given (read from
                                   playbook params today: the catalog's DiagnoseSettings does
                                   not accept the key yet)
    """

    window_minutes: float = 10.0
    log_filter_pattern: str = "ERROR"
    health_samples: int = 3
    load_balancer: str | None = None
    redact_names: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass
class SourceContext:
    """What every collector sees."""

    params: dict[str, Any]
    options: Options
    start: datetime
    end: datetime
    timeout: float
    redactor: Redactor
    client: Callable[[str], Any]  # AWS service name -> boto3 client


class SourceError(Exception):
    """A source failed in a way worth saying plainly (not found, misconfigured)."""


def aws_client_factory(region: str | None) -> Callable[[str], Any]:
    def client(service: str) -> Any:
        return _aws_client(service, region)

    return client


def _aws_client(service: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    key = (service, region, os.environ.get("AWS_ENDPOINT_URL"))
    with _CLIENT_LOCK:
        if key not in _CLIENTS:
            # short network timeouts: a stuck call must not outlive its source by minutes
            config = Config(
                connect_timeout=3,
                read_timeout=10,
                retries={"mode": "standard", "max_attempts": 3},
            )
            _CLIENTS[key] = boto3.client(service, region_name=region, config=config)
        return _CLIENTS[key]


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """asyncio.to_thread on the diagnose pool."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_POOL, call)


def describe_error(exc: BaseException) -> str:
    """One readable line for a failed source (never a traceback)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip(": ")
    if isinstance(exc, SourceError | BotoCoreError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def plan(params: dict[str, Any], options: Options) -> dict[str, Collector | str]:
    """Source name -> collector, or why it is skipped."""
    out: dict[str, Collector | str] = {}
    ecs = bool(params.get("cluster") and params.get("service"))
    no_ecs = "not configured (no cluster/service)"
    out["ecs_service"] = ecs_service if ecs else no_ecs
    out["stopped_tasks"] = stopped_tasks if ecs else no_ecs
    out["task_definitions"] = task_definitions if ecs else no_ecs
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
    from bot.diagnose import host_sources

    if params.get("compose_project") or "compose_command" in params or "compose_file" in params:
        out["containers"] = host_sources.containers
    if params.get("nginx_conf") or params.get("nginx_command"):
        out["nginx_test"] = host_sources.nginx_test
    has_metrics = ecs or options.load_balancer
    out["metrics"] = (
        metrics if has_metrics else "not configured (no cluster/service or load balancer)"
    )
    return out


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


# ---------------------------------------------------------------- ECS service and tasks


def _describe_service(ctx: SourceContext) -> dict[str, Any]:
    cluster, service = ctx.params["cluster"], ctx.params["service"]
    found = ctx.client("ecs").describe_services(cluster=cluster, services=[service])
    if not found.get("services"):
        reasons = ", ".join(f.get("reason", "") for f in found.get("failures", []))
        raise SourceError(f"service {service} not found in cluster {cluster} ({reasons})")
    return found["services"][0]


async def ecs_service(ctx: SourceContext) -> dict[str, Any]:
    s = await in_thread(_describe_service, ctx)
    events = sorted(s.get("events", []), key=lambda e: _epoch(e.get("createdAt")))
    events = events[::-1][:EVENTS]  # newest first, as the console shows them
    return {
        "status": s.get("status"),
        "task_definition": _short(s.get("taskDefinition", "")),
        "running": s.get("runningCount"),
        "desired": s.get("desiredCount"),
        "pending": s.get("pendingCount"),
        "deployments": [_deployment(d) for d in s.get("deployments", [])],
        "events": [{"at": _iso(e.get("createdAt")), "message": e.get("message")} for e in events],
        "restarts_from_events": _stopped_in_events(events, ctx.start),
    }


def _deployment(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": d.get("status"),
        "task_definition": _short(d.get("taskDefinition", "")),
        "rollout_state": d.get("rolloutState"),
        "rollout_reason": d.get("rolloutStateReason"),
        "running": d.get("runningCount"),
        "desired": d.get("desiredCount"),
        "failed_tasks": d.get("failedTasks"),
        "created_at": _iso(d.get("createdAt")),
    }


STOPPED_EVENT = re.compile(r"has stopped (\d+) running tasks?")


def _stopped_in_events(events: list[dict[str, Any]], since: datetime) -> int:
    total = 0
    for e in events:
        at, found = e.get("createdAt"), STOPPED_EVENT.search(e.get("message", ""))
        if found and isinstance(at, datetime) and at >= since:
            total += int(found.group(1))
    return total


def _short(task_definition: str) -> str:
    return task_definition.rsplit("/", 1)[-1]


def _stopped(ctx: SourceContext) -> list[dict[str, Any]]:
    ecs, cluster, service = ctx.client("ecs"), ctx.params["cluster"], ctx.params["service"]
    arns: list[str] = []
    pages = ecs.get_paginator("list_tasks").paginate(
        cluster=cluster,
        serviceName=service,
        desiredStatus="STOPPED",
        PaginationConfig={"MaxItems": 300},
    )
    for page in pages:
        arns += page.get("taskArns", [])
    tasks: list[dict[str, Any]] = []
    for i in range(0, len(arns), 100):  # describe_tasks takes at most 100
        tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100]).get("tasks", [])
    # filter on the group as well: not every ECS implementation honours serviceName
    return [t for t in tasks if t.get("group") in (None, f"service:{service}")]


async def stopped_tasks(ctx: SourceContext) -> dict[str, Any]:
    tasks = await in_thread(_stopped, ctx)
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
        "task_definition": _short(t.get("taskDefinitionArn", "")),
        "stopped_at": _iso(t.get("stoppedAt")),
        "stop_code": t.get("stopCode"),
        "reason": t.get("stoppedReason"),
        "containers": [
            {"name": c.get("name"), "exit_code": c.get("exitCode"), "reason": c.get("reason")}
            for c in t.get("containers", [])
        ],
    }


# ---------------------------------------------------------------- task-definition history


def _revisions(ctx: SourceContext, family: str) -> list[int]:
    """Revision numbers of the family. Sorted here: moto ignores `sort` and `maxResults`."""
    found: set[int] = set()
    pages = (
        ctx.client("ecs")
        .get_paginator("list_task_definitions")
        .paginate(familyPrefix=family, sort="DESC", PaginationConfig={"MaxItems": 500})
    )
    for page in pages:
        for arn in page.get("taskDefinitionArns", []):
            fam, _, rev = _short(arn).rpartition(":")
            if fam == family and rev.isdigit():  # a prefix also matches "api-worker"
                found.add(int(rev))
    return sorted(found)


async def task_definitions(ctx: SourceContext) -> dict[str, Any]:
    service = await in_thread(_describe_service, ctx)
    family, _, current_text = _short(service["taskDefinition"]).rpartition(":")
    current = int(current_text)
    shown = sorted(set((await in_thread(_revisions, ctx, family))[-HISTORY:]) | {current})
    ecs = ctx.client("ecs")
    described = await asyncio.gather(
        *(in_thread(ecs.describe_task_definition, taskDefinition=f"{family}:{r}") for r in shown)
    )
    history = [_revision(d["taskDefinition"], current, ctx.redactor) for d in described]
    for older, newer in itertools.pairwise(history):
        newer["changes"] = _changes(older, newer, ctx.redactor)
    return {"family": family, "current_revision": current, "history": history[::-1]}


def _revision(td: dict[str, Any], current: int, redactor: Redactor) -> dict[str, Any]:
    registered = td.get("registeredAt")
    return {
        "revision": td["revision"],
        "current": td["revision"] == current,
        "status": td.get("status"),
        "registered_at": _iso(registered) or "not reported",
        "containers": [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "environment": redactor.environment(c.get("environment", [])),
                # only names: a secret's valueFrom is where it lives, and nobody needs it here
                "secrets": [
                    {"name": s.get("name"), "value": "[redacted]"} for s in c.get("secrets", [])
                ],
            }
            for c in td.get("containerDefinitions", [])
        ],
        "changes": [],
    }


def _changes(older: dict[str, Any], newer: dict[str, Any], redactor: Redactor) -> list[str]:
    """What differs from the revision before: images and environment (never secret values)."""
    out = []
    before = {c["name"]: c for c in older["containers"]}
    for c in newer["containers"]:
        old = before.get(c["name"])
        if old is None:
            out.append(f"container {c['name']} added")
            continue
        if old["image"] != c["image"]:
            out.append(f"{c['name']}: image {old['image']} -> {c['image']}")
        old_env = {e["name"]: e["value"] for e in old["environment"]}
        new_env = {e["name"]: e["value"] for e in c["environment"]}
        for name in sorted(old_env.keys() | new_env.keys()):
            if old_env.get(name) == new_env.get(name):
                continue
            if redactor.is_secret_name(name):
                out.append(f"{c['name']}: env {name} changed")
            else:
                out.append(f"{c['name']}: env {name}: {old_env.get(name)} -> {new_env.get(name)}")
    return out


# ---------------------------------------------------------------- CloudWatch Logs


def _log_group(ctx: SourceContext, group: str) -> dict[str, Any]:
    # stop paging a little before the source's timeout, so a huge group still reports a count
    deadline = time.monotonic() + ctx.timeout * 0.8
    pattern = ctx.options.log_filter_pattern
    pages = (
        ctx.client("logs")
        .get_paginator("filter_log_events")
        .paginate(
            logGroupName=group,
            filterPattern=pattern,
            startTime=_ms(ctx.start),
            endTime=_ms(ctx.end),
        )
    )
    count, latest, stopped = 0, [], ""
    for page in pages:
        events = page.get("events", [])
        count += len(events)
        latest = sorted(latest + events, key=lambda e: e.get("timestamp", 0))[-5:]
        if count >= LOG_EVENTS_CAP:
            stopped = f"stopped counting at {LOG_EVENTS_CAP}"
            break
        if time.monotonic() > deadline:
            stopped = "stopped counting at the time limit"
            break
    return {
        "group": group,
        "filter_pattern": pattern,
        "minutes": ctx.options.window_minutes,
        "count": count,
        "partial": stopped,
        "latest": [
            {
                "at": datetime.fromtimestamp(
                    e.get("timestamp", 0) / 1000, ctx.start.tzinfo
                ).isoformat(),
                "message": str(e.get("message", "")).rstrip()[:500],
            }
            for e in latest[::-1]
        ],
    }


async def logs(ctx: SourceContext, group: str) -> dict[str, Any]:
    return await in_thread(_log_group, ctx, group)


# ---------------------------------------------------------------- health endpoints


async def health(ctx: SourceContext, url: str) -> dict[str, Any]:
    """A few requests one after another (a latency figure, not a load test)."""
    timeout = aiohttp.ClientTimeout(total=ctx.timeout)
    samples: list[dict[str, Any]] = []
    body = ""
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(ctx.options.health_samples):
            sample, text = await _sample(session, url)
            samples.append(sample)
            body = text or body
    return _health_summary(url, samples, body)


async def _sample(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], str]:
    started = time.perf_counter()
    try:
        async with session.get(url) as resp:
            head = await resp.content.read(HEALTH_BODY)  # a health page, not a download
            sample: dict[str, Any] = {"status": resp.status}
            # a failing body often says why (which dependency is down)
            kept = head.decode("utf-8", "replace") if resp.status >= 400 else ""
    except aiohttp.ClientError as exc:
        sample, kept = {"error": describe_error(exc)}, ""
    sample["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return sample, kept


def _health_summary(url: str, samples: list[dict[str, Any]], body: str) -> dict[str, Any]:
    answered = [s["ms"] for s in samples if "status" in s]
    labels = Counter(
        str(s["status"]) if "status" in s else s["error"].split(":", 1)[0] for s in samples
    )
    # runbook 004 counts 5xx as unavailable; a refused connection is no better
    failing = all(s.get("status", 500) >= 500 for s in samples)
    return {
        "url": url,
        "samples": samples,
        "failing": failing,
        "summary": ", ".join(f"{n}x {label}" for label, n in labels.items()),
        "errors": sorted({s["error"] for s in samples if "error" in s}),
        "p95_ms": nearest_rank(answered, 95),
        "median_ms": round(statistics.median(answered), 1) if answered else None,
        "body": body,
    }


def nearest_rank(values: list[float], pct: float) -> float | None:
    """Percentile by nearest rank: never above the largest sample, unlike interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------- CloudWatch metrics


def load_balancer_dimension(value: str) -> str:
    """'arn:...:loadbalancer/app/name/id' or 'app/name/id' -> 'app/name/id'."""
    return value.split(":loadbalancer/", 1)[-1]


def _query(
    qid: str, namespace: str, metric: str, dims: list[dict[str, str]], stat: str, period: int = 60
) -> dict[str, Any]:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _metric_queries(ctx: SourceContext) -> list[dict[str, Any]]:
    p, queries = ctx.params, []
    if p.get("cluster") and p.get("service"):
        dims = [
            {"Name": "ClusterName", "Value": p["cluster"]},
            {"Name": "ServiceName", "Value": p["service"]},
        ]
        queries += [
            _query("cpu", "AWS/ECS", "CPUUtilization", dims, "Average"),
            _query("memory", "AWS/ECS", "MemoryUtilization", dims, "Average"),
        ]
    if ctx.options.load_balancer:
        alb = "AWS/ApplicationELB"
        dims = [
            {"Name": "LoadBalancer", "Value": load_balancer_dimension(ctx.options.load_balancer)}
        ]
        queries += [
            _query("requests", alb, "RequestCount", dims, "Sum"),
            _query("target_5xx", alb, "HTTPCode_Target_5XX_Count", dims, "Sum"),
            _query("elb_5xx", alb, "HTTPCode_ELB_5XX_Count", dims, "Sum"),
            # one period over the whole window: a p95 of the window, not a max of minute p95s
            _query("p95", alb, "TargetResponseTime", dims, "p95", _window_period(ctx)),
        ]
    return queries


def _window_period(ctx: SourceContext) -> int:
    return max(60, int(ctx.options.window_minutes) * 60)  # CloudWatch wants whole minutes


def _metric_values(
    cw: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        # one period past the end, so the bucket holding the newest datapoint is included
        "EndTime": end + timedelta(seconds=60),
        "ScanBy": "TimestampDescending",
    }
    while True:
        found = cw.get_metric_data(**kwargs)
        for r in found.get("MetricDataResults", []):
            values.setdefault(r["Id"], []).extend(r.get("Values", []))
        if not found.get("NextToken"):
            return values
        kwargs["NextToken"] = found["NextToken"]


def _metrics(ctx: SourceContext) -> dict[str, Any]:
    cw = ctx.client("cloudwatch")
    v = _metric_values(cw, _metric_queries(ctx), ctx.start, ctx.end)
    sustained = max(1, int(ctx.options.thresholds.sustained_minutes))
    out: dict[str, Any] = {"load_balancer": ctx.options.load_balancer, "period_seconds": 60}
    for key in ("cpu", "memory"):
        if key in v:
            points = v[key]  # newest first
            out[key] = {
                "sustained": round(min(points[:sustained]), 2) if points else None,
                "max": round(max(points), 2) if points else None,
                "datapoints": len(points),
            }
    if ctx.options.load_balancer:
        out.update(_alb_figures(v))
        if ctx.options.thresholds.p95_baseline_ms is None:
            try:
                out["p95_baseline_ms"] = _baseline(cw, ctx)
            except (ClientError, BotoCoreError) as exc:  # the figures above still count
                out["p95_baseline_ms"], out["baseline_error"] = None, describe_error(exc)
    return out


def _alb_figures(v: dict[str, list[float]]) -> dict[str, Any]:
    errors = sum(v.get("target_5xx", [])) + sum(v.get("elb_5xx", []))
    # the load balancer's own 503s (no healthy target) are not in RequestCount
    requests = max(sum(v.get("requests", [])), errors)
    p95 = max(v["p95"]) * 1000 if v.get("p95") else None  # TargetResponseTime is in seconds
    return {
        "requests": requests,
        "errors_5xx": errors,
        "target_5xx": sum(v.get("target_5xx", [])),
        "elb_5xx": sum(v.get("elb_5xx", [])),
        "p95_ms": round(p95, 1) if p95 is not None else None,
    }


def _baseline(cw: Any, ctx: SourceContext) -> float | None:
    """p95 of the same window one day earlier: same time of day, before this deployment."""
    day = timedelta(days=1)
    query = next(q for q in _metric_queries(ctx) if q["Id"] == "p95")
    values = _metric_values(cw, [query], ctx.start - day, ctx.end - day).get("p95", [])
    return round(max(values) * 1000, 1) if values else None


async def metrics(ctx: SourceContext) -> dict[str, Any]:
    return await in_thread(_metrics, ctx)
