"""GitHub Actions steps of runbook 002: find the commit to go back to, start the Emergency
Rollback workflow with its inputs, find the run it started and follow it to its conclusion."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import aiohttp
from pydantic import Field

from playbooks.base import ChangeStep, NothingToDo, Step, StepContext, StepFailed, world
from playbooks.steps.git import GIT_REF, PREVIOUS

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
WORKFLOW = re.compile(r"^([A-Za-z0-9_.-]{1,200}\.ya?ml|\d{1,20})$")
# Runs that existed before the dispatch are ignored, so clock skew between this machine and
# GitHub only needs a generous margin on the `created` filter.
CLOCK_MARGIN = dt.timedelta(minutes=5)
SEEN_RUNS = 50
# Polling survives this many GitHub hiccups (5xx, resets) in a row.
POLL_ERRORS = 3


class GitHubError(StepFailed):
    def __init__(self, message: str, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message, {"github_status": status} if status else {})
        self.status = status
        self.transient = transient


def _describe(status: int, data: Any, action: str, headers: Any) -> GitHubError:
    message = data.get("message", "") if isinstance(data, dict) else str(data)[:200]
    if status == 401:
        text = f"GitHub rejected GITHUB_TOKEN on {action} (401 {message}): it is wrong or expired"
    elif status in (403, 429) and (headers.get("x-ratelimit-remaining") == "0" or status == 429):
        reset = headers.get("x-ratelimit-reset", "")
        when = dt.datetime.fromtimestamp(int(reset), dt.UTC).strftime("%H:%M UTC") if reset else ""
        text = f"GitHub rate limit reached on {action}" + (f"; it resets at {when}" if when else "")
        return GitHubError(text, status, transient=True)
    elif status == 403:
        text = f"GITHUB_TOKEN may not {action}: {message} (it needs Actions: write on the repo)"
    elif status == 404:
        text = (
            f"{action}: not found (a wrong repository or workflow, or a token that cannot see it)"
        )
    elif status == 422:
        text = f"GitHub refused {action}: {message}"
    else:
        text = f"GitHub answered {status} on {action}: {message or 'no message'}"
        return GitHubError(text, status, transient=status >= 500)
    return GitHubError(text, status)


@dataclass
class GitHub:
    """The few REST calls the steps make, over one aiohttp session."""

    base: str
    token: str = field(repr=False)
    session: aiohttp.ClientSession = field(repr=False)

    async def call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "rollbot",
        }
        url = self.base.rstrip("/") + path
        try:
            async with self.session.request(
                method, url, params=params, json=body, headers=headers
            ) as resp:
                data = _json(await resp.text())
                if resp.status >= 400:
                    raise _describe(resp.status, data or {}, action, resp.headers)
                return resp.status, data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # the exception text names the URL, never the Authorization header
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise GitHubError(
                f"cannot reach GitHub at {self.base} ({reason})", transient=True
            ) from None


def _json(text: str) -> Any:
    """The body as JSON; None when empty (204); a proxy's HTML page as a message."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"message": text.strip()[:200]}


def github_settings(ctx: StepContext) -> tuple[str, str | None]:
    """GITHUB_API_URL and GITHUB_TOKEN from the bot's settings (the environment without them)."""
    settings = ctx.settings
    if settings is None:
        return os.environ.get("GITHUB_API_URL") or DEFAULT_API, os.environ.get("GITHUB_TOKEN")
    secret = getattr(settings, "github_token", None)
    token = secret.get_secret_value() if secret is not None else None
    return getattr(settings, "github_api_url", None) or DEFAULT_API, token


class _GitHubStep(Step):
    repo: str | None = None  # owner/name; default: the target's github_repo
    request_timeout: float = Field(default=30.0, gt=0)

    def repository(self, ctx: StepContext) -> str:
        repo = self.repo or ctx.param("github_repo")
        if not repo or not REPO.match(repo):
            raise StepFailed(f"{repo!r} is not a GitHub repository (owner/name): set github_repo")
        return repo

    def api(self, ctx: StepContext) -> str:
        return github_settings(ctx)[0].rstrip("/")

    def session(self, ctx: StepContext) -> tuple[GitHub, aiohttp.ClientSession]:
        base, token = github_settings(ctx)
        if not token:
            raise StepFailed("GITHUB_TOKEN is not set: the bot cannot call GitHub Actions")
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        session = aiohttp.ClientSession(timeout=timeout)
        return GitHub(base, token, session), session


def _workflow(ctx: StepContext, own: str | None, param: str, default: str) -> str:
    name = own or ctx.param(param) or default
    if not WORKFLOW.match(str(name)):
        raise StepFailed(f"{name!r} is not a workflow file name (x.yml) or id")
    return str(name)


class GitHubResolveRef(_GitHubStep):
    """What to roll back to: the requested commit or tag, checked to exist; for `previous`,
    the commit of the newest successful deploy run before the one now live (runbook 002
    option A)."""

    type: Literal["github.resolve_ref"] = "github.resolve_ref"
    ref: str | None = None  # usually `use: {ref: request.ref}`
    deploy_workflow: str | None = None  # default: the target's deploy_workflow
    branch: str | None = None  # default: the target's deploy_branch, else main

    resolves: ClassVar[bool] = True
    summary: ClassVar[str] = "Find the commit to roll back to"

    def _wanted(self, ctx: StepContext) -> str:
        return (self.ref if self.ref is not None else ctx.ref).strip()

    def _branch(self, ctx: StepContext) -> str:
        return self.branch or ctx.param("deploy_branch") or "main"

    async def plan(self, ctx: StepContext) -> list[str]:
        repo, wanted = self.repository(ctx), self._wanted(ctx)
        if wanted.lower() in PREVIOUS:
            wf = _workflow(ctx, self.deploy_workflow, "deploy_workflow", "deploy-prod.yml")
            return [
                f"GET {self.api(ctx)}/repos/{repo}/actions/workflows/{wf}/runs"
                f"?status=success&branch={self._branch(ctx)} -> the commit deployed before"
                " the newest successful run"
            ]
        return [f"GET {self.api(ctx)}/repos/{repo}/commits/{quote(wanted, safe='')}"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        repo, wanted = self.repository(ctx), self._wanted(ctx)
        if wanted.lower() not in PREVIOUS and not GIT_REF.match(wanted):
            raise StepFailed(f"{wanted!r} is not a commit or tag name")
        gh, session = self.session(ctx)
        async with session:
            if wanted.lower() in PREVIOUS:
                return await self._previous(ctx, gh, repo)
            try:
                path = f"/repos/{repo}/commits/{quote(wanted, safe='')}"
                _, data = await gh.call("GET", path, f"look up {wanted}")
            except GitHubError as exc:
                if exc.status not in (404, 422):
                    raise
                raise StepFailed(f"{wanted!r} is not a commit, branch or tag in {repo}") from None
        sha = data["sha"]
        return {"ref": wanted, "commit": sha, "source": "requested", "summary": f"{wanted} = {sha}"}

    async def _previous(self, ctx: StepContext, gh: GitHub, repo: str) -> dict[str, Any]:
        wf = _workflow(ctx, self.deploy_workflow, "deploy_workflow", "deploy-prod.yml")
        branch = self._branch(ctx)
        params = {"status": "success", "branch": branch, "per_page": "50"}
        path = f"/repos/{repo}/actions/workflows/{wf}/runs"
        _, data = await gh.call("GET", path, f"list the runs of {wf}", params=params)
        runs = sorted(data.get("workflow_runs", []), key=lambda r: r["created_at"], reverse=True)
        if not runs:
            raise StepFailed(f"{wf} has no successful run on {branch}: name the commit or tag")
        live = runs[0]["head_sha"]
        approved = (ctx.approved.get(self.id) or {}).get("commit")
        if approved and approved == live:  # deployed meanwhile, by someone else
            raise NothingToDo(
                f"{repo} already runs {live[:12]}, where the approved plan was to take it:"
                " nothing to do"
            )
        earlier = next((r for r in runs if r["head_sha"] != live), None)
        if earlier is None:
            raise StepFailed(
                f"every successful run of {wf} on {branch} deployed {live[:12]}, the live"
                " commit: name the commit or tag to roll back to"
            )
        return {
            "ref": earlier["head_sha"],
            "commit": earlier["head_sha"],
            "live_commit": live,
            "source": f"{wf} run #{earlier.get('run_number')}: {earlier.get('html_url')}",
            "summary": f"{live[:12]} -> {earlier['head_sha'][:12]} (deployed before the live one)",
            **world(repo, live[:12]),
        }


class GitHubDispatchWorkflow(_GitHubStep, ChangeStep):
    """POST .../actions/workflows/{workflow}/dispatches with the rollback inputs, then find the
    run it started and follow it until it concludes; anything but success fails the step."""

    type: Literal["github.dispatch_workflow"] = "github.dispatch_workflow"
    workflow: str | None = None  # default: the target's workflow, else rollback.yml
    ref: str | None = None  # the branch the workflow runs from; default: workflow_ref, else main
    inputs: dict[str, str] = {}  # e.g. {environment: prod, confirm_rollback: ROLLBACK}
    rollback_to: str | None = None  # added as inputs[rollback_input]; `use:` a resolve step
    rollback_input: str = "rollback_to_tag"
    delay: float | None = Field(default=None, gt=0)  # default: the target's poll_delay
    timeout: float | None = Field(default=None, gt=0)  # default: the target's poll_timeout
    find_timeout: float = Field(default=90.0, gt=0)  # for the new run to show up in the list

    summary: ClassVar[str] = "Run the rollback workflow in GitHub Actions"

    def _inputs(self) -> dict[str, str]:
        inputs = {k: str(v) for k, v in self.inputs.items()}
        if self.rollback_to is not None:
            inputs[self.rollback_input] = str(self.rollback_to)
        return inputs

    def _timing(self, ctx: StepContext) -> tuple[float, float]:
        return self.delay or ctx.poll_delay, self.timeout or ctx.poll_timeout

    def _names(self, ctx: StepContext) -> tuple[str, str, str]:
        wf = _workflow(ctx, self.workflow, "workflow", "rollback.yml")
        return self.repository(ctx), wf, self.ref or ctx.param("workflow_ref") or "main"

    async def plan(self, ctx: StepContext) -> list[str]:
        repo, wf, ref = self._names(ctx)
        delay, timeout = self._timing(ctx)
        base = f"{self.api(ctx)}/repos/{repo}/actions"
        return [
            f"POST {base}/workflows/{wf}/dispatches {{ref: {ref!r}, inputs: {self._inputs()!r}}}",
            f"GET {base}/workflows/{wf}/runs?event=workflow_dispatch every {delay:g}s until"
            f" the new run appears (at most {self.find_timeout:g}s)",
            f"GET {base}/runs/RUN_ID every {delay:g}s until it completes (at most {timeout:g}s);"
            " the conclusion must be success",
        ]

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`workflow Emergency Rollback on 9f8e7d6 (v1.4)`: its name as GitHub shows it."""
        to = str(self.rollback_to or ctx.ref)
        name = await self._workflow_name(ctx)
        # `to` is the resolved commit (what is dispatched) or the ref the resolve step looked up
        found = next(
            (
                o
                for o in ctx.outputs.values()
                if "commit" in o and to in (o.get("ref"), str(o["commit"]))
            ),
            {},
        )
        commit, ref = str(found.get("commit") or ""), str(found.get("ref") or "")
        if commit and ref and not commit.startswith(ref):
            on = f"`{commit[:7]}` ({ref})"
        else:
            on = f"`{(commit or to)[:12]}`"
        return f"workflow {name} on {on}"

    async def _workflow_name(self, ctx: StepContext) -> str:
        """The workflow's `name:`, else its file; a failed look-up only costs the nicer name."""
        repo, wf, _ = self._names(ctx)
        gh, session = self.session(ctx)
        try:
            async with session:
                _, found = await gh.call("GET", f"/repos/{repo}/actions/workflows/{wf}", "read")
        except StepFailed:
            return wf
        name = str((found or {}).get("name") or wf)
        return wf if name.startswith(".github/") else name

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        repo, wf, ref = self._names(ctx)
        inputs = self._inputs()
        if self.rollback_to is not None and not GIT_REF.match(str(self.rollback_to)):
            raise StepFailed(f"{self.rollback_to!r} is not a commit or tag name")
        gh, session = self.session(ctx)
        async with session:
            seen = await self._run_ids(gh, repo, wf, None)
            dispatched = dt.datetime.now(dt.UTC)
            path = f"/repos/{repo}/actions/workflows/{wf}/dispatches"
            _, answer = await gh.call(
                "POST", path, f"start {wf}", body={"ref": ref, "inputs": inputs}
            )
            run = await self._find_run(ctx, gh, (repo, wf, ref), seen, dispatched, answer)
            return await self._follow(ctx, gh, repo, run, inputs)

    async def _run_ids(
        self, gh: GitHub, repo: str, wf: str, since: dt.datetime | None
    ) -> dict[int, dict[str, Any]]:
        params = {"event": "workflow_dispatch", "per_page": str(SEEN_RUNS)}
        if since is not None:
            params["created"] = ">=" + (since - CLOCK_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = f"/repos/{repo}/actions/workflows/{wf}/runs"
        _, data = await gh.call("GET", path, f"list the runs of {wf}", params=params)
        return {r["id"]: r for r in data.get("workflow_runs", [])}

    async def _find_run(
        self,
        ctx: StepContext,
        gh: GitHub,
        names: tuple[str, str, str],
        seen: dict[int, dict[str, Any]],
        dispatched: dt.datetime,
        answer: Any,
    ) -> dict[str, Any]:
        # newer GitHub versions may answer the dispatch with the run's id: no search needed
        if isinstance(answer, dict) and answer.get("workflow_run_id"):
            return {"id": answer["workflow_run_id"], "html_url": answer.get("html_url", "")}
        repo, wf, ref = names
        delay, _ = self._timing(ctx)
        deadline = time.monotonic() + self.find_timeout
        while True:
            listed = await self._run_ids(gh, repo, wf, dispatched)
            new = [r for i, r in listed.items() if i not in seen]
            # a dispatched run carries the branch it was started on
            new = [r for r in new if r.get("head_branch") in (ref, None)] or new
            if new:
                # the earliest run after the dispatch is ours; a later one is someone else's
                return min(new, key=lambda r: (r["created_at"], r["id"]))
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"{wf} was dispatched but no new run appeared within {self.find_timeout:g}s;"
                    f" look at https://github.com/{repo}/actions/workflows/{wf}"
                )
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.01)))

    async def _follow(
        self, ctx: StepContext, gh: GitHub, repo: str, run: dict[str, Any], inputs: dict[str, str]
    ) -> dict[str, Any]:
        delay, timeout = self._timing(ctx)
        started, polls, errors = time.monotonic(), 0, 0
        while True:
            polls += 1
            try:
                _, run = await gh.call("GET", f"/repos/{repo}/actions/runs/{run['id']}", "poll")
                errors = 0
            except GitHubError as exc:
                errors += 1
                if not exc.transient or errors > POLL_ERRORS:
                    raise StepFailed(f"{exc} while following {_link(run)}", exc.output) from None
            waited = time.monotonic() - started
            if run.get("status") == "completed":
                return self._concluded(run, inputs, polls, waited)
            if waited >= timeout:
                raise StepFailed(
                    f"workflow run still {run.get('status')} after {timeout:g}s (it goes on in"
                    f" GitHub): {_link(run)}",
                    _output(run, inputs, polls, waited),
                )
            await asyncio.sleep(min(delay, max(timeout - waited, 0.01)))

    def _concluded(
        self, run: dict[str, Any], inputs: dict[str, str], polls: int, waited: float
    ) -> dict[str, Any]:
        output = _output(run, inputs, polls, waited)
        if run.get("conclusion") != "success":
            raise StepFailed(
                f"workflow run #{run.get('run_number')} ended {run.get('conclusion')}: "
                f"{_link(run)}",
                output,
            )
        return output


def _link(run: dict[str, Any]) -> str:
    return str(run.get("html_url") or f"run {run.get('id')}")


def _output(run: dict[str, Any], inputs: dict[str, str], polls: int, waited: float) -> dict:
    return {
        "run_id": run.get("id"),
        "run_number": run.get("run_number"),
        "html_url": run.get("html_url", ""),
        "status": run.get("status"),
        "conclusion": run.get("conclusion"),
        "inputs": inputs,
        "polls": polls,
        "waited_seconds": round(waited, 2),
        "summary": f"run #{run.get('run_number')} {run.get('conclusion') or run.get('status')}:"
        f" {_link(run)}",
    }
