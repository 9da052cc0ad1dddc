"""git steps against real repositories: record, resolve `previous`, check out, refuse edits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from playbooks.base import StepContext, StepFailed
from playbooks.steps.git import GitCheckout, GitRecordCurrent, GitResolveRef
from tests.testbed.git import STABLE_TAG, GitRepo

Repo = Callable[..., GitRepo]


def context(repo: GitRepo, ref: str = "previous", **params: Any) -> StepContext:
    return StepContext(
        target="app", params={"app_dir": str(repo.path), **params}, ref=ref, outputs={}
    )


def deployed(git_repo: Repo) -> tuple[GitRepo, str, str]:
    """A repository at a bad release on top of the stable one: (repo, stable, bad)."""
    repo = git_repo()
    stable = repo.rev(STABLE_TAG)
    bad = repo.commit("hybrid migration", {"app/version.txt": "2\n"})
    return repo, stable, bad


async def test_record_current(git_repo: Repo) -> None:
    repo, _, bad = deployed(git_repo)
    out = await GitRecordCurrent().run(context(repo))
    assert out == {"commit": bad, "branch": "main", "subject": "hybrid migration"}
    repo.git("checkout", "-q", "--detach", STABLE_TAG)
    assert (await GitRecordCurrent().run(context(repo)))["branch"] == ""


async def test_checkout_of_the_stable_tag(git_repo: Repo) -> None:
    repo, stable, bad = deployed(git_repo)
    ctx = context(repo)
    step = GitCheckout(ref=STABLE_TAG)
    assert await step.already_done(ctx) is None
    out = await step.run(ctx)
    assert (out["commit"], out["previous_commit"], out["unchanged"]) == (stable, bad, False)
    assert repo.head() == stable and (repo.path / "app/version.txt").read_text() == "1\n"
    assert (await step.run(ctx))["unchanged"] is True
    assert (await step.already_done(ctx) or {})["resumed"] is True


async def test_checkout_of_the_requested_commit(git_repo: Repo) -> None:
    repo, stable, _ = deployed(git_repo)
    out = await GitCheckout().run(context(repo, ref=stable[:10]))
    assert out["commit"] == stable and repo.head() == stable


async def test_a_dirty_tree_is_refused_and_left_as_it_is(git_repo: Repo) -> None:
    repo, _, bad = deployed(git_repo)
    repo.write({"app/version.txt": "hotfix on the server\n", "notes.txt": "untracked\n"})
    with pytest.raises(StepFailed, match=r"local edits \(app/version.txt\)") as caught:
        await GitCheckout(ref=STABLE_TAG).run(context(repo))
    assert caught.value.output["dirty"] == [" M app/version.txt"]
    assert repo.head() == bad
    assert (repo.path / "app/version.txt").read_text() == "hotfix on the server\n"


async def test_force_stashes_the_edits_then_checks_out(git_repo: Repo) -> None:
    repo, stable, _ = deployed(git_repo)
    repo.write({"app/version.txt": "hotfix on the server\n"})
    out = await GitCheckout(ref=STABLE_TAG, force=True).run(context(repo))
    assert repo.head() == stable and not repo.dirty()
    assert (repo.path / "app/version.txt").read_text() == "1\n"
    assert out["stash"] and "rollbot: local edits" in repo.git("stash", "list")
    assert "hotfix on the server" in repo.git("stash", "show", "-p", "stash@{0}")


async def test_unknown_and_hostile_refs(git_repo: Repo) -> None:
    repo, _, _ = deployed(git_repo)
    with pytest.raises(StepFailed, match=r"'v9.9' is not a commit in .*recent tags: last-stable"):
        await GitCheckout(ref="v9.9").run(context(repo))
    for hostile in ("--orphan=x", "-f", "main..HEAD", "a b", "x;rm -rf /"):
        with pytest.raises(StepFailed, match="not a git commit, tag or branch"):
            await GitCheckout(ref=hostile).run(context(repo))
    assert repo.git("branch", "--list") == "* main"


async def test_resolve_previous_prefers_the_recorded_commit(git_repo: Repo, tmp_path: Path) -> None:
    repo, stable, bad = deployed(git_repo)
    middle = repo.commit("release 1.1", {"app/version.txt": "1.1\n"})
    repo.commit("release 2", {"app/version.txt": "2.0\n"})
    record = tmp_path / "pre-migration-commit.txt"
    step = GitResolveRef(recorded_file=str(record))

    out = await step.run(context(repo))  # nothing recorded yet: the stable tag
    assert (out["ref"], out["commit"], out["source"]) == (STABLE_TAG, stable, "the stable tag")
    record.write_text(f"{middle}\n")
    out = await step.run(context(repo))
    assert out["commit"] == middle and out["source"] == f"recorded in {record}"
    record.write_text("garbage --not-a-ref\n")
    assert (await step.run(context(repo)))["commit"] == stable
    explicit = await GitResolveRef(ref=bad).run(context(repo))
    assert explicit["commit"] == bad and explicit["source"] == "requested"
    plan = await step.plan(context(repo))
    assert plan[0].endswith(f"cat -- {record}  (the pre-deployment commit)")


async def test_resolve_without_the_stable_tag_fails_clearly(git_repo: Repo) -> None:
    repo = git_repo(stable=False)
    with pytest.raises(StepFailed, match=r"'last-stable-release' is not a commit .*tags: none"):
        await GitResolveRef().run(context(repo))


async def test_git_steps_need_a_repository() -> None:
    with pytest.raises(StepFailed, match="set app_dir"):
        await GitRecordCurrent().run(StepContext(target="x", params={}))
