"""/diagnose on a compose + nginx host (runbook 004), against a real engine: container states
and restart counts, and `nginx -t`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.catalog import load_catalog
from bot.diagnose import capture
from bot.diagnose.messaging import key_figures
from tests.testbed.podman import BASE_IMAGE, ComposeApp
from tests.testbed.ports import wait_until

CRASHING = {
    "image": BASE_IMAGE,
    "pull_policy": "never",
    "network_mode": "host",
    "restart": "always",
    "command": ["sh", "-c", "sleep 0.1; exit 3"],
}


def host_target(tmp_path: Path, app: ComposeApp, nginx: Any, project: str | None = None) -> Any:
    path = tmp_path / "rollbot.yml"
    named = f"    compose_project: {project}\n" if project else ""
    path.write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  chat:\n"
        "    playbook: host-config-rollback\n"
        f"    app_dir: {app.app_dir}\n{named}"
        f"    nginx_conf: {nginx.conf_path}\n"
        f"    nginx_command: {json.dumps(nginx.command())}\n"
        "    health_urls: []\n"
    )
    return load_catalog(path).targets["chat"]


def restarts(app: ComposeApp, service: str) -> int:
    ids = [r["ID"] for r in app.containers() if f"-{service}-" in r["Names"]]
    out = app.engine.docker("inspect", "--format", "{{.RestartCount}}", *ids)
    return sum(int(n) for n in out.split())


async def test_containers_restarts_and_nginx_test_are_collected(
    tmp_path: Path, compose_app: Any, nginx: Any
) -> None:
    app = compose_app(web={"backend-wsgi": 2, "backend-asgi": 1}, postgres=False)
    server = nginx("http://127.0.0.1:9")
    target = host_target(tmp_path, app, server, project=app.project)
    result = await capture(target)
    containers = result.sources["containers"]
    assert containers.status == "ok", containers.error
    services = sorted(c["service"] for c in containers.data["containers"])
    assert services == ["backend-asgi", "backend-wsgi", "backend-wsgi"]
    assert containers.data["restarts"] == 0 and containers.data["services_not_running"] == []
    assert "restarts" not in {t.rule for t in result.verdict.triggers}
    assert result.sources["nginx_test"].data["ok"] is True

    app.compose("stop", "backend-asgi")
    server.write_config("events {}\nhttp { server { listen 127.0.0.1:1; broken_directive; } }\n")
    result = await capture(target)
    assert result.sources["containers"].data["services_not_running"] == ["backend-asgi"]
    shown = dict(key_figures(result))["Containers"]
    assert shown == f"2 of 3 running (compose project '{app.project}') · not running: backend-asgi"
    nginx_check = result.sources["nginx_test"].data
    assert nginx_check["ok"] is False and "[emerg]" in nginx_check["error"]


async def test_a_crash_looping_container_fires_the_restarts_trigger(
    tmp_path: Path, compose_app: Any, nginx: Any
) -> None:
    app = compose_app(web={"backend-wsgi": 1}, postgres=False, extra={"backend-asgi": CRASHING})
    wait_until(lambda: restarts(app, "backend-asgi") > 5, 60, "six restarts", 0.2)
    target = host_target(tmp_path, app, nginx("http://127.0.0.1:9"), project=app.project)
    result = await capture(target)
    data = result.sources["containers"].data
    (crashing,) = [c for c in data["containers"] if c["service"] == "backend-asgi"]
    assert crashing["restarts"] > 5 and data["restarts"] >= crashing["restarts"]
    assert data["most_restarted"]["name"] == crashing["name"]
    (trigger,) = [t for t in result.verdict.triggers if t.rule == "restarts"]
    assert trigger.severity == "high" and "container restarts" in trigger.measured
    assert dict(key_figures(result))["Restarts"] == trigger.measured
