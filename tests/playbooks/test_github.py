"""GitHub Actions steps (runbook 002) against the local fake of the GitHub REST API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from bot.catalog import load_catalog
from bot.settings import Settings
from bot.store.sqlite import SqliteStore
from playbooks.base import StepContext, StepFailed
from playbooks.runner import PlaybookRunner, plan, step_context
from playbooks.steps.github import GitHubDispatchWorkflow, GitHubResolveRef
from tests.testbed.github_api import TOKEN, FakeGitHub, sha

REPO = "acme/conflicto"
ROLLBACK_INPUTS = ["environment", "rollback_to_tag", "confirm_rollback"]


@pytest.fixture
def gh(github_api: FakeGitHub) -> FakeGitHub:
    github_api.add_repo(REPO, tags={"v1.2.3": sha("v1.2.3")})
    github_api.add_workflow(
        REPO, "rollback.yml", required=ROLLBACK_INPUTS, guards={"confirm_rollback": "ROLLBACK"}
    )
    github_api.add_workflow(REPO, "deploy-prod.yml")
    return github_api


def settings(gh: FakeGitHub, token: str | None = TOKEN) -> Settings:
    return Settings(github_api_url=gh.url, github_token=SecretStr(token) if token else None)


def context(gh: FakeGitHub, ref: str = "previous", token: str | None = TOKEN) -> StepContext:
    return StepContext(
        target="web",
        params={"github_repo": REPO},
        ref=ref,
        outputs={"request": {"ref": ref}},
        settings=settings(gh, token),
        poll_delay=0.01,
        poll_timeout=5,
    )


def dispatch(**fields: Any) -> GitHubDispatchWorkflow:
    inputs = {"environment": "prod", "confirm_rollback": "ROLLBACK"}
    return GitHubDispatchWorkflow(inputs=inputs, rollback_to="v1.2.3", **fields)


async def test_dispatch_follows_the_run_to_success(gh: FakeGitHub) -> None:
    out = await dispatch().run(context(gh))
    (run,) = gh.dispatched()
    assert run.inputs == {
        "environment": "prod",
        "confirm_rollback": "ROLLBACK",
        "rollback_to_tag": "v1.2.3",
    }
    assert run.head_branch == "main"
    assert out["conclusion"] == "success" and out["run_id"] == run.id
    assert out["html_url"] == f"https://github.com/{REPO}/actions/runs/{run.id}"
    assert out["polls"] == gh.queued_polls + gh.running_polls + 1
    posted = next(c for c in gh.calls if c.method == "POST")
    assert posted.body == {"ref": "main", "inputs": run.inputs}


async def test_a_failed_run_fails_the_step_with_its_link(gh: FakeGitHub) -> None:
    gh.conclusion = "failure"
    with pytest.raises(StepFailed, match=r"ended failure: https://github.com/.*/runs/\d+") as exc:
        await dispatch().run(context(gh))
    assert exc.value.output["conclusion"] == "failure"


async def test_the_workflow_guard_rejects_a_wrong_confirmation(gh: FakeGitHub) -> None:
    step = GitHubDispatchWorkflow(
        inputs={"environment": "prod", "confirm_rollback": "yes"}, rollback_to="v1.2.3"
    )
    with pytest.raises(StepFailed, match="ended failure"):
        await step.run(context(gh))


async def test_missing_inputs_are_refused_by_github(gh: FakeGitHub) -> None:
    step = GitHubDispatchWorkflow(inputs={"confirm_rollback": "ROLLBACK"}, rollback_to="v1")
    with pytest.raises(StepFailed, match="Required input 'environment' not provided"):
        await step.run(context(gh))
    assert gh.dispatched() == []


async def test_token_problems_are_named_and_the_token_never_shown(
    gh: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StepFailed, match="GITHUB_TOKEN is not set"):
        await dispatch().run(context(gh, token=None))
    with pytest.raises(StepFailed, match=r"rejected GITHUB_TOKEN .*401 Bad credentials") as exc:
        await dispatch().run(context(gh, token="ghp_wrong_and_secret"))
    assert "ghp_wrong_and_secret" not in str(exc.value) + str(exc.value.output) + caplog.text
    out = await dispatch().run(context(gh))
    assert TOKEN not in str(out) + caplog.text
    assert TOKEN not in repr(settings(gh))


async def test_unknown_workflow_and_repository(gh: FakeGitHub) -> None:
    with pytest.raises(StepFailed, match=r"list the runs of nope\.yml: not found"):
        await dispatch(workflow="nope.yml").run(context(gh))
    with pytest.raises(StepFailed, match="is not a GitHub repository"):
        await dispatch(repo="no-slash").run(context(gh))
    with pytest.raises(StepFailed, match="not a workflow file name"):
        await dispatch(workflow="../../x").run(context(gh))


async def test_the_new_run_is_found_even_when_listed_late(gh: FakeGitHub) -> None:
    # someone else's earlier dispatch must not be taken for ours
    gh.add_run(REPO, "rollback.yml", sha("old"), conclusion="failure", event="workflow_dispatch")
    gh.hidden_lists = 3
    out = await dispatch().run(context(gh))
    assert out["conclusion"] == "success"
    assert out["run_id"] == gh.dispatched()[-1].id
    lists = [c for c in gh.calls if c.path.endswith("/runs") and c.method == "GET"]
    assert len(lists) >= 4 and lists[-1].query["created"].startswith(">=")


async def test_a_run_that_never_appears_fails_with_where_to_look(gh: FakeGitHub) -> None:
    gh.hidden_lists = 1000
    with pytest.raises(StepFailed, match=r"no new run appeared within 0\.2s"):
        await dispatch(find_timeout=0.2).run(context(gh))


async def test_following_tolerates_a_hiccup_and_times_out_cleanly(gh: FakeGitHub) -> None:
    gh.fail_next = [("/actions/runs/", 502)]
    assert (await dispatch().run(context(gh)))["conclusion"] == "success"
    gh.running_polls = 10_000
    with pytest.raises(StepFailed, match=r"still in_progress after 0.3s .*actions/runs/\d+"):
        await dispatch(timeout=0.3).run(context(gh))


async def test_resolve_previous_is_the_commit_deployed_before_the_live_one(gh: FakeGitHub) -> None:
    gh.add_run(REPO, "deploy-prod.yml", sha("a"), minutes_ago=60)
    gh.add_run(REPO, "deploy-prod.yml", sha("b"), minutes_ago=30)
    gh.add_run(REPO, "deploy-prod.yml", sha("b"), minutes_ago=20)  # a re-run of b
    gh.add_run(REPO, "deploy-prod.yml", sha("c"), conclusion="failure", minutes_ago=10)
    out = await GitHubResolveRef().run(context(gh))
    assert (out["ref"], out["live_commit"]) == (sha("a"), sha("b"))
    assert "run #1" in out["source"]
    explicit = await GitHubResolveRef().run(context(gh, ref="v1.2.3"))
    assert explicit == {
        "ref": "v1.2.3",
        "commit": sha("v1.2.3"),
        "source": "requested",
        "summary": f"v1.2.3 = {sha('v1.2.3')}",
    }
    with pytest.raises(StepFailed, match="'v9' is not a commit, branch or tag in acme/conflicto"):
        await GitHubResolveRef().run(context(gh, ref="v9"))
    with pytest.raises(StepFailed, match="not a commit or tag name"):
        await GitHubResolveRef().run(context(gh, ref="--upload-pack=x"))


async def test_resolve_previous_without_history_asks_for_a_ref(gh: FakeGitHub) -> None:
    with pytest.raises(StepFailed, match="no successful run on main"):
        await GitHubResolveRef().run(context(gh))
    gh.add_run(REPO, "deploy-prod.yml", sha("b"))
    with pytest.raises(StepFailed, match="name the commit or tag"):
        await GitHubResolveRef().run(context(gh))


async def test_github_rollback_playbook_plans_and_runs(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_run(REPO, "deploy-prod.yml", sha("good"), minutes_ago=60)
    gh.add_run(REPO, "deploy-prod.yml", sha("bad"), minutes_ago=5)
    entry = {"playbook": "github-rollback", "github_repo": REPO, "poll_delay": 0.01}
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"web": entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    tgt = load_catalog(tmp_path / "rollbot.yml").targets["web"]

    planned = await plan(tgt.steps, step_context(tgt, "previous", settings(gh)))
    assert planned[0].output is not None and planned[0].output["ref"] == sha("good")
    inputs = {"environment": "prod", "confirm_rollback": "ROLLBACK", "rollback_to_tag": sha("good")}
    assert planned[1].calls[0] == (
        f"POST {gh.url}/repos/{REPO}/actions/workflows/rollback.yml/dispatches"
        f" {{ref: 'main', inputs: {inputs!r}}}"
    )
    assert "at most 1800s" in planned[1].calls[2]

    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        result = await PlaybookRunner(store, "rb-gh").run(
            tgt.steps, step_context(tgt, "previous", settings(gh))
        )
    finally:
        await store.close()
    assert result.ok, result.error
    assert gh.dispatched()[0].inputs == inputs
    assert result.steps[1].output["conclusion"] == "success"
    assert GitHubDispatchWorkflow.mutating and not GitHubDispatchWorkflow.can_check_done
