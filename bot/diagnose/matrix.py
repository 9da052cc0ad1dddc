"""The runbooks' decision matrix: triggers from runbook 004 and 000's tree, severities with
action and timeframe from runbook 002."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.diagnose.models import Figures, Severity, SourceResult, Trigger, Verdict

RANK: dict[str, int] = {"unknown": 0, "ok": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
# runbook 002's matrix: severity -> (action, timeframe)
ACTIONS: dict[str, tuple[str, str]] = {
    "critical": ("Emergency rollback", "immediately"),
    "high": ("Schedule rollback", "< 1 hour"),
    "medium": ("Plan fix or rollback", "< 4 hours"),
    "low": ("Fix in next deployment", "next release"),
    "ok": ("No rollback", "keep monitoring"),
    "unknown": ("No verdict", "check the sources"),
}
RECOMMENDATIONS: dict[str, str] = {
    "critical": "Roll back now: production is down or failing badly.",
    "high": "Roll back within 15 minutes (runbook 004); at the latest within 1 hour (002).",
    "medium": "Evaluate for rollback: re-check in 10 minutes; fix or roll back within 4 hours.",
    "low": "No rollback: monitor closely and fix in the next deployment.",
    "ok": "No rollback trigger fired: keep monitoring.",
    "unknown": "Nothing could be measured: read the sources below before deciding.",
}


class Thresholds(BaseModel):
    """Every threshold can be overridden per target in rollbot.yml::

        diagnose:
          thresholds: {error_rate_pct: 20, p95_baseline_ms: 250}

    Keys and shipped defaults (all numbers):
      error_rate_pct          10    5xx rate above it: critical, immediate rollback (004)
      error_rate_elevated_pct  5    above it: high, rollback (000's tree), re-check in 5 min (004)
      error_rate_low_pct       1    above it: low, monitor closely (004's validation: < 1%)
      p95_baseline_ms         unset fixed p95 baseline; unset: the same window one day earlier
      p95_high_factor          2    p95 above factor x baseline: high (004)
      p95_medium_factor        1.5  p95 above factor x baseline: medium (004)
      p95_max_ms            3000    p95 above it with no baseline trigger: medium (000)
      restarts                 5    stopped tasks in the window above it: high (004)
      memory_pct              95    sustained memory above it: high (004)
      cpu_pct                 80    sustained CPU above it: medium (000)
      sustained_minutes        3    "sustained" = every one of the last N one-minute datapoints
      error_lines             50    ERROR lines in the logs window above it: medium (000)

    Rules without a threshold: every health endpoint failing (5xx, refused or timed out) is
    critical (004: complete unavailability), some failing is high (002); no running task while
    some are desired is critical (000: completely down); an ECS rollout FAILED is high (002).
    """

    model_config = ConfigDict(extra="forbid")

    error_rate_pct: float = 10.0
    error_rate_elevated_pct: float = 5.0
    error_rate_low_pct: float = 1.0
    p95_baseline_ms: float | None = None
    p95_high_factor: float = 2.0
    p95_medium_factor: float = 1.5
    p95_max_ms: float = 3000.0
    restarts: float = 5.0
    memory_pct: float = 95.0
    cpu_pct: float = 80.0
    sustained_minutes: float = 3.0
    error_lines: float = 50.0


def evaluate(fig: Figures, th: Thresholds) -> Verdict:
    """Apply every rule the figures allow; list the ones they do not."""
    fired: list[Trigger] = []
    for rule in (_availability, _error_rate, _latency, _restarts, _sustained, _logs, _rollout):
        fired += rule(fig, th)
    inputs = (
        fig.running,
        fig.error_rate_pct,
        fig.p95_ms,
        fig.memory_pct,
        fig.cpu_pct,
        fig.restarts,
        fig.error_lines,
        fig.health_total,
    )
    measured = any(v is not None for v in inputs)
    severity: Severity = "ok" if measured else "unknown"
    for t in fired:
        if RANK[t.severity] > RANK[severity]:
            severity = t.severity
    fired.sort(key=lambda t: -RANK[t.severity])
    action, timeframe = ACTIONS[severity]
    return Verdict(
        severity=severity,
        action=action,
        timeframe=timeframe,
        recommendation=RECOMMENDATIONS[severity],
        triggers=fired,
        unevaluated=[f"{rule}: {why}" for rule, why in fig.missing.items()],
    )


def _trigger(
    rule: str,
    name: str,
    severity: Severity,
    measured: str,
    threshold: str,
    response: str,
    runbook: str,
) -> list[Trigger]:
    return [
        Trigger(
            rule=rule,
            name=name,
            severity=severity,
            measured=measured,
            threshold=threshold,
            response=response,
            runbook=runbook,
        )
    ]


def _availability(fig: Figures, th: Thresholds) -> list[Trigger]:
    out: list[Trigger] = []
    failing = f"{fig.health_failing} of {fig.health_total} health endpoints failing"
    detail = f"{failing} ({'; '.join(fig.health_detail)})"
    if fig.health_total and fig.health_failing == fig.health_total:
        out += _trigger(
            "unavailable",
            "Complete unavailability",
            "critical",
            detail,
            "any endpoint answering below 500",
            "Immediate rollback",
            "004 critical 2",
        )
    elif fig.health_total and fig.health_failing:
        out += _trigger(
            "health",
            "Health endpoints failing",
            "high",
            detail,
            "every endpoint answering below 500",
            "Roll back within 1 hour",
            "002 high",
        )
    if fig.desired and fig.running == 0:
        out += _trigger(
            "no_tasks",
            "No running tasks",
            "critical",
            f"0 of {fig.desired} tasks running",
            "at least one running",
            "Emergency rollback",
            "000: completely down",
        )
    return out


def _error_rate(fig: Figures, th: Thresholds) -> list[Trigger]:
    rate = fig.error_rate_pct
    if rate is None:
        return []
    measured = f"{rate:.1f}% ({fig.errors_5xx:g} of {fig.requests:g} requests)"
    if rate > th.error_rate_pct:
        return _trigger(
            "error_rate",
            "Error rate",
            "critical",
            measured,
            f"> {th.error_rate_pct:g}%",
            "Immediate rollback",
            "004 critical 1",
        )
    if rate > th.error_rate_elevated_pct:
        return _trigger(
            "error_rate",
            "Elevated error rate",
            "high",
            measured,
            f"> {th.error_rate_elevated_pct:g}%",
            "Roll back (000); re-check in 5 minutes (004)",
            "000 tree, 004 matrix",
        )
    if rate > th.error_rate_low_pct:
        return _trigger(
            "error_rate",
            "Error rate above normal",
            "low",
            measured,
            f"> {th.error_rate_low_pct:g}%",
            "Monitor closely",
            "004 matrix",
        )
    return []


def _latency(fig: Figures, th: Thresholds) -> list[Trigger]:
    p95, base = fig.p95_ms, fig.p95_baseline_ms
    if p95 is None:
        return []
    measured = f"{p95:.0f} ms ({fig.p95_from})"
    if base:
        compared = f"{measured}, {p95 / base:.1f}x baseline {base:.0f} ms ({fig.baseline_from})"
        for factor, severity, response, runbook in (
            (th.p95_high_factor, "high", "Rollback within 15 minutes", "004 high 1"),
            (th.p95_medium_factor, "medium", "Evaluate in 10 minutes", "004 medium 1"),
        ):
            if p95 > base * factor:
                return _trigger(
                    "p95",
                    "P95 latency",
                    severity,  # type: ignore[arg-type]
                    compared,
                    f"> {factor:g}x baseline",
                    response,
                    runbook,
                )
    if p95 > th.p95_max_ms:
        return _trigger(
            "p95_max",
            "Slow responses",
            "medium",
            measured,
            f"> {th.p95_max_ms:g} ms",
            "Evaluate for rollback",
            "000: response times > 3 s",
        )
    return []


def _restarts(fig: Figures, th: Thresholds) -> list[Trigger]:
    if fig.restarts is None or fig.restarts <= th.restarts:
        return []
    return _trigger(
        "restarts",
        "Containers restarting" if fig.restarts_what else "Tasks restarting",
        "high",
        fig.restarts_what or f"{fig.restarts} tasks stopped in the window",
        f"> {th.restarts:g}",
        "Rollback within 15 minutes",
        "004 high 2",
    )


def _sustained(fig: Figures, th: Thresholds) -> list[Trigger]:
    out: list[Trigger] = []
    lowest = f"lowest of the last {th.sustained_minutes:g} min"
    if fig.memory_pct is not None and fig.memory_pct > th.memory_pct:
        out += _trigger(
            "memory",
            "Memory",
            "high",
            f"{fig.memory_pct:.1f}% ({lowest})",
            f"> {th.memory_pct:g}% sustained",
            "Rollback within 15 minutes",
            "004 high 3",
        )
    if fig.cpu_pct is not None and fig.cpu_pct > th.cpu_pct:
        out += _trigger(
            "cpu",
            "CPU",
            "medium",
            f"{fig.cpu_pct:.1f}% ({lowest})",
            f"> {th.cpu_pct:g}% sustained",
            "Evaluate for rollback",
            "000: CPU > 80% consistently",
        )
    return out


def _logs(fig: Figures, th: Thresholds) -> list[Trigger]:
    if fig.error_lines is None or fig.error_lines <= th.error_lines:
        return []
    return _trigger(
        "error_lines",
        "Errors in logs",
        "medium",
        f"{fig.error_lines} lines",
        f"> {th.error_lines:g}",
        "Evaluate for rollback",
        "000: high error rate",
    )


def _rollout(fig: Figures, th: Thresholds) -> list[Trigger]:
    if not fig.rollout_failed:
        return []
    return _trigger(
        "rollout",
        "Deployment failed",
        "high",
        "ECS reports the rollout FAILED",
        "rollout not FAILED",
        "Roll back within 1 hour",
        "002 high",
    )


# ---------------------------------------------------------------- reading the sources


def figures(sources: dict[str, SourceResult], th: Thresholds) -> Figures:
    """The matrix's inputs, from whatever answered; `missing` says why the rest is unknown."""
    fig = Figures()
    _service_figures(fig, sources)
    _metric_figures(fig, sources, th)
    _health_figures(fig, sources)
    _log_figures(fig, sources)
    return fig


def _why(src: SourceResult | None, default: str) -> str:
    if src is None:
        return default
    return src.error or f"{src.status}"


def _service_figures(fig: Figures, sources: dict[str, SourceResult]) -> None:
    svc = sources.get("ecs_service")
    if svc is None or svc.status != "ok":
        fig.missing["tasks"] = _why(svc, "not configured (no cluster/service)")
    else:
        d = svc.data
        fig.running, fig.desired = d.get("running"), d.get("desired")
        fig.task_definition = d.get("task_definition")
        fig.rollout_failed = any(x.get("rollout_state") == "FAILED" for x in d["deployments"])
    stopped = sources.get("stopped_tasks")
    compose = sources.get("containers")
    if compose is not None and compose.status == "ok" and "restarts" in compose.data:
        # a compose host: the engine's restart counts of the project's containers
        fig.restarts = compose.data["restarts"]
        worst = compose.data.get("most_restarted") or {}
        fig.restarts_what = (
            f"{fig.restarts} container restarts ({worst.get('name')}: {worst.get('restarts')})"
            if worst
            else f"{fig.restarts} container restarts"
        )
        fig.missing.pop("restarts", None)
        fig.containers = _containers_line(compose.data)
    elif stopped is not None and stopped.status == "ok":
        fig.restarts = stopped.data["in_window"]
    elif svc is not None and svc.status == "ok":
        fig.restarts = svc.data.get("restarts_from_events")  # the service events say it too
    else:
        fig.missing["restarts"] = _why(stopped, "not configured (no cluster/service)")


def _containers_line(data: dict[str, Any]) -> str:
    shown = data.get("containers") or []
    running = sum(1 for c in shown if c.get("state") == "running")
    line = f"{running} of {len(shown)} running (compose project {data.get('project')!r})"
    down = data.get("services_not_running") or []
    if down:
        line += f" · not running: {', '.join(down)}"
    if not shown:
        line += " · no containers at all: is compose_project right?"
    return line


def _metric_figures(fig: Figures, sources: dict[str, SourceResult], th: Thresholds) -> None:
    src = sources.get("metrics")
    m = src.data if src is not None and src.status == "ok" else {}
    why = _why(src, "not configured")
    if m.get("requests"):
        fig.requests, fig.errors_5xx = m["requests"], m.get("errors_5xx", 0.0)
        fig.error_rate_pct = 100.0 * fig.errors_5xx / fig.requests
    elif m and not m.get("load_balancer"):
        fig.missing["error rate"] = "not configured (no load balancer: set diagnose.load_balancer)"
    else:
        fig.missing["error rate"] = "no requests in the window" if m else why
    if m.get("p95_ms") is not None:
        fig.p95_ms, fig.p95_from = m["p95_ms"], "load balancer TargetResponseTime"
    if th.p95_baseline_ms:
        fig.p95_baseline_ms, fig.baseline_from = th.p95_baseline_ms, "configured"
    elif m.get("p95_baseline_ms") is not None:
        fig.p95_baseline_ms, fig.baseline_from = m["p95_baseline_ms"], "same window yesterday"
    for key, label in (("memory", "memory"), ("cpu", "CPU")):
        value = (m.get(key) or {}).get("sustained")
        if value is None:
            fig.missing[label] = f"no {label} datapoints in the window" if m else why
        setattr(fig, f"{key}_pct", value)


def _health_figures(fig: Figures, sources: dict[str, SourceResult]) -> None:
    checks = {n: s for n, s in sources.items() if n.startswith("health ")}
    failing, detail = 0, []
    for name, src in checks.items():
        url = name.removeprefix("health ")
        if src.status == "timeout":
            failing += 1
            detail.append(f"{url}: {src.error}")
        elif src.status == "ok" and src.data["failing"]:
            failing += 1
            detail.append(f"{url}: {src.data['summary']}")
    counted = [s for s in checks.values() if s.status in ("ok", "timeout")]
    if counted:
        fig.health_total, fig.health_failing, fig.health_detail = len(counted), failing, detail
    if len(counted) < len(checks) or not checks:
        fig.missing["health"] = (
            "; ".join(f"{n}: {s.error}" for n, s in checks.items() if s not in counted)
            or "not configured (no health_urls)"
        )
    if fig.p95_ms is None:
        answered = [s.data["p95_ms"] for s in checks.values() if s.status == "ok"]
        if answered and any(v is not None for v in answered):
            fig.p95_ms = max(v for v in answered if v is not None)
            fig.p95_from = "health checks"
    if fig.p95_ms is None:
        fig.missing["p95 latency"] = "no load balancer p95 and no health check answered"
    elif fig.p95_baseline_ms is None:
        fig.missing["p95 vs baseline"] = (
            "no baseline (set diagnose.thresholds.p95_baseline_ms, or a load balancer)"
        )


def _log_figures(fig: Figures, sources: dict[str, SourceResult]) -> None:
    groups = {n: s for n, s in sources.items() if n.startswith("logs ")}
    read = [s for s in groups.values() if s.status == "ok"]
    if read:
        fig.error_lines = sum(s.data["count"] for s in read)
    unread = [f"{n}: {s.error}" for n, s in groups.items() if s.status != "ok"]
    if unread or not groups:
        fig.missing["errors in logs"] = "; ".join(unread) or "not configured (no log_groups)"
