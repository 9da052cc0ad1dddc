"""The runbooks' decision matrix: triggers (004), severities (002) and the 000 tree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SEVERITY_ACTIONS = {  # runbook 002's matrix
    "critical": ("Emergency rollback", "immediately"),
    "high": ("Roll back", "within 15 minutes to 1 hour"),
    "medium": ("Evaluate: plan a fix or a rollback", "within 4 hours"),
    "low": ("Fix in the next deployment", "next release"),
    "ok": ("No action", "-"),
}
RANK = {"ok": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Thresholds(BaseModel):
    """Per-target overrides go under the target's `diagnose` mapping (same keys)."""

    model_config = ConfigDict(extra="forbid")

    error_rate_pct: float = 10.0  # critical: immediate rollback
    error_lines: int = 50  # high: errors logged in the window (when no rate metric)
    p95_baseline_ms: float | None = None
    p95_high_factor: float = 2.0
    p95_medium_factor: float = 1.5
    restarts: int = 5  # high: restarts in the window
    memory_pct: float = 95.0  # high
    cpu_pct: float = 80.0  # medium (runbook 000: CPU > 80% consistently)


class Trigger(BaseModel):
    name: str
    severity: str
    measured: str
    threshold: str


class Verdict(BaseModel):
    severity: str = "ok"
    action: str = "No action"
    timeframe: str = "-"
    triggers: list[Trigger] = Field(default_factory=list)
    unevaluated: list[str] = Field(default_factory=list)


def evaluate(facts: dict[str, Any], thresholds: Thresholds) -> Verdict:
    verdict = Verdict()
    fired = verdict.triggers

    def fire(name: str, severity: str, measured: str, threshold: str) -> None:
        fired.append(Trigger(name=name, severity=severity, measured=measured, threshold=threshold))

    rate = facts.get("error_rate_pct")
    if rate is not None and rate > thresholds.error_rate_pct:
        fire("Error rate", "critical", f"{rate:.1f}%", f"> {thresholds.error_rate_pct:g}%")
    health = facts.get("health_ok")
    if health is not None and facts.get("health_total") and health == 0:
        fire(
            "Complete unavailability",
            "critical",
            f"0 of {facts['health_total']} health endpoints OK",
            "any endpoint OK",
        )
    elif health is not None and facts.get("health_total") and health < facts["health_total"]:
        fire("Health endpoint failing", "high", f"{health} of {facts['health_total']} OK", "all OK")
    errors = facts.get("error_lines")
    if errors is not None and rate is None and errors > thresholds.error_lines:
        fire("Errors in logs", "high", f"{errors} lines", f"> {thresholds.error_lines}")
    p95 = facts.get("p95_ms")
    base = thresholds.p95_baseline_ms
    if p95 is not None and base:
        if p95 > base * thresholds.p95_high_factor:
            fire(
                "P95 latency",
                "high",
                f"{p95:.0f} ms",
                f"> {thresholds.p95_high_factor:g}x baseline {base:g} ms",
            )
        elif p95 > base * thresholds.p95_medium_factor:
            fire(
                "P95 latency",
                "medium",
                f"{p95:.0f} ms",
                f"> {thresholds.p95_medium_factor:g}x baseline {base:g} ms",
            )
    restarts = facts.get("restarts")
    if restarts is not None and restarts > thresholds.restarts:
        fire("Restarts", "high", f"{restarts} in the window", f"> {thresholds.restarts}")
    memory = facts.get("memory_pct")
    if memory is not None and memory > thresholds.memory_pct:
        fire("Memory", "high", f"{memory:.1f}%", f"> {thresholds.memory_pct:g}%")
    cpu = facts.get("cpu_pct")
    if cpu is not None and cpu > thresholds.cpu_pct:
        fire("CPU", "medium", f"{cpu:.1f}%", f"> {thresholds.cpu_pct:g}%")
    verdict.unevaluated = [
        name
        for name, key in (
            ("error rate", "error_rate_pct"),
            ("p95 latency", "p95_ms"),
            ("memory", "memory_pct"),
            ("health", "health_ok"),
        )
        if facts.get(key) is None
    ]
    if fired:
        verdict.severity = max((t.severity for t in fired), key=RANK.__getitem__)
    verdict.action, verdict.timeframe = SEVERITY_ACTIONS[verdict.severity]
    return verdict
