"""`rollbot serve` as a subprocess: signed requests, usage answers, 401s, health and metrics."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.testbed.slack_requests import slash_command

CATALOG = """\
approvers: [U0LEAD]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
  worker:
    playbook: ecs-scale
    cluster: sandbox-broker-cluster
    service: sandbox-broker-worker
    region: eu-central-1
"""


def write_catalog(tmp_path: Path, text: str = CATALOG) -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(text)
    return path


def test_rollback_help_answers_within_three_seconds(rollbot_server, tmp_path: Path) -> None:
    bot = rollbot_server(config=write_catalog(tmp_path))
    started = time.monotonic()
    status, body = bot.sender.post(*slash_command("/rollback", "help"))
    elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < 3.0
    assert "/rollback TARGET" in json.dumps(body)
    assert "/rollback status" in json.dumps(body)


def test_unsigned_wrong_or_stale_requests_get_401(rollbot_server, tmp_path: Path) -> None:
    bot = rollbot_server(config=write_catalog(tmp_path))
    body, headers = slash_command("/rollback", "help")
    unsigned = {k: v for k, v in headers.items() if not k.lower().startswith("x-slack")}
    assert bot.sender.post(body, unsigned)[0] == 401
    assert bot.sender.post(*slash_command("/rollback", "help", secret="wrong-secret"))[0] == 401
    assert bot.sender.post(*slash_command("/rollback", "help", stale=True))[0] == 401


def test_diagnose_without_target_and_unknown_target(rollbot_server, tmp_path: Path) -> None:
    bot = rollbot_server(config=write_catalog(tmp_path))
    status, body = bot.sender.post(*slash_command("/diagnose", ""))
    assert status == 200 and "Usage" in json.dumps(body)
    status, body = bot.sender.post(*slash_command("/rollback", "payments to 3"))
    text = json.dumps(body)
    assert status == 200
    assert "payments" in text and "`api`" in text and "`worker`" in text
    status, body = bot.sender.post(*slash_command("/diagnose", "payments"))
    assert "`api`" in json.dumps(body)


def test_healthz_and_metrics(rollbot_server, tmp_path: Path) -> None:
    bot = rollbot_server(config=write_catalog(tmp_path))
    with urllib.request.urlopen(f"{bot.url}/healthz", timeout=5) as resp:
        health = json.loads(resp.read())
    assert health["status"] == "ok"
    assert health["store"] == {"backend": "sqlite", "ok": True}
    bot.sender.post(*slash_command("/rollback", "help"))
    with urllib.request.urlopen(f"{bot.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'rollbot_slack_requests_total{kind="command",status="200"}' in text
