"""capture() against moto and a local aiohttp health endpoint: triggers, timeouts, gaps."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from bot.diagnose import capture
from bot.diagnose.capture import resolve_options
from bot.diagnose.messaging import markdown
from tests.diagnose.conftest import (
    ALB,
    CLUSTER,
    SECRET_ENV,
    SECRET_TOKEN,
    SERVICE,
    HealthServer,
    seed_logs,
    seed_metrics,
    seed_service,
    target_of,
    write_catalog,
)
from tests.testbed.aws import Aws, make_ecs_service


async def test_the_runbook_triggers_fire_with_measured_values(
    aws: Aws, health_server: HealthServer, tmp_path: Path
) -> None:
    seed_service(aws)
    seed_logs(aws)
    seed_metrics(aws)
    health = [health_server.endpoint(200, delay_ms=250), health_server.endpoint(503)]
    diagnose = {"load_balancer": ALB, "thresholds": {"p95_baseline_ms": 100}}
    tgt = target_of(write_catalog(tmp_path, health=health, diagnose=diagnose))

    result = await capture(tgt)

    assert {n: s.status for n, s in result.sources.items()} == {
        "ecs_service": "ok",
        "stopped_tasks": "ok",
        "task_definitions": "ok",
        "logs /ecs/sandbox-broker": "ok",
        f"health {health[0]}": "ok",
        f"health {health[1]}": "ok",
        "metrics": "ok",
    }
    fired = {t.rule: t for t in result.verdict.triggers}
    assert set(fired) == {"error_rate", "health", "p95", "memory", "cpu"}
    assert fired["error_rate"].severity == "critical"
    assert fired["error_rate"].measured == "15.0% (150 of 1000 requests)"
    assert fired["error_rate"].threshold == "> 10%"
    assert fired["memory"].severity == "high" and fired["memory"].measured.startswith("97.5%")
    assert fired["cpu"].severity == "medium" and fired["cpu"].measured.startswith("82.0%")
    assert fired["health"].measured.startswith("1 of 2 health endpoints failing")
    assert "3x 503" in fired["health"].measured
    assert (
        fired["p95"].severity == "high" and "baseline 100 ms (configured)" in fired["p95"].measured
    )
    assert 250 <= result.figures.p95_ms < 1000
    assert result.verdict.severity == "critical"
    assert (result.verdict.action, result.verdict.timeframe) == (
        "Emergency rollback",
        "immediately",
    )
    assert result.verdict.triggers[0].severity == "critical"  # the strongest first
    assert result.id.startswith("dg-") and result.seconds < 8


async def test_evidence_from_ecs_and_logs(aws: Aws, tmp_path: Path) -> None:
    seed_service(aws)
    seed_logs(aws, errors=4)
    result = await capture(target_of(write_catalog(tmp_path)))

    svc = result.sources["ecs_service"].data
    assert (svc["running"], svc["desired"], svc["task_definition"]) == (2, 2, "sandbox-broker:6")
    history = result.sources["task_definitions"].data["history"]
    assert [h["revision"] for h in history] == [6, 5, 4, 3, 2]
    assert history[0]["current"] and history[0]["registered_at"] == "not reported"
    assert history[0]["containers"][0]["image"].endswith(":v6")
    assert any("image" in c and ":v5 -> " in c for c in history[0]["changes"])
    assert f"{SERVICE}: env MODE: single -> multi" in history[0]["changes"]
    assert f"{SERVICE}: env DB_PASSWORD changed" not in history[0]["changes"]  # same value
    logs = result.sources["logs /ecs/sandbox-broker"].data
    assert logs["count"] == 4 and logs["filter_pattern"] == "ERROR"
    assert [e["message"] for e in logs["latest"]][:2] == [
        "ERROR db login as [redacted] refused",  # newest first; the value learned from the env
        "ERROR 500 auth failed token=[redacted]",
    ]
    assert result.figures.error_lines == 4 and result.figures.restarts == 0


async def test_history_keeps_the_current_revision_and_ignores_other_families(
    aws: Aws, tmp_path: Path
) -> None:
    make_ecs_service(aws, CLUSTER, f"{SERVICE}-worker", f"{SERVICE}-worker", revisions=3)
    make_ecs_service(aws, CLUSTER, SERVICE, SERVICE, revisions=9, running_revision=2)
    result = await capture(target_of(write_catalog(tmp_path, log_groups=[])))
    data = result.sources["task_definitions"].data
    assert data["family"] == SERVICE and data["current_revision"] == 2
    assert [h["revision"] for h in data["history"]] == [9, 8, 7, 6, 5, 2]
    assert [h["current"] for h in data["history"]] == [False] * 5 + [True]


async def test_a_hanging_source_times_out_while_the_rest_arrives(
    aws: Aws, health_server: HealthServer, tmp_path: Path
) -> None:
    seed_service(aws)
    seed_logs(aws)
    seed_metrics(aws)
    fast, lb = health_server.endpoint(200), {"load_balancer": ALB}
    # moto's backends start lazily: keep that out of the timing
    await capture(target_of(write_catalog(tmp_path, health=[fast], diagnose=lb)))
    tgt = target_of(write_catalog(tmp_path, health=[health_server.hanging, fast], diagnose=lb))

    started = time.monotonic()
    result = await capture(tgt, timeout=1.0)
    elapsed = time.monotonic() - started

    hung = result.sources[f"health {health_server.hanging}"]
    assert hung.status == "timeout" and hung.error == "timed out after 1s"
    assert 1.0 <= hung.seconds < 1.5
    others = {n: s.status for n, s in result.sources.items() if s is not hung}
    assert set(others.values()) == {"ok"}, others
    assert elapsed < 1.0 + 0.75  # bounded by the timeout, not the sum of the sources
    # a health check that does not answer within the limit counts as failing
    assert result.figures.health_failing == 1 and result.figures.health_total == 2
    assert "timed out after 1s" in " ".join(result.figures.health_detail)
    assert result.verdict.severity == "critical"  # the 15% error rate still arrived


async def test_all_endpoints_failing_is_complete_unavailability(
    aws: Aws, health_server: HealthServer, tmp_path: Path
) -> None:
    seed_service(aws)
    health = [health_server.endpoint(503), health_server.endpoint(502), "http://127.0.0.1:9/"]
    result = await capture(target_of(write_catalog(tmp_path, health=health, log_groups=[])))
    fired = {t.rule: t for t in result.verdict.triggers}
    assert fired["unavailable"].severity == "critical"
    assert fired["unavailable"].measured.startswith("3 of 3 health endpoints failing")
    refused = result.sources["health http://127.0.0.1:9/"].data
    assert refused["failing"] and refused["errors"] and refused["p95_ms"] is None
    assert result.sources[f"health {health[0]}"].data["body"] == "upstream db down"
    assert result.verdict.severity == "critical"


async def test_unconfigured_sources_are_skipped_and_say_so(aws: Aws, tmp_path: Path) -> None:
    seed_service(aws)
    result = await capture(target_of(write_catalog(tmp_path, log_groups=[])))
    assert result.sources["logs"].status == "skipped"
    assert result.sources["logs"].error == "not configured (no log_groups)"
    assert result.sources["health"].error == "not configured (no health_urls)"
    assert result.sources["metrics"].status == "ok"  # CPU and memory come with every service
    unevaluated = "\n".join(result.verdict.unevaluated)
    assert "error rate: not configured (no load balancer" in unevaluated
    assert "health: not configured (no health_urls)" in unevaluated
    assert result.verdict.severity == "ok" and result.verdict.triggers == []


async def test_a_failing_source_reports_its_error_and_the_rest_still_counts(
    aws: Aws, tmp_path: Path
) -> None:
    seed_service(aws)
    seed_logs(aws)
    groups = ["/ecs/sandbox-broker", "/ecs/missing"]
    result = await capture(target_of(write_catalog(tmp_path, log_groups=groups)))
    missing = result.sources["logs /ecs/missing"]
    assert missing.status == "error" and "ResourceNotFoundException" in missing.error
    assert result.figures.error_lines == 3
    assert any("logs /ecs/missing" in u for u in result.verdict.unevaluated)

    gone = await capture(target_of(write_catalog(tmp_path, service="no-such-service")))
    assert gone.sources["ecs_service"].status == "error"
    assert "no-such-service not found in cluster" in gone.sources["ecs_service"].error


async def test_nothing_measurable_gives_no_verdict(tmp_path: Path, aws: Aws) -> None:
    result = await capture(target_of(write_catalog(tmp_path, service="absent", log_groups=[])))
    assert result.verdict.severity == "unknown"
    assert result.verdict.action == "No verdict"


async def test_secrets_appear_nowhere_in_the_capture(
    aws: Aws, health_server: HealthServer, tmp_path: Path
) -> None:
    seed_service(aws)
    seed_logs(aws)
    tgt = target_of(write_catalog(tmp_path, health=[health_server.endpoint()]))
    result = await capture(tgt)
    shown = result.to_json() + markdown(result) + result.model_dump_json()
    for secret in (SECRET_ENV, SECRET_TOKEN, "api-key-AbCdEf"):
        assert secret not in shown
    current = result.sources["task_definitions"].data["history"][0]["containers"][0]
    env = {e["name"]: e["value"] for e in current["environment"]}
    assert env == {"DB_PASSWORD": "[redacted]", "MODE": "multi"}
    assert current["secrets"] == [{"name": "API_KEY", "value": "[redacted]"}]
    # the value learned from the environment is also removed from a log line that repeats it
    assert "ERROR db login as [redacted] refused" in shown
    assert "token=[redacted]" in shown


async def test_options_come_from_the_diagnose_settings(aws: Aws, tmp_path: Path) -> None:
    diagnose = {
        "window_minutes": 30,
        "log_filter_pattern": "FATAL",
        "source_timeout": 3,
        "health_samples": 5,
        "thresholds": {"error_rate_pct": 20},
    }
    tgt = target_of(write_catalog(tmp_path, diagnose=diagnose))
    options, timeout = resolve_options(tgt)
    assert timeout == 3 and options.window_minutes == 30 and options.health_samples == 5
    assert options.thresholds.error_rate_pct == 20 and options.thresholds.memory_pct == 95
    make_ecs_service(aws, CLUSTER, SERVICE, SERVICE, revisions=1)
    seed_logs(aws)
    result = await capture(tgt)
    assert result.timeout == 3 and result.window_minutes == 30
    assert result.sources["logs /ecs/sandbox-broker"].data["count"] == 0  # no FATAL lines


def test_options_may_come_from_playbook_params() -> None:
    params = {
        "redact_names": ["(?i)^pin$"],
        "log_filter_pattern": "FATAL",
        "diagnose": {"window_minutes": 5, "thresholds": {"restarts": 9}},
    }
    target = SimpleNamespace(name="x", params=params, settings=None)
    options, timeout = resolve_options(target)
    assert options.redact_names == ("(?i)^pin$",) and options.log_filter_pattern == "FATAL"
    assert options.window_minutes == 5 and options.thresholds.restarts == 9
    assert timeout == 8.0
