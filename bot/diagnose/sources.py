"""One collector per evidence source; each returns plain JSON-able data."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from bot.diagnose.redact import redact_environment, redact_text
from playbooks.base import AwsClients
from playbooks.steps.ecs import family_and_revision


@dataclass
class Window:
    start: datetime
    end: datetime
    config: Any  # DiagnoseSettings


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}"
    if isinstance(exc, BotoCoreError | aiohttp.ClientError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _aws(target: Any, service: str) -> Any:
    return AwsClients(region=target.params.get("region")).client(service)


async def ecs_service(target: Any, window: Window) -> dict[str, Any]:
    p = target.params
    ecs = _aws(target, "ecs")
    found = await asyncio.to_thread(
        ecs.describe_services, cluster=p["cluster"], services=[p["service"]]
    )
    if not found.get("services"):
        raise LookupError(f"service {p['service']} not found in {p['cluster']}")
    s = found["services"][0]
    events = s.get("events", [])[:10]
    stopped = [
        e
        for e in events
        if "has stopped" in e.get("message", "") and _after(e.get("createdAt"), window.start)
    ]
    return {
        "status": s.get("status"),
        "task_definition": s.get("taskDefinition"),
        "running": s.get("runningCount"),
        "desired": s.get("desiredCount"),
        "pending": s.get("pendingCount"),
        "deployments": [
            {
                "status": d.get("status"),
                "task_definition": d.get("taskDefinition"),
                "rollout": d.get("rolloutState"),
                "running": d.get("runningCount"),
                "desired": d.get("desiredCount"),
            }
            for d in s.get("deployments", [])
        ],
        "events": [{"at": str(e.get("createdAt")), "message": e.get("message")} for e in events],
        "restarts": len(stopped),
    }


def _after(value: Any, start: datetime) -> bool:
    return isinstance(value, datetime) and value >= start


async def task_definitions(target: Any, window: Window) -> dict[str, Any]:
    p = target.params
    ecs = _aws(target, "ecs")
    s = (
        await asyncio.to_thread(
            ecs.describe_services, cluster=p["cluster"], services=[p["service"]]
        )
    )["services"][0]
    family, current = family_and_revision(s["taskDefinition"])
    arns = (
        await asyncio.to_thread(ecs.list_task_definitions, familyPrefix=family, status="ACTIVE")
    ).get("taskDefinitionArns", [])
    revisions = sorted({family_and_revision(a)[1] for a in arns})[-5:]
    described = await asyncio.gather(
        *(
            asyncio.to_thread(ecs.describe_task_definition, taskDefinition=f"{family}:{r}")
            for r in revisions
        )
    )
    history = []
    for d in reversed(described):
        td = d["taskDefinition"]
        history.append(
            {
                "revision": td["revision"],
                "current": td["revision"] == current,
                "registered_at": str(td.get("registeredAt", "unknown")),
                "containers": [
                    {
                        "name": c.get("name"),
                        "image": c.get("image"),
                        "environment": redact_environment(c.get("environment", [])),
                        "secrets": [x.get("name") for x in c.get("secrets", [])],
                    }
                    for c in td.get("containerDefinitions", [])
                ],
            }
        )
    return {"family": family, "current_revision": current, "history": history}


async def logs(target: Any, window: Window) -> dict[str, Any]:
    client = _aws(target, "logs")
    pattern = window.config.log_filter_pattern
    groups = await asyncio.gather(
        *(
            asyncio.to_thread(_log_group, client, g, pattern, window)
            for g in target.params["log_groups"]
        )
    )
    return {
        "filter_pattern": pattern,
        "groups": groups,
        "error_lines": sum(g["count"] for g in groups),
    }


def _log_group(client: Any, group: str, pattern: str, window: Window) -> dict[str, Any]:
    paginator = client.get_paginator("filter_log_events")
    events: list[dict[str, Any]] = []
    pages = paginator.paginate(
        logGroupName=group,
        filterPattern=pattern,
        startTime=int(window.start.timestamp() * 1000),
        endTime=int(window.end.timestamp() * 1000),
        PaginationConfig={"MaxItems": 1000},
    )
    for page in pages:
        events += page.get("events", [])
    events.sort(key=lambda e: e.get("timestamp", 0))
    latest = [redact_text(e.get("message", ""))[:500] for e in events[-5:]]
    return {"group": group, "count": len(events), "latest": latest}


async def health(target: Any, window: Window) -> dict[str, Any]:
    samples = window.config.health_samples
    timeout = aiohttp.ClientTimeout(total=window.config.source_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        checks = await asyncio.gather(
            *(_probe(session, u, samples) for u in target.params["health_urls"])
        )
    return {"endpoints": checks, "ok": sum(1 for c in checks if c["ok"]), "total": len(checks)}


async def _probe(session: aiohttp.ClientSession, url: str, samples: int) -> dict[str, Any]:
    latencies, statuses = [], []
    for _ in range(samples):
        started = time.perf_counter()
        try:
            async with session.get(url) as resp:
                await resp.read()
                statuses.append(resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            statuses.append(f"error: {type(exc).__name__}")
        latencies.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    return {
        "url": url,
        "statuses": statuses,
        "ok": statuses[-1] == 200,
        "p95_ms": round(p95, 1),
        "median_ms": round(statistics.median(latencies), 1),
    }


async def metrics(target: Any, window: Window) -> dict[str, Any]:
    cw = _aws(target, "cloudwatch")
    p, cfg = target.params, window.config
    queries: list[dict[str, Any]] = []
    if p.get("cluster") and p.get("service"):
        dims = [
            {"Name": "ClusterName", "Value": p["cluster"]},
            {"Name": "ServiceName", "Value": p["service"]},
        ]
        queries += [
            _query("cpu", "AWS/ECS", "CPUUtilization", dims, "Maximum"),
            _query("memory", "AWS/ECS", "MemoryUtilization", dims, "Maximum"),
        ]
    if cfg.load_balancer:
        dims = [{"Name": "LoadBalancer", "Value": cfg.load_balancer}]
        queries += [
            _query("requests", "AWS/ApplicationELB", "RequestCount", dims, "Sum"),
            _query("errors_5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims, "Sum"),
            _query("p95", "AWS/ApplicationELB", "TargetResponseTime", dims, "p95"),
        ]
    found = await asyncio.to_thread(
        cw.get_metric_data,
        MetricDataQueries=queries,
        StartTime=window.start,
        # one period past now, so the bucket holding the newest datapoint is complete
        EndTime=window.end + timedelta(seconds=60),
    )
    values = {r["Id"]: r.get("Values", []) for r in found.get("MetricDataResults", [])}
    out: dict[str, Any] = {}
    for key in ("cpu", "memory", "p95"):
        if values.get(key):
            out[key] = max(values[key])
    for key in ("requests", "errors_5xx"):
        if values.get(key):
            out[key] = sum(values[key])
    return out


def _query(
    qid: str, namespace: str, name: str, dims: list[dict[str, str]], stat: str
) -> dict[str, Any]:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
            "Period": 60,
            "Stat": stat,
        },
    }


def facts(results: dict[str, Any]) -> dict[str, Any]:
    """The figures the decision matrix reads, from whatever sources answered."""

    def data(name: str) -> dict[str, Any]:
        src = results.get(name)
        return src.data if src is not None and src.status == "ok" else {}

    out: dict[str, Any] = {}
    m, h, lg, svc = data("metrics"), data("health"), data("logs"), data("ecs_service")
    if m.get("requests"):
        out["error_rate_pct"] = 100.0 * m.get("errors_5xx", 0.0) / m["requests"]
    if "p95" in m:
        out["p95_ms"] = m["p95"] * 1000  # TargetResponseTime is in seconds
    elif h.get("endpoints"):
        out["p95_ms"] = max(e["p95_ms"] for e in h["endpoints"])
    for key, name in (("memory", "memory_pct"), ("cpu", "cpu_pct")):
        if key in m:
            out[name] = m[key]
    if h:
        out["health_ok"], out["health_total"] = h["ok"], h["total"]
    if lg:
        out["error_lines"] = lg["error_lines"]
    if svc:
        out["restarts"] = svc.get("restarts", 0)
        out["running"], out["desired"] = svc.get("running"), svc.get("desired")
    return out
