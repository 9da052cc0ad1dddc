"""git steps of runbook 004: record the running commit, find the commit to go back to
(the one recorded before the deployment, or the last-stable-release tag), check it out."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks.base import ChangeStep, NothingToDo, Step, StepContext, StepFailed, world
from playbooks.steps.executor import HOST_ENV, HostCommands

PREVIOUS = ("previous", "prev", "")
STABLE_TAG = "last-stable-release"
# Branches, tags, commit ids and HEAD~1-style expressions; never a leading "-" (an option),
# never ".." (a range) and nothing a shell or git would read as more than one ref.
GIT_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@{}~^+-]{1,200}$")
SHOWN_DIRTY = 10
SHOWN_TAGS = 8
# The bot's own identity for the stash it makes: the machine may have no git identity at all.
IDENTITY = ["-c", "user.name=Rollbot", "-c", "user.email=rollbot@localhost"]


def check_ref(ref: str) -> str:
    if not GIT_REF.match(ref or ""):
        raise StepFailed(f"{ref!r} is not a git commit, tag or branch name")
    return ref


class _GitStep(HostCommands, Step):
    repo: str | None = None  # default: the target's app_dir
    timeout: float = Field(default=120.0, gt=0)

    # an ssh remote needs the agent or the operator's ssh command
    needs_env: ClassVar[frozenset[str]] = HOST_ENV | {"SSH_AUTH_SOCK", "GIT_SSH_COMMAND"}

    def workdir(self, ctx: StepContext) -> str | None:
        repo = self.repo or ctx.param("app_dir")
        if not repo:
            raise StepFailed(f"{self.type} needs a repository: set app_dir on the target")
        return repo

    async def git(self, ctx: StepContext, what: str, *args: str) -> str:
        return (await self.must(ctx, what, ["git", *args])).strip()

    async def head(self, ctx: StepContext) -> str:
        return await self.git(ctx, "reading HEAD", "rev-parse", "--verify", "HEAD")

    async def commit_of(self, ctx: StepContext, ref: str) -> str | None:
        """The commit `ref` names, or None when it names none."""
        result = await self.exec(ctx, ["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"])
        if result.exit_code == 0:
            return result.stdout.strip()
        if result.exit_code == 1 and not result.stderr.strip():
            return None
        raise self.failed(f"looking up {ref}", result)

    async def recent_tags(self, ctx: StepContext) -> str:
        tags = await self.git(
            ctx,
            "listing tags",
            "for-each-ref",
            "--sort=-creatordate",
            f"--count={SHOWN_TAGS}",
            "--format=%(refname:short)",
            "refs/tags",
        )
        return ", ".join(tags.split()) or "none"

    async def must_commit(self, ctx: StepContext, ref: str) -> str:
        commit = await self.commit_of(ctx, check_ref(ref))
        if commit is None:
            where = self.workdir(ctx)
            tags = await self.recent_tags(ctx)
            raise StepFailed(f"{ref!r} is not a commit in {where} (recent tags: {tags})")
        return commit


class GitRecordCurrent(_GitStep):
    """`git rev-parse HEAD`: the commit running now, for the journal and later rollbacks."""

    type: Literal["git.record_current"] = "git.record_current"

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Record the current commit"

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, ["git", "rev-parse", "--verify", "HEAD"])]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        commit = await self.head(ctx)
        branch = await self.exec(ctx, ["git", "symbolic-ref", "-q", "--short", "HEAD"])
        subject = await self.git(ctx, "reading the commit", "log", "-1", "--format=%s", commit)
        return {
            "commit": commit,
            "branch": branch.stdout.strip() if branch.ok else "",  # "" when detached
            "subject": subject,
        }


class GitResolveRef(_GitStep):
    """Which commit a rollback goes to: the requested ref, or for `previous` the commit
    recorded before the deployment (recorded_file) and else the last-stable-release tag."""

    type: Literal["git.resolve_ref"] = "git.resolve_ref"
    ref: str | None = None  # usually `use: {ref: request.ref}`
    recorded_file: str | None = None  # default: the target's recorded_commit_file
    stable_ref: str | None = None  # default: the target's stable_ref, else last-stable-release
    # HEAD already at the commit makes the whole request a no-op; off by default, as the host
    # playbooks do more than check out code (configuration, containers, the database)
    stop_when_current: bool = False

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Find the commit to roll back to"

    def _stable(self, ctx: StepContext) -> str:
        return self.stable_ref or ctx.param("stable_ref") or STABLE_TAG

    def _recorded(self, ctx: StepContext) -> str | None:
        return self.recorded_file or ctx.param("recorded_commit_file")

    def _wanted(self, ctx: StepContext) -> str:
        return (self.ref if self.ref is not None else ctx.ref).strip()

    async def plan(self, ctx: StepContext) -> list[str]:
        wanted = self._wanted(ctx)
        if wanted.lower() not in PREVIOUS:
            return [self.line(ctx, ["git", "rev-parse", "--verify", "-q", f"{wanted}^{{commit}}"])]
        lines = []
        if recorded := self._recorded(ctx):
            lines.append(self.line(ctx, ["cat", "--", recorded]) + "  (the pre-deployment commit)")
        stable = self._stable(ctx)
        lines.append(
            self.line(ctx, ["git", "rev-parse", "--verify", "-q", f"{stable}^{{commit}}"])
            + ("  (when nothing was recorded)" if recorded else "")
        )
        return lines

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        wanted = self._wanted(ctx)
        current = await self.head(ctx)
        if wanted.lower() in PREVIOUS:
            ref, source = await self._previous(ctx)
        else:
            ref, source = wanted, "requested"
        commit = await self.must_commit(ctx, ref)
        approved = (ctx.approved.get(self.id) or {}).get("commit")
        if self.stop_when_current and current in (commit, approved):
            raise NothingToDo(f"{self.workdir(ctx)} is already at {current[:12]}: nothing to do")
        return {
            "ref": ref,
            "commit": commit,
            "source": source,
            "current": current,
            "summary": f"{current[:12]} -> {commit[:12]} ({ref}, {source})",
            **world(str(self.workdir(ctx)), current[:12]),
        }

    async def _previous(self, ctx: StepContext) -> tuple[str, str]:
        recorded = self._recorded(ctx)
        if recorded:
            result = await self.exec(ctx, ["cat", "--", recorded])
            first = result.stdout.strip().split("\n", 1)[0].strip() if result.ok else ""
            if first and GIT_REF.match(first) and await self.commit_of(ctx, first):
                return first, f"recorded in {recorded}"
        stable = self._stable(ctx)
        return stable, "the stable tag"


class GitCheckout(_GitStep, ChangeStep):
    """`git checkout REF` of runbook 004 phase 3, refusing a working tree with local edits
    (git would silently carry them over) unless `force`, which stashes them first."""

    type: Literal["git.checkout"] = "git.checkout"
    ref: str | None = None  # a commit, tag or branch; default: the requested ref
    force: bool = False

    summary: ClassVar[str] = "Check out the code to roll back to"

    def _ref(self, ctx: StepContext) -> str:
        return (self.ref if self.ref is not None else ctx.ref).strip()

    def title(self) -> str:
        return self.name or (f"Check out {self.ref}" if self.ref else self.summary)

    async def plan(self, ctx: StepContext) -> list[str]:
        ref = self._ref(ctx)
        dirty = "stash local edits" if self.force else "refuse if there are local edits"
        return [
            self.line(ctx, ["git", "status", "--porcelain", "--untracked-files=no"])
            + f"  ({dirty})",
            self.line(ctx, ["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"]),
            self.line(ctx, ["git", "checkout", "-q", "--detach", ref]),
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        ref = self._ref(ctx)
        commit = await self.must_commit(ctx, ref)
        before = await self.head(ctx)
        out: dict[str, Any] = {"ref": ref, "commit": commit, "previous_commit": before}
        if before == commit:
            return {**out, "unchanged": True, "summary": f"already at {commit[:12]}"}
        out["stash"] = await self._clean_tree(ctx, ref)
        # -q also keeps git's detached-HEAD advice out of the journal
        await self.git(ctx, f"checking out {ref}", "checkout", "-q", "--detach", commit)
        now = await self.head(ctx)
        if now != commit:
            raise StepFailed(f"after the checkout HEAD is {now[:12]}, not {commit[:12]}", out)
        return {**out, "unchanged": False, "summary": f"{before[:12]} -> {commit[:12]} ({ref})"}

    async def _clean_tree(self, ctx: StepContext, ref: str) -> str:
        """'' for a clean tree; the stash made with force; StepFailed otherwise. Untracked files
        are left alone: git refuses to overwrite them rather than merging silently."""
        # not stripped: the first column of a porcelain line is significant
        status = await self.must(
            ctx,
            "reading the working tree",
            ["git", "status", "--porcelain", "--untracked-files=no"],
        )
        changed = [line for line in status.splitlines() if line.strip()]
        if not changed:
            return ""
        if not self.force:
            shown = ", ".join(line[3:] for line in changed[:SHOWN_DIRTY])
            more = f" and {len(changed) - SHOWN_DIRTY} more" if len(changed) > SHOWN_DIRTY else ""
            raise StepFailed(
                f"{self.workdir(ctx)} has local edits ({shown}{more}); git would carry them"
                " into the rolled-back code. Commit or stash them, or set force: true",
                {"dirty": changed[:50]},
            )
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        message = f"rollbot: local edits before checking out {ref} at {when}"
        await self.git(ctx, "stashing local edits", *IDENTITY, "stash", "push", "-m", message)
        return await self.git(ctx, "reading the stash", "rev-parse", "--verify", "stash@{0}")

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`a1b2c3d feat: hybrid -> 9f8e7d6 release 1.4 (14 commits back)`"""
        commit = await self.must_commit(ctx, self._ref(ctx))
        before = await self.head(ctx)
        if before == commit:
            return f"already at {await self._commit_line(ctx, commit)}: nothing to check out"
        back = await self.git(ctx, "counting", "rev-list", "--count", f"{commit}..{before}")
        ahead = await self.git(ctx, "counting", "rev-list", "--count", f"{before}..{commit}")
        if ahead == "0":
            distance = f"{back} commit{'s' if back != '1' else ''} back"
        else:
            distance = f"{back} commits only here, {ahead} only there"
        was, to = await self._commit_line(ctx, before), await self._commit_line(ctx, commit)
        return f"{was} -> {to} ({distance})"

    async def _commit_line(self, ctx: StepContext, commit: str) -> str:
        subject = await self.git(ctx, "reading the commit", "log", "-1", "--format=%s", commit)
        return f"`{commit[:7]}` {subject[:60]}"

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        ref = self._ref(ctx)
        commit = await self.commit_of(ctx, check_ref(ref))
        if commit is not None and commit == await self.head(ctx):
            return {"ref": ref, "commit": commit, "unchanged": True, "resumed": True}
        return None
