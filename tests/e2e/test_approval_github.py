"""github-rollback binds to the commit the approver saw: the workflow gets the resolved SHA,
and a tag moved between request and click sends the new plan back for approval."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.helpers import LEAD, click, has_ended, request_rollback
from tests.e2e.plan_helpers import approval_messages, approve_value, text_of
from tests.testbed.github_api import TOKEN, FakeGitHub, sha
from tests.testbed.slack_api import FakeSlackApi

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
    return github_api


def github_bot(rollbot_server: Callable[..., Any], github: FakeGitHub, health_url: str) -> Any:
    target = {"playbook": "github-rollback", "github_repo": REPO, "health_urls": [health_url]}
    target |= {"poll_delay": 0.05, "poll_timeout": 10}
    catalog = {"approvers": [LEAD], "channel": "C0INCIDENTS", "targets": {"conflicto": target}}
    env = {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": TOKEN}
    return rollbot_server(catalog=catalog, env=env)


def test_the_workflow_gets_the_commit_not_the_tag_name(
    github: FakeGitHub, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any
) -> None:
    bot = github_bot(rollbot_server, github, http_backend().url)
    value = request_rollback(bot, fake_slack, "conflicto to v1.2.3")
    plan = json.dumps(approval_messages(fake_slack, 1)[0].args["blocks"])
    assert f"'rollback_to_tag': '{sha('v1.2.3')}'" in plan
    click(bot, "rollback_approve", value, LEAD)
    text = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    assert "ROLLBACK COMPLETE" in text, text
    (run,) = github.dispatched()
    assert run.inputs["rollback_to_tag"] == sha("v1.2.3")


def test_a_tag_moved_before_the_click_goes_back_for_approval(
    github: FakeGitHub, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any
) -> None:
    bot = github_bot(rollbot_server, github, http_backend().url)
    value = request_rollback(bot, fake_slack, "conflicto to v1.2.3")
    github.repos[REPO].tags["v1.2.3"] = sha("v1.2.3 retagged")  # someone moved the tag
    click(bot, "rollback_approve", value, LEAD)
    said = text_of(fake_slack, "The plan changed before the run")
    assert sha("v1.2.3") in said and sha("v1.2.3 retagged") in said
    second = approval_messages(fake_slack, 2)[1]
    time.sleep(0.5)
    assert github.dispatched() == []  # nothing ran on the old approval
    click(bot, "rollback_approve", approve_value(second), LEAD)
    text = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    assert "ROLLBACK COMPLETE" in text, text
    (run,) = github.dispatched()
    assert run.inputs["rollback_to_tag"] == sha("v1.2.3 retagged")
