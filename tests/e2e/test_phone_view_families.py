"""The approval request's before -> after through `rollbot serve` for the host playbooks (git,
nginx and compose on a real container engine) and GitHub Actions (the GitHub fake)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import LEAD, click, request_rollback
from tests.testbed.github_api import TOKEN, FakeGitHub, sha
from tests.testbed.host import Host, make_host
from tests.testbed.slack_api import FakeSlackApi

Bot = Callable[..., Any]
REPO = "acme/conflicto"


def catalog(name: str, **target: Any) -> dict[str, Any]:
    entry = {"poll_delay": 0.05, "poll_timeout": 10, **target}
    return {"approvers": [LEAD], "channel": "C0INCIDENTS", "targets": {name: entry}}


def first_section(fake: FakeSlackApi) -> str:
    approval = fake.wait_for("chat.postMessage", lambda c: "Approval needed" in c.args["text"])
    return str(approval[0].args["blocks"][0]["text"]["text"])


@pytest.fixture
def host(tmp_path: Path, git_repo: Any, compose_app: Any, nginx: Any) -> Host:
    return make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)


def test_host_rollback_approval_shows_the_commits_the_config_and_the_containers(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot, tmp_path: Path
) -> None:
    good = host.repo.head()
    good_subject = host.repo.git("log", "-1", "--format=%s", good)
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(good + "\n")
    bad = host.deploy_bad_release()
    params = host.params(recorded_commit_file=str(record))
    bot = rollbot_server(catalog=catalog("chat-full", playbook="host-full-rollback", **params))
    value = request_rollback(bot, fake_slack, "chat-full")

    first = first_section(fake_slack)
    assert first.startswith("*What changes:*\n")
    lines = first.split("\n")
    assert f"• `{bad[:7]}` hybrid WSGI+ASGI → `{good[:7]}` {good_subject} (1 commit back)" in lines
    nginx = next(line for line in lines if line.startswith("• nginx config"))
    assert re.fullmatch(
        r"• nginx config restored from backup of \d{4}-\d\d-\d\d \d\d:\d\d"
        r" \([1-9]\d* lines differ\)",
        nginx,
    ), nginx
    assert "• backend-asgi: 2 running → stopped" in lines
    assert click(bot, "rollback_reject", value, LEAD)[0] == 200
    assert host.repo.head() == bad  # asking changed nothing
    assert fake_slack.errors == []


@pytest.fixture
def github(github_api: FakeGitHub) -> FakeGitHub:
    github_api.add_repo(REPO, tags={"v1.2.3": sha("v1.2.3")})
    github_api.add_workflow(
        REPO,
        "rollback.yml",
        required=["environment", "rollback_to_tag", "confirm_rollback"],
        guards={"confirm_rollback": "ROLLBACK"},
        name="Emergency Rollback",
    )
    github_api.add_workflow(REPO, "deploy-prod.yml")
    return github_api


def test_github_rollback_approval_names_the_workflow_and_the_commit(
    github: FakeGitHub, fake_slack: FakeSlackApi, rollbot_server: Bot, http_backend: Any
) -> None:
    target = catalog(
        "conflicto", playbook="github-rollback", github_repo=REPO, health_urls=[http_backend().url]
    )
    env = {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": TOKEN}
    bot = rollbot_server(catalog=target, env=env)
    value = request_rollback(bot, fake_slack, "conflicto to v1.2.3")
    first = first_section(fake_slack)
    wanted = f"*What changes:*\n• workflow Emergency Rollback on `{sha('v1.2.3')[:7]}` (v1.2.3)\n"
    assert first.startswith(wanted), first
    assert click(bot, "rollback_reject", value, LEAD)[0] == 200
    assert github.dispatched() == []
    assert fake_slack.errors == []
