"""The decision matrix: each runbook trigger at its threshold, severities, overrides, gaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.catalog import load_catalog
from bot.diagnose.matrix import Thresholds, evaluate, figures
from bot.diagnose.models import Figures, SourceResult
from bot.errors import ConfigError
from tests.diagnose.conftest import write_catalog


def judge(th: Thresholds | None = None, **values: Any) -> tuple[str, dict[str, str]]:
    verdict = evaluate(Figures(**values), th or Thresholds())
    return verdict.severity, {t.rule: t.severity for t in verdict.triggers}


@pytest.mark.parametrize(
    ("rate", "severity"),
    [(10.1, "critical"), (10.0, "high"), (5.1, "high"), (5.0, "low"), (1.1, "low"), (1.0, "ok")],
)
def test_error_rate(rate: float, severity: str) -> None:
    got, fired = judge(error_rate_pct=rate, requests=1000, errors_5xx=rate * 10)
    assert got == severity
    assert fired.get("error_rate", "ok") == severity


@pytest.mark.parametrize(("p95", "severity"), [(201, "high"), (151, "medium"), (150, "ok")])
def test_p95_against_the_baseline(p95: float, severity: str) -> None:
    got, fired = judge(p95_ms=p95, p95_from="health checks", p95_baseline_ms=100)
    assert got == severity and fired.get("p95", "ok") == severity


def test_slow_responses_without_a_baseline() -> None:
    assert judge(p95_ms=3500) == ("medium", {"p95_max": "medium"})
    assert judge(p95_ms=2900) == ("ok", {})


@pytest.mark.parametrize(
    ("values", "rule", "severity"),
    [
        ({"restarts": 6}, "restarts", "high"),
        ({"memory_pct": 95.5}, "memory", "high"),
        ({"cpu_pct": 80.5}, "cpu", "medium"),
        ({"error_lines": 51}, "error_lines", "medium"),
        ({"running": 0, "desired": 2}, "no_tasks", "critical"),
        ({"running": 2, "desired": 2, "rollout_failed": True}, "rollout", "high"),
        ({"health_total": 2, "health_failing": 2}, "unavailable", "critical"),
        ({"health_total": 2, "health_failing": 1}, "health", "high"),
    ],
)
def test_each_trigger(values: dict[str, Any], rule: str, severity: str) -> None:
    assert judge(**values) == (severity, {rule: severity})


@pytest.mark.parametrize(
    "values",
    [
        {"restarts": 5},
        {"memory_pct": 95.0},
        {"cpu_pct": 80.0},
        {"error_lines": 50},
        {"running": 0, "desired": 0},
        {"health_total": 2, "health_failing": 0},
    ],
)
def test_at_the_threshold_nothing_fires(values: dict[str, Any]) -> None:
    assert judge(**values) == ("ok", {})


def test_the_strongest_trigger_decides_and_comes_first() -> None:
    verdict = evaluate(
        Figures(cpu_pct=90, memory_pct=99, error_rate_pct=50, requests=10, errors_5xx=5),
        Thresholds(),
    )
    assert verdict.severity == "critical"
    assert [t.severity for t in verdict.triggers] == ["critical", "high", "medium"]
    assert (verdict.action, verdict.timeframe) == ("Emergency rollback", "immediately")
    error = verdict.triggers[0]
    assert error.measured == "50.0% (5 of 10 requests)" and error.threshold == "> 10%"
    assert error.response == "Immediate rollback" and error.runbook == "004 critical 1"


def test_severities_follow_runbook_002() -> None:
    expected = {
        "high": ("Schedule rollback", "< 1 hour"),
        "medium": ("Plan fix or rollback", "< 4 hours"),
        "low": ("Fix in next deployment", "next release"),
    }
    for values, severity in (
        ({"restarts": 9}, "high"),
        ({"cpu_pct": 99}, "medium"),
        ({"error_rate_pct": 2, "requests": 100, "errors_5xx": 2}, "low"),
    ):
        verdict = evaluate(Figures(**values), Thresholds())
        assert (verdict.action, verdict.timeframe) == expected[severity]
        assert verdict.recommendation


def test_nothing_measured_is_unknown_not_ok() -> None:
    verdict = evaluate(Figures(missing={"error rate": "metrics timed out after 8s"}), Thresholds())
    assert verdict.severity == "unknown"
    assert verdict.unevaluated == ["error rate: metrics timed out after 8s"]


def test_thresholds_are_overridable() -> None:
    th = Thresholds(error_rate_pct=20, restarts=10, p95_high_factor=3)
    assert judge(th, error_rate_pct=15, requests=100, errors_5xx=15)[0] == "high"
    assert judge(th, restarts=8) == ("ok", {})
    assert judge(th, p95_ms=250, p95_baseline_ms=100)[1] == {"p95": "medium"}


def test_unknown_threshold_keys_are_catalog_errors(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, diagnose={"thresholds": {"error_rate": 5}})
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    assert "error_rate" in str(raised.value)


def ok(**data: Any) -> SourceResult:
    return SourceResult(status="ok", data=data)


def test_figures_read_from_the_sources() -> None:
    sources = {
        "ecs_service": ok(
            running=1,
            desired=3,
            task_definition="api:7",
            deployments=[{"rollout_state": "FAILED"}],
            restarts_from_events=9,
        ),
        "stopped_tasks": ok(in_window=4),
        "metrics": ok(
            load_balancer="app/a/1",
            requests=200.0,
            errors_5xx=30.0,
            p95_ms=900.0,
            p95_baseline_ms=300.0,
            memory={"sustained": 50.0},
            cpu={"sustained": None},
        ),
        "health https://a/": ok(failing=True, summary="3x 503", p95_ms=12.0),
        "health https://b/": SourceResult(status="timeout", error="timed out after 8s"),
        "health https://c/": SourceResult(status="error", error="InvalidURL: c"),
        "logs /ecs/a": ok(count=7),
        "logs /ecs/b": SourceResult(status="timeout", error="timed out after 8s"),
    }
    fig = figures(sources, Thresholds())
    assert (fig.running, fig.desired, fig.task_definition, fig.rollout_failed) == (
        1,
        3,
        "api:7",
        True,
    )
    assert fig.restarts == 4  # stopped tasks win over the events
    assert fig.error_rate_pct == 15.0
    assert (fig.p95_ms, fig.p95_from) == (900.0, "load balancer TargetResponseTime")
    assert (fig.p95_baseline_ms, fig.baseline_from) == (300.0, "same window yesterday")
    assert fig.memory_pct == 50.0 and fig.cpu_pct is None
    assert (fig.health_total, fig.health_failing) == (2, 2)
    assert fig.health_detail == ["https://a/: 3x 503", "https://b/: timed out after 8s"]
    assert fig.error_lines == 7
    assert fig.missing["health"] == "health https://c/: InvalidURL: c"
    assert fig.missing["errors in logs"] == "logs /ecs/b: timed out after 8s"
    assert fig.missing["CPU"] == "no CPU datapoints in the window"
    fired = {t.rule for t in evaluate(fig, Thresholds()).triggers}
    assert fired == {"unavailable", "error_rate", "p95", "rollout"}


def test_a_configured_baseline_wins_over_yesterday() -> None:
    sources = {"metrics": ok(load_balancer="a", p95_ms=500.0, p95_baseline_ms=100.0)}
    fig = figures(sources, Thresholds(p95_baseline_ms=400))
    assert (fig.p95_baseline_ms, fig.baseline_from) == (400, "configured")
