"""Compose steps against a real engine: podman's Docker API driven by Compose v2, with small
busybox containers answering HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
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
    normalise_project,
    resolve_project,
)
from playbooks.steps.executor import CommandResult
from tests.testbed.podman import ComposeApp

App = Callable[..., ComposeApp]


def context(app: ComposeApp, **params: Any) -> StepContext:
    base = {
        "app_dir": str(app.app_dir),
        "compose_project": app.project,
        "compose_file": "docker-compose.yml",
    }
    return StepContext(target="web", params={**base, **params}, outputs={"request": {}})


async def test_each_step_changes_the_real_containers_as_planned(compose_app: App) -> None:
    app = compose_app(postgres=False)
    ctx = context(app)
    prefix = f"[in {app.app_dir}] docker compose -p {app.project} -f docker-compose.yml "
    stop = ComposeStop(services=["backend-asgi"], stop_timeout=5)
    assert (await stop.plan(ctx))[0] == prefix + "stop -t 5 backend-asgi"
    await stop.run(ctx)
    assert app.running() == {"backend-wsgi": 2, "backend-asgi": 0}

    scale = ComposeScale(service="backend-wsgi", replicas=3)
    assert (await scale.plan(ctx))[0] == (
        prefix + "up -d --no-deps --scale backend-wsgi=3 backend-wsgi"
    )
    await scale.run(ctx)
    assert app.running() == {"backend-wsgi": 3, "backend-asgi": 0}

    await ComposeStart(services=["backend-asgi"]).run(ctx)
    assert app.running() == {"backend-wsgi": 3, "backend-asgi": 2}
    await ComposeRestart(services=["backend-asgi"]).run(ctx)
    await ComposeBuild(services=["backend-wsgi"]).run(ctx)
    listed = await ComposePs().run(ctx)
    assert listed["stdout"].count(f"{app.project}-backend-wsgi-") == 3
    logs = await ComposeLogs(services=["backend-wsgi"], tail=10).run(ctx)
    assert logs["exit_code"] == 0


async def test_a_later_up_keeps_the_scale_an_earlier_step_set(compose_app: App) -> None:
    # real compose converges `up` to the file's replica count; the step passes the count back
    app = compose_app(postgres=False)
    ctx = context(app)
    await ComposeScale(service="backend-wsgi", replicas=4).run(ctx)
    await ComposeStop(services=["backend-wsgi", "backend-asgi"]).run(ctx)
    out = await ComposeUp().run(ctx)
    assert "--scale backend-wsgi=4" in out["command"]
    assert app.running() == {"backend-wsgi": 4, "backend-asgi": 2}
    await ComposeUp(services=["backend-wsgi"], keep_scale=False).run(ctx)
    assert app.running() == {"backend-wsgi": 2, "backend-asgi": 2}  # what compose itself does


async def test_steps_on_a_project_without_those_containers_fail_and_change_nothing(
    compose_app: App,
) -> None:
    app = compose_app(postgres=False)
    wrong = context(app, compose_project="chat-arena")
    expected = (
        "compose project 'chat-arena' has no containers for backend-asgi"
        " — is compose_project right?"
    )
    for step in (
        ComposeStop(services=["backend-asgi"]),
        ComposeStart(services=["backend-asgi"]),
        ComposeRestart(services=["backend-asgi"]),
        ComposeScale(service="backend-asgi", replicas=4),
        ComposeLogs(services=["backend-asgi"]),
    ):
        with pytest.raises(StepFailed) as caught:
            await step.run(wrong)
        assert str(caught.value) == expected
    with pytest.raises(StepFailed, match="has no containers for any service"):
        await ComposeUp().run(wrong)
    assert app.running() == {"backend-wsgi": 2, "backend-asgi": 2}
    assert not app.engine.docker(
        "ps", "-aq", "--filter", "label=com.docker.compose.project=chat-arena"
    ).strip()


async def test_start_and_restart_of_removed_containers_fail(compose_app: App) -> None:
    app = compose_app(postgres=False)
    ctx = context(app)
    app.compose("rm", "-s", "-f", "backend-asgi")
    for step in (
        ComposeStart(services=["backend-asgi"]),
        ComposeRestart(services=["backend-asgi"]),
    ):
        with pytest.raises(StepFailed, match="no containers for backend-asgi"):
            await step.run(ctx)


def test_up_refuses_scale_for_services_it_does_not_bring_up() -> None:
    with pytest.raises(ValidationError, match="scale names backend-asgi"):
        ComposeUp(services=["backend-wsgi"], scale={"backend-asgi": 2})
    ComposeUp(scale={"backend-asgi": 2})  # every service: any may be scaled
    ComposeUp(services=["backend-wsgi"], scale={"backend-wsgi": 2})


async def test_a_failing_build_quotes_the_first_error_and_the_tail(compose_app: App) -> None:
    app = compose_app(postgres=False)
    (app.app_dir / "Dockerfile").write_text("FROM localhost/rollbot-busybox:1\nCOPY nowhere /x\n")
    with pytest.raises(StepFailed) as caught:
        await ComposeBuild(services=["backend-wsgi"]).run(context(app))
    message = str(caught.value)
    assert message.startswith("Build backend-wsgi failed: ")
    assert "nowhere" in message


def test_reason_keeps_the_first_error_line_before_the_tail() -> None:
    stderr = "Error: image not found\nstep 1\nstep 2\nstep 3\nsummary: 1 failed\n"
    result = CommandResult(("x",), 1, "", stderr, 0.1)
    assert result.reason() == "Error: image not found | ... | step 2 | step 3 | summary: 1 failed"
    short = CommandResult(("x",), 1, "", "one\ntwo\n", 0.1)
    assert short.reason() == "one | two"


def test_the_project_name_is_resolved_as_compose_does(tmp_path: Path, monkeypatch) -> None:
    app_dir = tmp_path / "Chat-Arena-Backend"
    app_dir.mkdir()
    (app_dir / "docker-compose.yml").write_text("services: {web: {image: x}}\n")
    ctx = StepContext(target="t", params={"app_dir": str(app_dir)})
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert resolve_project(ctx) == ("chat-arena-backend", "the directory name 'Chat-Arena-Backend'")
    spec = {"name": "arena", "services": {"web": {"image": "x"}}}
    (app_dir / "docker-compose.yml").write_text(yaml.safe_dump(spec))
    assert resolve_project(ctx)[0] == "arena"
    (app_dir / ".env").write_text("# settings\nCOMPOSE_PROJECT_NAME=from-dotenv\n")
    assert resolve_project(ctx)[0] == "from-dotenv"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "from-env")
    assert resolve_project(ctx) == ("from-env", "COMPOSE_PROJECT_NAME in the environment")
    with_p = StepContext(target="t", params={"app_dir": str(app_dir), "compose_project": "p"})
    assert resolve_project(with_p) == ("p", "compose_project (-p)")
    assert normalise_project("_My.App 2") == "myapp2"


async def test_the_resolved_name_is_the_one_compose_uses(compose_app: App, monkeypatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    app = compose_app(postgres=False, project="rollbot-named-project", start=False)
    spec = yaml.safe_load((app.app_dir / "docker-compose.yml").read_text())
    (app.app_dir / "docker-compose.yml").write_text(yaml.safe_dump({"name": app.project, **spec}))
    app.up()
    ctx = context(app, compose_project=None)
    planned = await ComposeStop(services=["backend-asgi"]).plan(ctx)
    assert (
        planned[1]
        == "(compose project 'rollbot-named-project', from `name:` in docker-compose.yml)"
    )
    out = await ComposeStop(services=["backend-asgi"]).run(ctx)
    assert out["project"] == "rollbot-named-project"
    assert app.running()["backend-asgi"] == 0


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


def test_rollbot_check_refuses_a_playbook_whose_up_scales_a_foreign_service(
    tmp_path: Path,
) -> None:
    from bot.catalog import load_catalog
    from bot.errors import ConfigError

    (tmp_path / "scale-up.yml").write_text(
        "name: scale-up\ndescription: bring WSGI up at four\n"
        "params: {app_dir: {type: str, required: true}}\n"
        "steps:\n"
        "  - {id: up, type: compose.up, services: [backend-wsgi], scale: {backend-asgi: 4}}\n"
    )
    (tmp_path / "rollbot.yml").write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\n"
        "targets: {chat: {playbook: scale-up.yml, app_dir: /app/Chat-Arena-Backend}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_catalog(tmp_path / "rollbot.yml")
    assert "scale names backend-asgi, which this up does not bring up" in str(caught.value.problems)
