"""Evidence from a compose + nginx host (runbook 004): container states and `nginx -t`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playbooks.steps.executor import LocalExecutor

BAD_STATES = ("restarting", "exited", "dead", "unhealthy")


def compose_argv(params: dict[str, Any]) -> list[str]:
    command = list(params.get("compose_command") or ["docker", "compose"])
    compose_file = Path(params.get("app_dir") or ".") / (
        params.get("compose_file") or "docker-compose.yml"
    )
    return [*command, "-p", str(params["compose_project"]), "-f", str(compose_file)]


async def containers(ctx: Any) -> dict[str, Any]:
    """`docker compose ps --all`: every container's state; restarting/exited ones counted."""
    argv = [*compose_argv(ctx.params), "ps", "--all", "--format", "json"]
    result = await LocalExecutor().run(argv, cwd=ctx.params.get("app_dir"), timeout=ctx.timeout)
    if not result.ok:
        raise RuntimeError(f"`{result.command}` failed: {result.reason()}")
    rows = _json_rows(result.stdout)
    if rows is None:  # an engine that only prints its table: keep the lines as evidence
        lines = [ln for ln in result.stdout.splitlines() if ln.strip()][:60]
        bad = [ln for ln in lines[1:] if any(s in ln.lower() for s in BAD_STATES)]
        return {"containers": lines, "not_running": len(bad)}
    shown = [
        {
            "name": r.get("Name"),
            "service": r.get("Service"),
            "state": r.get("State"),
            "status": r.get("Status"),
            "health": r.get("Health"),
        }
        for r in rows
    ]
    bad = [
        c
        for c in shown
        if any(s in f"{c['state']} {c['status']} {c['health']}".lower() for s in BAD_STATES)
    ]
    return {"containers": shown, "not_running": len(bad)}


def _json_rows(text: str) -> list[dict[str, Any]] | None:
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except ValueError:
        pass
    try:  # newer compose prints one JSON object per line
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


async def nginx_test(ctx: Any) -> dict[str, Any]:
    """`nginx -t`: is the configuration on disk one nginx would accept on the next reload?"""
    command = list(ctx.params.get("nginx_command") or ["nginx"])
    argv = [*command, "-t"]
    if not ctx.params.get("nginx_command") and ctx.params.get("nginx_conf"):
        argv += ["-c", str(ctx.params["nginx_conf"])]
    result = await LocalExecutor().run(argv, timeout=ctx.timeout)
    lines = (result.stderr + result.stdout).strip().splitlines()
    emerg = [ln for ln in lines if "[emerg]" in ln]
    return {
        "ok": result.ok,
        "command": result.command,
        "output": lines[-5:],
        "error": emerg[0] if emerg else "",
    }
