"""Evidence from CloudWatch metrics: the service's CPU and memory, and the load balancer's
requests, 5xx and p95 latency (with the same window a day earlier as the baseline)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.diagnose.sources.context import SourceContext, describe_error
from playbooks import aws

ACTIONS = ("cloudwatch:GetMetricData",)


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


async def _metric_values(
    cw: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, list[float]]:
    results = await aws.paginate(
        cw,
        "get_metric_data",
        "MetricDataResults",
        MetricDataQueries=queries,
        StartTime=start,
        # one period past the end, so the bucket holding the newest datapoint is included
        EndTime=end + timedelta(seconds=60),
        ScanBy="TimestampDescending",
    )
    values: dict[str, list[float]] = {}
    for r in results:
        values.setdefault(r["Id"], []).extend(r.get("Values", []))
    return values


async def metrics(ctx: SourceContext) -> dict[str, Any]:
    cw = ctx.client("cloudwatch")
    v = await _metric_values(cw, _metric_queries(ctx), ctx.start, ctx.end)
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
                out["p95_baseline_ms"] = await _baseline(cw, ctx)
            except aws.AwsError as exc:  # the figures above still count
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


async def _baseline(cw: Any, ctx: SourceContext) -> float | None:
    """p95 of the same window one day earlier: same time of day, before this deployment."""
    day = timedelta(days=1)
    query = next(q for q in _metric_queries(ctx) if q["Id"] == "p95")
    values = (await _metric_values(cw, [query], ctx.start - day, ctx.end - day)).get("p95", [])
    return round(max(values) * 1000, 1) if values else None
