"""/diagnose against moto and local health endpoints: triggers, timeouts, redaction."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.catalog import load_catalog
from bot.diagnose import capture
from tests.testbed.aws import Aws, make_ecs_service, put_log_lines
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

SECRET_ENV = "hunter2-db-password"
SECRET_TOKEN = "xoxb-123456789-planted-token"


def catalog(tmp_path: Path, health: list[str], extra: str = "") -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(f"""\
approvers: [U0LEAD]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
    health_urls: {json.dumps(health)}
    log_groups: [/ecs/sandbox-broker]
    diagnose:
      load_balancer: app/sandbox-alb/50dc6c495c0c9188
      source_timeout: 2
      thresholds: {{p95_baseline_ms: 100}}
{extra}""")
    return path


def seed(aws: Aws) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker",
                     revisions=6, environment={"DB_PASSWORD": SECRET_ENV, "MODE": "multi"})
    put_log_lines(aws, "/ecs/sandbox-broker",
                  [f"ERROR 500 auth failed token={SECRET_TOKEN}"] * 3 + ["INFO fine"] * 2)
    now = datetime.now(UTC)
    metrics = [("RequestCount", 1000.0, "Count"), ("HTTPCode_Target_5XX_Count", 150.0, "Count")]
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[
        {"MetricName": name, "Value": value, "Unit": unit, "Timestamp": now,
         "Dimensions": [{"Name": "LoadBalancer", "Value": "app/sandbox-alb/50dc6c495c0c9188"}]}
        for name, value, unit in metrics])
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/ECS", MetricData=[
        {"MetricName": "MemoryUtilization", "Value": 97.5, "Unit": "Percent", "Timestamp": now,
         "Dimensions": [{"Name": "ClusterName", "Value": "sandbox-broker-cluster"},
                        {"Name": "ServiceName", "Value": "sandbox-broker"}]}])


async def test_verdict_fires_the_runbook_triggers(aws: Aws, http_backend: Any,
                                                  tmp_path: Path) -> None:
    seed(aws)
    up, down = http_backend(), http_backend()
    down.status = 503
    tgt = load_catalog(catalog(tmp_path, [up.url, down.url])).targets["api"]
    result = await capture(tgt)
    assert {n: s.status for n, s in result.sources.items()} == {
        "ecs_service": "ok", "task_definitions": "ok", "logs": "ok", "health": "ok",
        "metrics": "ok"}
    fired = {t.name: t for t in result.verdict.triggers}
    assert fired["Error rate"].measured == "15.0%" and fired["Error rate"].severity == "critical"
    assert fired["Memory"].measured == "97.5%"
    assert fired["Health endpoint failing"].measured == "1 of 2 OK"
    assert result.verdict.severity == "critical"
    assert result.verdict.action == "Emergency rollback"
    history = result.sources["task_definitions"].data["history"]
    assert [h["revision"] for h in history] == [6, 5, 4, 3, 2]
    assert result.sources["logs"].data["error_lines"] == 3


async def test_a_hanging_source_times_out_while_the_rest_arrive(aws: Aws, http_backend: Any,
                                                                tmp_path: Path) -> None:
    seed(aws)
    slow = http_backend()
    slow.delay = 10
    tgt = load_catalog(catalog(tmp_path, [slow.url])).targets["api"]
    started = time.monotonic()
    result = await capture(tgt)
    elapsed = time.monotonic() - started
    assert result.sources["health"].status == "timeout"
    assert "timed out after 2s" in result.sources["health"].error
    assert result.sources["logs"].status == "ok" and result.sources["metrics"].status == "ok"
    assert elapsed < 2 + 1.5  # bounded by the per-source timeout, not the sum
    assert "health" in result.verdict.unevaluated


async def test_diagnose_command_end_to_end_without_leaking_secrets(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    seed(aws)
    bot = rollbot_server(config=catalog(tmp_path, [http_backend().url]), env=aws.env)
    status, body = bot.sender.post(*slash_command("/diagnose", "api", channel_id="C0ORIGIN"))
    assert status == 200 and "Diagnosing" in json.dumps(body)
    message = fake_slack.wait_for("chat.postMessage")[0].args
    fake_slack.wait_for("files.completeUploadExternal")
    shown = json.dumps(message)
    assert "CRITICAL" in shown and "Error rate" in shown and "15.0%" in shown
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["text"]["text"] == "Roll back" and json.loads(button["value"])["target"] == "api"
    upload = fake_slack.uploaded_files[0].text
    assert "ERROR 500 auth failed" in upload and "DB_PASSWORD" in upload
    db = sqlite3.connect(tmp_path / "rollbot.db").execute("SELECT data FROM records").fetchall()
    stored = json.dumps(db)
    for secret in (SECRET_ENV, SECRET_TOKEN):
        assert secret not in shown and secret not in upload and secret not in stored
    assert fake_slack.errors == []

    # the Roll back button opens the form pre-filled with the target and the diagnosis
    from tests.testbed.slack_requests import block_action

    bot.sender.post(*block_action("diagnose_rollback", button["value"], user_id="U0LEAD"))
    view = fake_slack.wait_for("views.open")[0].args["view"]
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "api"
    assert json.loads(view["private_metadata"])["diagnosis"].startswith("dg-")
