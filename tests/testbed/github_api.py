"""A loopback fake of the GitHub REST endpoints the Actions steps use (dispatch, runs, commits): it
checks token and inputs, and a dispatched run goes queued -> in_progress -> completed."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.testbed.loop_thread import LoopThreadServer

TOKEN = "ghp_fake_rollbot_token"
API_VERSION = "2022-11-28"


@dataclass
class Workflow:
    file: str
    id: int
    required: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    # input -> the only value the workflow's own guard accepts (confirm_rollback: ROLLBACK);
    # another value is accepted by the API, and the run then fails, as the real guard would
    guards: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the workflow's `name:`; GitHub shows the file path when there is none


@dataclass
class Run:
    id: int
    run_number: int
    repo: str
    workflow: Workflow
    event: str
    head_branch: str
    head_sha: str
    created_at: str
    inputs: dict[str, str] = field(default_factory=dict)
    conclusion_when_done: str = "success"
    status: str = "queued"
    conclusion: str | None = None
    polls: int = 0
    hidden_for: int = 0  # list calls that do not show it yet

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_number": self.run_number,
            "name": self.workflow.file,
            "workflow_id": self.workflow.id,
            "event": self.event,
            "status": self.status,
            "conclusion": self.conclusion,
            "head_branch": self.head_branch,
            "head_sha": self.head_sha,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "html_url": f"https://github.com/{self.repo}/actions/runs/{self.id}",
            "url": f"/repos/{self.repo}/actions/runs/{self.id}",
        }


@dataclass
class Repo:
    name: str
    branches: dict[str, str] = field(default_factory=dict)  # name -> sha
    tags: dict[str, str] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)

    def sha_of(self, ref: str) -> str | None:
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.tags:
            return self.tags[ref]
        known = {*self.branches.values(), *self.tags.values()}
        return next((sha for sha in known if len(ref) >= 7 and sha.startswith(ref)), None)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


def sha(text: str) -> str:
    """A stable fake commit id."""
    return hashlib.sha1(text.encode()).hexdigest()


class FakeGitHub(LoopThreadServer):
    """State plus an aiohttp server on its own loop in a daemon thread (reachable at .url
    from sync tests, async tests and bot processes)."""

    thread_name = "fake-github-api"

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self._lock = threading.Lock()
        self.reset()

    # ------------------------------------------------------------------ what tests use
    def reset(self) -> None:
        with self._lock:
            self.token = TOKEN
            self.repos: dict[str, Repo] = {}
            self.runs: list[Run] = []
            self.calls: list[Call] = []
            self.conclusion = "success"  # of the next dispatched runs
            self.queued_polls = 1  # GETs of a run that still see it queued
            self.running_polls = 2  # then in_progress; then completed
            self.hidden_lists = 0  # list calls that do not show a dispatched run yet (lag)
            self.fail_next: list[tuple[str, int]] = []  # (path fragment, status) injected
            self._next_id = 9000

    def add_repo(
        self,
        name: str,
        branches: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Repo:
        repo = Repo(name, branches or {"main": sha(f"{name} main")}, tags or {})
        with self._lock:
            self.repos[name] = repo
        return repo

    def add_workflow(
        self,
        repo: str,
        file: str,
        required: list[str] | None = None,
        optional: list[str] | None = None,
        guards: dict[str, str] | None = None,
        name: str = "",
    ) -> Workflow:
        with self._lock:
            workflow = Workflow(file, 100 + len(self.repos[repo].workflows), name=name)
            workflow.required = list(required or [])
            workflow.optional = list(optional or [])
            workflow.guards = dict(guards or {})
            self.repos[repo].workflows[file] = workflow
        return workflow

    def add_run(
        self,
        repo: str,
        workflow: str,
        head_sha: str,
        conclusion: str = "success",
        event: str = "push",
        branch: str = "main",
        minutes_ago: float = 0,
    ) -> Run:
        """A finished run in the history (e.g. earlier deployments)."""
        created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
        with self._lock:
            found = self.repos[repo]
            wf = found.workflows[workflow]
            run = self._new_run(found, wf, event, branch, head_sha, created, {}, conclusion)
            run.status, run.conclusion = "completed", conclusion
        return run

    def dispatched(self) -> list[Run]:
        return [r for r in self.runs if r.event == "workflow_dispatch"]

    # ------------------------------------------------------------------ life cycle

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._checks])
        repo = "/repos/{owner}/{name}"
        app.router.add_post(f"{repo}/actions/workflows/{{wf}}/dispatches", self._dispatch)
        app.router.add_get(f"{repo}/actions/workflows/{{wf}}", self._get_workflow)
        app.router.add_get(f"{repo}/actions/workflows/{{wf}}/runs", self._list_runs)
        app.router.add_get(f"{repo}/actions/runs/{{run_id}}", self._get_run)
        app.router.add_get(f"{repo}/commits/{{ref}}", self._commit)
        app.router.add_get("/rate_limit", self._rate_limit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    # ------------------------------------------------------------------ the API
    @web.middleware
    async def _checks(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            return _error(400, "Problems parsing JSON")
        response = self._refusal(request)
        if response is None:
            with self._lock:
                response = await handler(request)
        with self._lock:
            query = dict(request.query)
            self.calls.append(Call(request.method, request.path, query, body, response.status))
        return response

    async def _rate_limit(self, _: web.Request) -> web.Response:
        core = {"limit": 5000, "used": len(self.calls), "remaining": 5000 - len(self.calls)}
        return web.json_response({"resources": {"core": core}, "rate": core})

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "Bad credentials")
        version = request.headers.get("X-GitHub-Api-Version")
        if version not in (None, API_VERSION):
            return _error(400, f"API version {version} is not supported")
        if "json" not in request.headers.get("Accept", ""):
            return _error(415, "send Accept: application/vnd.github+json")
        for i, (fragment, status) in enumerate(self.fail_next):
            if fragment in request.path:
                del self.fail_next[i]
                return _error(status, "injected failure")
        return None

    def _repo(self, request: web.Request) -> Repo | None:
        return self.repos.get(f"{request.match_info['owner']}/{request.match_info['name']}")

    def _workflow(self, request: web.Request) -> tuple[Repo, Workflow] | web.Response:
        repo = self._repo(request)
        wf = request.match_info.get("wf", "")
        found = repo and (
            repo.workflows.get(wf)
            or next((w for w in repo.workflows.values() if str(w.id) == wf), None)
        )
        if not repo or not found:
            return _error(404, "Not Found")
        return repo, found

    async def _dispatch(self, request: web.Request) -> web.Response:
        found = self._workflow(request)
        if isinstance(found, web.Response):
            return found
        repo, workflow = found
        body = await request.json()
        ref, inputs = body.get("ref"), body.get("inputs") or {}
        if not isinstance(ref, str) or repo.sha_of(ref) is None:
            return _error(422, f"No ref found for: {ref}")
        problem = _check_inputs(workflow, inputs)
        if problem:
            return _error(422, problem)
        guards_ok = all(inputs.get(k) == v for k, v in workflow.guards.items())
        conclusion = self.conclusion if guards_ok else "failure"
        now = dt.datetime.now(dt.UTC)
        head = repo.sha_of(ref) or ""
        run = self._new_run(repo, workflow, "workflow_dispatch", ref, head, now, inputs, conclusion)
        run.hidden_for = self.hidden_lists
        return web.Response(status=204)

    async def _get_workflow(self, request: web.Request) -> web.Response:
        found = self._workflow(request)
        if isinstance(found, web.Response):
            return found
        wf = found[1]
        path = f".github/workflows/{wf.file}"
        return web.json_response(
            {"id": wf.id, "name": wf.name or path, "path": path, "state": "active"}
        )

    async def _list_runs(self, request: web.Request) -> web.Response:
        found = self._workflow(request)
        if isinstance(found, web.Response):
            return found
        repo, workflow = found
        runs = [r for r in self.runs if r.repo == repo.name and r.workflow is workflow]
        for run in runs:
            run.hidden_for -= 1
        runs = [r for r in runs if r.hidden_for < 0]
        runs = [r for r in runs if _matches(r, request.query)]
        runs.sort(key=lambda r: r.id, reverse=True)
        per_page = min(int(request.query.get("per_page", "30")), 100)
        listed = [r.json() for r in runs[:per_page]]
        return web.json_response({"total_count": len(runs), "workflow_runs": listed})

    async def _get_run(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        run = next((r for r in self.runs if str(r.id) == request.match_info["run_id"]), None)
        if repo is None or run is None or run.repo != repo.name:
            return _error(404, "Not Found")
        run.polls += 1
        if run.status != "completed":
            if run.polls > self.queued_polls + self.running_polls:
                run.status, run.conclusion = "completed", run.conclusion_when_done
            elif run.polls > self.queued_polls:
                run.status = "in_progress"
        return web.json_response(run.json())

    async def _commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return _error(404, "Not Found")
        found = repo.sha_of(request.match_info["ref"])
        if found is None:
            return _error(422, f"No commit found for SHA: {request.match_info['ref']}")
        return web.json_response({"sha": found})

    def _new_run(
        self,
        repo: Repo,
        workflow: Workflow,
        event: str,
        branch: str,
        head_sha: str,
        created: dt.datetime,
        inputs: dict[str, str],
        conclusion: str,
    ) -> Run:
        self._next_id += 1
        number = 1 + sum(1 for r in self.runs if r.workflow is workflow)
        # GitHub reports creation times to the second
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        run = Run(self._next_id, number, repo.name, workflow, event, branch, head_sha, stamp)
        run.inputs, run.conclusion_when_done = dict(inputs), conclusion
        self.runs.append(run)
        return run


def _check_inputs(workflow: Workflow, inputs: dict[str, Any]) -> str:
    for name in workflow.required:
        if not str(inputs.get(name) or ""):
            return f"Required input '{name}' not provided"
    unexpected = sorted(set(inputs) - set(workflow.required) - set(workflow.optional))
    if unexpected:
        return f"Unexpected inputs provided: {unexpected}"
    if any(not isinstance(v, str) for v in inputs.values()):
        return "inputs must be strings"
    return ""


def _matches(run: Run, query: Any) -> bool:
    if "event" in query and run.event != query["event"]:
        return False
    if "branch" in query and run.head_branch != query["branch"]:
        return False
    status = query.get("status")
    if status and status not in (run.status, run.conclusion):
        return False
    created = query.get("created", "")
    return not (created.startswith(">=") and run.created_at < created[2:])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message, "status": str(status)}, status=status)


@pytest.fixture(scope="session")
def github_api_server() -> Iterator[FakeGitHub]:
    api = FakeGitHub().start()
    yield api
    api.stop()


@pytest.fixture
def github_api(github_api_server: FakeGitHub) -> FakeGitHub:
    """The session's fake GitHub, emptied; expects `Authorization: Bearer ghp_fake_rollbot_token`.
    Set GITHUB_API_URL to `.url` (or Settings(github_api_url=.url))."""
    github_api_server.reset()
    return github_api_server
