"""The runbook playbooks through the whole Slack flow of `rollbot serve`: 000 (environment
override on moto), 002 (GitHub Actions workflow on the GitHub fake), 004 (nginx, git, and compose
on a real container engine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    LEAD,
    REQUESTER,
    approval_value,
    click,
    has_ended,
    request_rollback,
)
from tests.testbed.aws import Aws, make_ecs_service, service_state
from tests.testbed.github_api import TOKEN, FakeGitHub, sha
from tests.testbed.host import Host, make_host, version
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

Bot = Callable[..., Any]


def roll_back(bot: Any, fake_slack: FakeSlackApi, text: str, approver: str = LEAD) -> str:
    """`/rollback TEXT`, approved by someone else; returns the announcement of how it ended."""
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, text), approver)
    return fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]


def catalog(name: str, **target: Any) -> dict[str, Any]:
    entry = {"poll_delay": 0.05, "poll_timeout": 10, **target}
    return {"approvers": [LEAD], "channel": "C0INCIDENTS", "targets": {name: entry}}


# -- runbook 000: Tornado back to one process


def test_runbook_000_environment_override(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Bot, http_backend: Any
) -> None:
    make_ecs_service(
        aws,
        "pythonide-cluster",
        "pythonide-service",
        "pythonide",
        revisions=2,
        environment={"TORNADO_PROCESSES": "4", "DB_URL": "postgres://db"},
    )
    health = http_backend()
    bot = rollbot_server(
        catalog=catalog(
            "pythonide",
            playbook="ecs-env-override",
            cluster="pythonide-cluster",
            service="pythonide-service",
            region=aws.region,
            environment={"TORNADO_PROCESSES": "1"},
            health_urls=[health.url],
        ),
        env=aws.env,
    )
    text = roll_back(bot, fake_slack, "pythonide because sessions lost")
    assert "ROLLBACK COMPLETE" in text, text
    running = service_state(aws, "pythonide-cluster", "pythonide-service")["taskDefinition"]
    assert running.endswith("pythonide:3")  # a new revision, the old ones untouched
    ecs = aws.client("ecs")
    spec = ecs.describe_task_definition(taskDefinition=running)["taskDefinition"]
    env = {e["name"]: e["value"] for e in spec["containerDefinitions"][0]["environment"]}
    assert env == {"TORNADO_PROCESSES": "1", "DB_URL": "postgres://db"}
    assert "pythonide:3" in text and health.hits >= 1


# -- runbook 002: the Emergency Rollback workflow

REPO = "example-org/conflicto"


@pytest.fixture
def github(github_api: FakeGitHub) -> FakeGitHub:
    github_api.add_repo(REPO, tags={"v1.2.3": sha("v1.2.3")})
    github_api.add_workflow(
        REPO,
        "rollback.yml",
        required=["environment", "rollback_to_tag", "confirm_rollback"],
        guards={"confirm_rollback": "ROLLBACK"},
    )
    github_api.add_workflow(REPO, "deploy-prod.yml")
    return github_api


def github_bot(rollbot_server: Bot, github: FakeGitHub, health_url: str) -> Any:
    target = catalog(
        "conflicto", playbook="github-rollback", github_repo=REPO, health_urls=[health_url]
    )
    return rollbot_server(catalog=target, env={"GITHUB_API_URL": github.url, "GITHUB_TOKEN": TOKEN})


def test_runbook_002_dispatches_the_workflow_and_reports_its_run(
    github: FakeGitHub, fake_slack: FakeSlackApi, rollbot_server: Bot, http_backend: Any
) -> None:
    bot = github_bot(rollbot_server, github, http_backend().url)
    text = roll_back(bot, fake_slack, "conflicto to v1.2.3 because login broken")
    assert "ROLLBACK COMPLETE" in text, text
    (run,) = github.dispatched()
    assert run.inputs == {
        "environment": "prod",
        "rollback_to_tag": sha("v1.2.3"),  # the commit the approver saw, not the tag name
        "confirm_rollback": "ROLLBACK",
    }
    assert f"https://github.com/{REPO}/actions/runs/{run.id}" in text
    assert f"run #{run.run_number} success" in text
    assert TOKEN not in str(fake_slack.calls)


def test_runbook_002_a_failed_run_fails_the_rollback_with_its_link(
    github: FakeGitHub, fake_slack: FakeSlackApi, rollbot_server: Bot, http_backend: Any
) -> None:
    github.conclusion = "failure"
    health = http_backend()
    bot = github_bot(rollbot_server, github, health.url)
    bot.sender.post(*slash_command("/rollback", "conflicto to v1.2.3", user_id=REQUESTER))
    value = approval_value(fake_slack)
    checked_before = health.hits  # the diagnostics sample the health URL before asking
    click(bot, "rollback_approve", value, LEAD)
    text = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    (run,) = github.dispatched()
    assert "ROLLBACK FAILED" in text and "ended failure" in text
    assert f"https://github.com/{REPO}/actions/runs/{run.id}" in text
    assert "Failed at:* step 2 of 3" in text
    assert health.hits == checked_before  # nothing after the failed step ran


# -- runbook 004: compose + nginx host


@pytest.fixture
def host(tmp_path: Path, git_repo: Any, compose_app: Any, nginx: Any) -> Host:
    return make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)


def test_runbook_004_phase_2_restores_nginx_and_stops_asgi(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot
) -> None:
    host.deploy_bad_release()
    bot = rollbot_server(
        catalog=catalog("chat-config", playbook="host-config-rollback", **host.params())
    )
    text = roll_back(bot, fake_slack, "chat-config because websocket errors")
    assert "ROLLBACK COMPLETE" in text, text
    assert version(host.server) == "1"
    assert host.app.running() == {"backend-wsgi": 4, "backend-asgi": 0}


def test_runbook_004_phase_3_serves_the_recorded_commit_at_the_phase_2_scale(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot, tmp_path: Path
) -> None:
    good_commit = host.repo.head()
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(good_commit + "\n")
    host.deploy_bad_release(rebuild=True)
    host.app.compose("up", "-d", "--no-deps", "--scale", "backend-wsgi=4", "backend-wsgi")
    params = host.params(recorded_commit_file=str(record))
    bot = rollbot_server(catalog=catalog("chat-full", playbook="host-full-rollback", **params))
    text = roll_back(bot, fake_slack, "chat-full")
    assert "ROLLBACK COMPLETE" in text, text
    assert host.repo.head() == good_commit
    host.wait_serving("1")  # rebuilt from the recorded commit, through nginx
    assert host.app.running() == {"backend-wsgi": 4, "backend-asgi": 0}


def test_runbook_004_a_wrong_project_name_fails_loudly_and_changes_nothing(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot
) -> None:
    host.deploy_bad_release()
    params = host.params(compose_project="chat-arena")
    bot = rollbot_server(catalog=catalog("chat-config", playbook="host-config-rollback", **params))
    text = roll_back(bot, fake_slack, "chat-config")
    assert "ROLLBACK FAILED" in text
    assert "compose project 'chat-arena' has no containers for backend-wsgi" in text
    assert host.app.running() == {"backend-wsgi": 2, "backend-asgi": 2}
    assert version(host.server) == "asgi"


def test_runbook_004_a_refused_config_stops_before_any_reload_and_is_posted(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot
) -> None:
    good = host.server.prefix / "nginx.conf.pre-hybrid.bak"
    good.write_text(good.read_text().replace("proxy_pass", "proxy_pas"))
    host.deploy_bad_release()
    workers = host.server.workers()
    bot = rollbot_server(
        catalog=catalog("chat-config", playbook="host-config-rollback", **host.params())
    )
    text = roll_back(bot, fake_slack, "chat-config")
    assert "ROLLBACK FAILED" in text
    assert "Failed at:* step 4 of" in text and "nothing after it ran" in text
    assert 'unknown directive "proxy_pas"' in text  # nginx's own words, quoted
    assert host.server.workers() == workers and version(host.server) == "asgi"
    assert host.app.running()["backend-asgi"] == 2  # ASGI was never stopped
