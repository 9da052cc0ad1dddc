"""/diagnose on a compose + nginx host (runbook 004): container states and `nginx -t`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.catalog import load_catalog
from bot.diagnose import capture
from tests.testbed.compose_shim import compose_shim_fixture  # noqa: F401


def host_target(tmp_path: Path, shim: Any, nginx: Any) -> Any:
    path = tmp_path / "rollbot.yml"
    path.write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  chat:\n"
        "    playbook: host-config-rollback\n"
        f"    app_dir: {shim.app_dir}\n    compose_project: {shim.project}\n"
        f"    nginx_conf: {nginx.conf_path}\n"
        f"    nginx_command: {json.dumps(nginx.command())}\n"
        "    health_urls: []\n"
    )
    return load_catalog(path).targets["chat"]


async def test_containers_and_nginx_test_are_collected(
    tmp_path: Path, compose_shim: Any, nginx: Any
) -> None:
    shim = compose_shim({"backend-wsgi": 2, "backend-asgi": 1})
    server = nginx("http://127.0.0.1:9")
    target = host_target(tmp_path, shim, server)
    result = await capture(target)
    assert result.sources["containers"].status == "ok", result.sources["containers"].error
    assert "backend-wsgi" in json.dumps(result.sources["containers"].data)
    assert any('"ps"' in json.dumps(call) for call in shim.calls())
    assert result.sources["nginx_test"].data["ok"] is True

    server.write_config("events {}\nhttp { server { listen 127.0.0.1:1; broken_directive; } }\n")
    result = await capture(target)
    nginx_check = result.sources["nginx_test"].data
    assert nginx_check["ok"] is False and "[emerg]" in nginx_check["error"]
