"""Compose steps against the recording `docker` shim, which checks every call against the
compose CLI grammar and the compose file's services (no container engine runs here)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from playbooks.base import StepContext, StepFailed
from playbooks.steps.compose import (
    ComposeBuild,
    ComposeLogs,
    ComposePs,
    ComposeRestart,
    ComposeScale,
    ComposeStart,
    ComposeStop,
    ComposeUp,
)
from playbooks.steps.executor import LocalExecutor
from playbooks.steps.shell import ShellMigrate
from tests.testbed.compose_shim import ComposeShim, compose_shim_fixture  # noqa: F401

Shim = Callable[..., ComposeShim]


def context(shim: ComposeShim, **params: Any) -> StepContext:
    base = {
        "app_dir": str(shim.app_dir),
        "compose_project": shim.project,
        "compose_file": "docker-compose.yml",
    }
    return StepContext(target="web", params={**base, **params}, outputs={"request": {}})


async def test_each_step_makes_a_valid_call_with_the_planned_argv(compose_shim: Shim) -> None:
    shim = compose_shim()
    ctx = context(shim)
    steps = [
        ComposeStop(services=["backend-asgi"], stop_timeout=20),
        ComposeScale(service="backend-wsgi", replicas=4),
        ComposeBuild(services=["backend-wsgi"], pull=True),
        ComposeUp(services=["backend-wsgi"], no_deps=True, build=True, scale={"backend-wsgi": 3}),
        ComposeRestart(services=["backend-wsgi"]),
        ComposeStart(services=["backend-asgi"]),
        ComposePs(),
        ComposeLogs(services=["backend-wsgi"], tail=100),
    ]
    planned = [(await s.plan(ctx))[0] for s in steps]
    outputs = [await s.run(ctx) for s in steps]
    assert shim.grammar_errors() == []
    prefix = f"[in {shim.app_dir}] docker compose -p arena -f docker-compose.yml "
    assert [p.removeprefix(prefix) for p in planned] == [
        "stop -t 20 backend-asgi",
        "up -d --no-deps --scale backend-wsgi=4 backend-wsgi",
        "build --pull backend-wsgi",
        "up -d --no-deps --build --scale backend-wsgi=3 backend-wsgi",
        "restart backend-wsgi",
        "start backend-asgi",
        "ps",
        "logs --no-color --tail 100 backend-wsgi",
    ]
    assert [" ".join(c) for c in shim.commands()] == [p.removeprefix(prefix) for p in planned]
    assert all(c["cwd"] == str(shim.app_dir) and c["project"] == "arena" for c in shim.calls())
    assert "backend-wsgi-3  backend-wsgi  running" in outputs[6]["stdout"]
    assert "log line 1" in outputs[7]["stdout"]
    assert shim.state()["backend-wsgi"]["builds"] == 2


async def test_config_rollback_sequence_leaves_asgi_stopped(compose_shim: Shim) -> None:
    # runbook 004: stop ASGI, then bring WSGI to 4. The runbook's `up -d --scale
    # backend-wsgi=4` without a service would start ASGI again; the scale step names WSGI.
    shim = compose_shim(depends={"backend-wsgi": ["postgres"]})
    ctx = context(shim)
    await ComposeStop(services=["backend-asgi"]).run(ctx)
    await ComposeScale(service="backend-wsgi", replicas=4).run(ctx)
    assert shim.running() == {"backend-wsgi": 4, "backend-asgi": 0, "postgres": 1}
    runbook_literal = await LocalExecutor().run(
        ["docker", "compose", "-p", "arena", "up", "-d", "--scale", "backend-wsgi=4"],
        cwd=str(shim.app_dir),
    )
    assert runbook_literal.ok
    assert shim.running()["backend-asgi"] == 2  # what the literal command would have done


async def test_a_failing_command_fails_the_step_with_its_stderr(compose_shim: Shim) -> None:
    shim = compose_shim()
    shim.fail("build", exit_code=17, stderr="failed to solve: base image not found")
    with pytest.raises(
        StepFailed, match=r"Build backend-wsgi failed: .* exited 17: failed to solve"
    ):
        await ComposeBuild(services=["backend-wsgi"]).run(context(shim))
    assert shim.state()["backend-wsgi"]["builds"] == 0


async def test_unknown_service_is_refused_by_compose(compose_shim: Shim) -> None:
    shim = compose_shim()
    with pytest.raises(StepFailed, match="no such service: backend-celery"):
        await ComposeStop(services=["backend-celery"]).run(context(shim))


async def test_compose_command_project_and_files_come_from_the_target(compose_shim: Shim) -> None:
    shim = compose_shim()
    (shim.app_dir / "docker-compose.override.yml").write_text("services: {}\n")
    ctx = context(shim, compose_file=None)
    both = ["docker-compose.yml", "docker-compose.override.yml"]
    step = ComposeStop(services=["backend-asgi"], files=both, env={"API_TAG": "v1"})
    await step.run(ctx)
    (call,) = shim.calls()
    assert call["files"] == ["docker-compose.yml", "docker-compose.override.yml"]
    assert call["env"] == {"API_TAG": "v1"}
    await ComposeStop(services=["backend-asgi"]).run(ctx)  # compose finds docker-compose.yml
    assert shim.calls()[-1]["files"] == ["docker-compose.yml"] and not shim.grammar_errors()
    with pytest.raises(StepFailed, match="not a compose project name"):
        await ComposeStop(services=["x"], project="Bad Name").plan(ctx)


def test_names_that_would_become_options_are_refused() -> None:
    for bad in (
        lambda: ComposeStop(services=["--all"]),
        lambda: ComposeStop(services=[]),
        lambda: ComposeScale(service="-x", replicas=1),
        lambda: ComposeScale(service="api", replicas=-1),
        lambda: ComposeUp(scale={"--build": 1}),
        lambda: ComposeLogs(services=["api"], tail=0),
    ):
        with pytest.raises(ValidationError):
            bad()


async def test_migrations_run_inside_the_container(compose_shim: Shim) -> None:
    shim = compose_shim()
    shim.exec_output(["python", "manage.py", "showmigrations", "ai_model"], "[X] 0010\n[X] 0011\n")
    step = ShellMigrate(
        framework="django", migrations={"ai_model": "0010"}, compose_service="backend-wsgi"
    )
    ctx = context(shim)
    out = await step.run(ctx)
    assert shim.grammar_errors() == []
    assert [" ".join(c) for c in shim.commands()] == [
        "exec -T backend-wsgi python manage.py showmigrations ai_model",
        "exec -T backend-wsgi python manage.py migrate ai_model 0010",
        "exec -T backend-wsgi python manage.py showmigrations ai_model",
    ]
    assert out["before"] == "[X] 0010\n[X] 0011\n"
    await ComposeStop(services=["backend-wsgi"]).run(ctx)
    with pytest.raises(StepFailed, match=r"reading the migration state.*is not running"):
        await step.run(ctx)


def test_the_shim_itself_rejects_what_compose_would(compose_shim: Shim) -> None:
    shim = compose_shim()

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], cwd=shim.app_dir, capture_output=True, text=True)

    assert docker("compose", "up", "backend-wsgi").returncode == 1  # attached up
    assert docker("compose", "logs", "-f", "backend-wsgi").returncode == 1
    assert docker("compose", "--verbose", "ps").returncode == 1
    assert docker("compose", "up", "-d", "--scale", "nope=2").returncode == 1
    assert docker("compose", "-f", "missing.yml", "ps").returncode == 1
    assert docker("ps").returncode == 1
    assert (
        docker("compose", "--project-name=arena", "--file=docker-compose.yml", "ps").returncode == 0
    )
    assert len(shim.grammar_errors()) == 6
