"""Evidence from a compose + nginx host (runbook 004): container states and `nginx -t`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playbooks.steps.compose import parse_ps_json
from playbooks.steps.executor import LocalExecutor

BAD_STATES = ("restarting", "exited", "dead", "unhealthy")


def compose_argv(params: dict[str, Any]) -> list[str]:
    """`docker compose [-p PROJECT] -f FILE`: without compose_project, compose resolves the
    name itself, exactly as the playbook steps let it."""
    command = list(params.get("compose_command") or ["docker", "compose"])
    compose_file = Path(params.get("app_dir") or ".") / (
        params.get("compose_file") or "docker-compose.yml"
    )
    project = ["-p", str(params["compose_project"])] if params.get("compose_project") else []
    return [*command, *project, "-f", str(compose_file)]


async def containers(ctx: Any) -> dict[str, Any]:
    """`docker compose ps --all --format json` and `docker inspect`: every container's state
    and restart count; services with no running container are named."""
    argv = [*compose_argv(ctx.params), "ps", "--all", "--format", "json"]
    result = await LocalExecutor().run(argv, cwd=ctx.params.get("app_dir"), timeout=ctx.timeout)
    if not result.ok:
        raise RuntimeError(f"`{result.command}` failed: {result.reason()}")
    rows = parse_ps_json(result.stdout)
    if rows is None:
        raise RuntimeError(f"`{result.command}` printed no JSON: {result.stdout[:200]!r}")
    restarts = await _restart_counts(ctx, [str(r.get("ID")) for r in rows if r.get("ID")])
    shown = [
        {
            "name": r.get("Name"),
            "service": r.get("Service"),
            "state": r.get("State"),
            "status": r.get("Status"),
            "health": r.get("Health") or "",
            "restarts": restarts.get(str(r.get("Name")), 0),
        }
        for r in rows
    ]
    bad = [
        c
        for c in shown
        if any(s in f"{c['state']} {c['status']} {c['health']}".lower() for s in BAD_STATES)
    ]
    services = sorted({str(c["service"]) for c in shown})
    running = {str(c["service"]) for c in shown if c["state"] == "running"}
    worst = max(shown, key=lambda c: c["restarts"], default=None)
    project = ctx.params.get("compose_project") or (rows[0].get("Project") if rows else "")
    return {
        "project": project,
        "containers": shown,
        "not_running": len(bad),
        "services_not_running": [s for s in services if s not in running],
        "restarts": sum(c["restarts"] for c in shown),
        "most_restarted": (
            {"name": worst["name"], "restarts": worst["restarts"]}
            if worst and worst["restarts"]
            else None
        ),
        **({} if shown else {"warning": "the compose project has no containers: wrong name?"}),
    }


async def _restart_counts(ctx: Any, ids: list[str]) -> dict[str, int]:
    """container name -> RestartCount from `docker inspect`."""
    if not ids:
        return {}
    docker = list(ctx.params.get("docker_command") or ["docker"])
    argv = [*docker, "inspect", "--format", "{{.Name}} {{.RestartCount}}", *ids]
    result = await LocalExecutor().run(argv, timeout=ctx.timeout)
    if not result.ok:
        raise RuntimeError(f"`{result.command}` failed: {result.reason()}")
    counts = {}
    for line in result.stdout.splitlines():
        name, _, count = line.strip().rpartition(" ")
        if name and count.isdigit():
            counts[name.lstrip("/")] = int(count)
    return counts


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
