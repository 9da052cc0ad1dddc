"""docker compose steps of runbook 004, through the `docker compose` CLI and not the Engine API:
a compose project exists only client-side, and the CLI reads it exactly as an operator would."""

# Why the CLI: the Engine API knows containers, not services. Scaling, recreating after a file
# change, build contexts, `.env` interpolation, profiles and start order would all have to be
# rebuilt here and would drift from what an operator gets typing the runbook's commands. The
# CLI reads the same files the same way, honours DOCKER_HOST and contexts, and every plan line
# is a command a person can run by hand.

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from playbooks.base import ChangeStep, Step, StepContext, StepFailed
from playbooks.steps.executor import COMPOSE_ENV, HOST_ENV, HostCommands

DEFAULT_COMMAND = ("docker", "compose")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
WRONG_PROJECT = (
    "compose project '{project}' has no containers for {services} — is compose_project right?"
)


def check_service(name: str) -> str:
    # a leading "-" would turn a templated service name into a compose option
    if not SERVICE_NAME.match(name):
        raise ValueError(f"{name!r} is not a compose service name")
    return name


def compose_base(
    ctx: StepContext,
    command: Sequence[str] | None = None,
    project: str | None = None,
    files: Sequence[str] | None = None,
) -> list[str]:
    """`docker compose -p PROJECT -f FILE` for the target: its compose_command,
    compose_project and compose_file parameters unless the step names its own."""
    argv = list(command or ctx.param("compose_command") or DEFAULT_COMMAND)
    name = project or ctx.param("compose_project")
    if name:
        if not PROJECT_NAME.match(name):
            raise StepFailed(f"{name!r} is not a compose project name (a-z, 0-9, - and _)")
        argv += ["-p", name]
    if files is None:
        default = ctx.param("compose_file")
        files = [default] if isinstance(default, str) and default else list(default or [])
    for file in files:
        argv += ["-f", file]
    return argv


def compose_exec(ctx: StepContext, service: str, argv: Sequence[str]) -> list[str]:
    """`docker compose ... exec -T SERVICE ARGV...`: a command inside the service's container
    (-T: no terminal; the bot has none to give)."""
    return [*compose_base(ctx), "exec", "-T", check_service(service), *argv]


def normalise_project(name: str) -> str:
    """A directory name as compose turns it into a project name: lower case, only a-z, 0-9,
    `-` and `_`, starting with a letter or digit (`Chat-Arena-Backend` -> `chat-arena-backend`)."""
    kept = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return kept.lstrip("_-")


def _dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def resolve_project(
    ctx: StepContext,
    project: str | None = None,
    files: Sequence[str] | None = None,
    workdir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(project name, where it comes from), in compose's own order: -p, COMPOSE_PROJECT_NAME
    (environment, then the project directory's .env), the first file's top-level `name:`,
    else the first file's directory name, normalised."""
    explicit = project or ctx.param("compose_project")
    if explicit:
        return str(explicit), "compose_project (-p)"
    where = Path(workdir or ctx.param("app_dir") or os.getcwd())
    from_env = (env or {}).get("COMPOSE_PROJECT_NAME") or os.environ.get("COMPOSE_PROJECT_NAME")
    if from_env:
        return from_env, "COMPOSE_PROJECT_NAME in the environment"
    from_dotenv = _dotenv(where / ".env").get("COMPOSE_PROJECT_NAME")
    if from_dotenv:
        return from_dotenv, f"COMPOSE_PROJECT_NAME in {where / '.env'}"
    if files is None:
        default = ctx.param("compose_file")
        files = [default] if isinstance(default, str) and default else list(default or [])
    candidates = [where / f for f in files] or [where / f for f in DEFAULT_FILES]
    first = next((f for f in candidates if f.is_file()), candidates[0])
    try:
        spec = yaml.safe_load(first.read_text()) or {}
    except (OSError, yaml.YAMLError):
        spec = {}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]:
        return spec["name"], f"`name:` in {first.name}"
    return normalise_project(first.parent.name), f"the directory name {first.parent.name!r}"


def parse_ps_json(text: str) -> list[dict[str, Any]] | None:
    """`docker compose ps --format json`: a JSON array (older compose) or one object a line
    (newer); None when the output is neither."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except ValueError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            return None
    return [r for r in rows if isinstance(r, dict)]


class ComposeStep(HostCommands, Step):
    """One `docker compose` command in the target's app directory."""

    project: str | None = None  # default: the target's compose_project
    files: list[str] | None = None  # default: the target's compose_file
    directory: str | None = None  # default: the target's app_dir
    command: list[str] | None = None  # default: the target's compose_command, else docker compose
    env: dict[str, str] = {}  # e.g. {API_TAG: v1} for a compose file that interpolates it
    timeout: float = Field(default=600.0, gt=0)

    # Compose converges on the state it is asked for: after a crash a change is simply run
    # again.
    repeatable: ClassVar[bool] = True
    needs_env: ClassVar[frozenset[str]] = HOST_ENV | COMPOSE_ENV
    verb: ClassVar[str] = ""

    # declared here for every subclass that has a `services` list
    @field_validator("services", check_fields=False)
    @classmethod
    def _services(cls, v: list[str]) -> list[str]:
        return [check_service(s) for s in v]

    def workdir(self, ctx: StepContext) -> str | None:
        return self.directory or ctx.param("app_dir")

    def args(self) -> list[str]:
        raise NotImplementedError

    def argv(self, ctx: StepContext) -> list[str]:
        base = compose_base(ctx, self.command, self.project, self.files)
        return [*base, *self.args()]

    def names(self) -> list[str]:
        return list(getattr(self, "services", []))

    def title(self) -> str:
        if self.name:
            return self.name
        return f"{self.verb} {', '.join(self.names()) or 'all services'}"

    # every state-changing or log-reading step first proves the project has the containers it
    # names: with a wrong project name compose would otherwise do nothing and exit 0
    needs_containers: ClassVar[bool] = True

    def project_name(self, ctx: StepContext) -> tuple[str, str]:
        return resolve_project(ctx, self.project, self.files, self.workdir(ctx), self.env)

    async def plan(self, ctx: StepContext) -> list[str]:
        name, source = self.project_name(ctx)
        lines = [self.line(ctx, self.argv(ctx), self.env)]
        note = f"(compose project {name!r}, from {source}"
        if self.needs_containers:
            found = await self._found_or_none(ctx)
            if found is None:
                note += "; its containers could not be listed now"
            else:
                missing = self.missing(found)
                if missing:
                    note += "; " + WRONG_PROJECT.format(project=name, services=missing)
        return [*lines, note + ")"]

    async def container_problem(self, ctx: StepContext) -> str | None:
        """Why this step would refuse to run now (no containers for what it names, or they
        cannot be listed); None when it would go ahead. For `rollbot check --online`."""
        if not self.needs_containers:
            return None
        try:
            missing = self.missing(await self.containers(ctx))
        except StepFailed as exc:
            return str(exc)
        if not missing:
            return None
        name, source = self.project_name(ctx)
        return f"{WRONG_PROJECT.format(project=name, services=missing)} (name from {source})"

    async def _found_or_none(self, ctx: StepContext) -> dict[str, int] | None:
        try:
            return await self.containers(ctx)
        except StepFailed:
            return None

    async def containers(self, ctx: StepContext, running: bool = False) -> dict[str, int]:
        """service -> containers of the project, in any state (`ps --all`), or running only."""
        base = compose_base(ctx, self.command, self.project, self.files)
        argv = [*base, "ps", "--all", "--format", "json"]
        result = await self.exec(ctx, argv, env=self.env, timeout=min(self.timeout, 60.0))
        if not result.ok:
            raise self.failed("listing the compose project's containers failed", result)
        rows = parse_ps_json(result.stdout)
        if rows is None:
            raise StepFailed(f"`{result.command}` printed no JSON: {result.stdout[:200]!r}")
        counts: dict[str, int] = {}
        for row in rows:
            if running and str(row.get("State") or "").lower() != "running":
                continue
            service = str(row.get("Service") or "")
            counts[service] = counts.get(service, 0) + 1
        return counts

    def missing(self, found: dict[str, int]) -> str:
        """The named services without containers ('' when all have some); with no service
        named, the project must have at least one container."""
        names = self.names()
        if not names:
            return "" if found else "any service"
        return ", ".join(n for n in names if not found.get(n))

    async def preflight(self, ctx: StepContext) -> dict[str, int]:
        found = await self.containers(ctx)
        missing = self.missing(found)
        if missing:
            name = self.project_name(ctx)[0]
            raise StepFailed(WRONG_PROJECT.format(project=name, services=missing))
        return found

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        for name in self.names():  # fields filled by `use:` skipped validation
            check_service(name)
        found = await self.preflight(ctx) if self.needs_containers else {}
        argv = self.argv_for_run(ctx, found)
        result = await self.exec(ctx, argv, env=self.env)
        if not result.ok:
            raise self.failed(f"{self.title()} failed", result)
        return {**result.journal(), "services": self.names(), "project": self.project_name(ctx)[0]}

    def argv_for_run(self, ctx: StepContext, found: dict[str, int]) -> list[str]:
        return self.argv(ctx)


class _Services(ComposeStep, ChangeStep):
    services: list[str] = Field(min_length=1)

    # what the step leaves running, for the change sentence ("" : nothing to say)
    leaves: ClassVar[str] = ""

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`backend-asgi: 2 running -> stopped`"""
        if not self.leaves:
            return None
        running = await self.containers(ctx, running=True)
        return "; ".join(f"{s}: {running.get(s, 0)} running -> {self.leaves}" for s in self.names())


class ComposeStop(_Services):
    """`docker compose stop SERVICE...` (runbook 004: stop the ASGI containers)."""

    type: Literal["compose.stop"] = "compose.stop"
    stop_timeout: int | None = Field(default=None, ge=0)  # seconds before SIGKILL

    summary: ClassVar[str] = "Stop compose services"
    verb: ClassVar[str] = "Stop"
    leaves: ClassVar[str] = "stopped"

    def args(self) -> list[str]:
        wait = ["-t", str(self.stop_timeout)] if self.stop_timeout is not None else []
        return ["stop", *wait, *self.services]


class ComposeStart(_Services):
    """`docker compose start SERVICE...`: start existing, stopped containers."""

    type: Literal["compose.start"] = "compose.start"

    summary: ClassVar[str] = "Start compose services"
    verb: ClassVar[str] = "Start"
    leaves: ClassVar[str] = "started"

    def args(self) -> list[str]:
        return ["start", *self.services]


class ComposeRestart(_Services):
    """`docker compose restart SERVICE...` (runbook 004 phase 4, after the migrations)."""

    type: Literal["compose.restart"] = "compose.restart"

    summary: ClassVar[str] = "Restart compose services"
    verb: ClassVar[str] = "Restart"
    leaves: ClassVar[str] = "restarted"

    def args(self) -> list[str]:
        return ["restart", *self.services]


class ComposeUp(ComposeStep, ChangeStep):
    """`docker compose up -d [--no-deps] [--build] [--scale S=N] [SERVICE...]`; always detached,
    since an attached `up` never returns."""

    type: Literal["compose.up"] = "compose.up"
    services: list[str] = []  # empty: every service of the project
    no_deps: bool = False
    build: bool = False
    scale: dict[str, int] = {}
    # A plain `up` converges every service to the compose file's replica count, undoing a
    # scale an earlier step (or an operator) set: keep each service's current container count
    # unless `scale` names it.
    keep_scale: bool = True

    summary: ClassVar[str] = "Bring compose services up"
    verb: ClassVar[str] = "Bring up"

    @model_validator(mode="after")
    def _scale_only_named(self) -> ComposeUp:
        # compose itself refuses `up --scale X=N Y` (exit 1); say so when the playbook loads
        foreign = sorted(set(self.scale) - set(self.services)) if self.services else []
        if foreign:
            raise ValueError(
                f"scale names {', '.join(foreign)}, which this up does not bring up "
                f"(services: {', '.join(self.services)})"
            )
        return self

    async def plan(self, ctx: StepContext) -> list[str]:
        lines = await super().plan(ctx)
        if self.keep_scale:
            lines.append(
                "(each service keeps its current number of containers: --scale SERVICE=N is "
                "added from `ps` at run time, unless scale sets it)"
            )
        return lines

    def argv_for_run(self, ctx: StepContext, found: dict[str, int]) -> list[str]:
        if not self.keep_scale:
            return self.argv(ctx)
        kept = {
            name: count
            for name, count in found.items()
            if name and name not in self.scale and (not self.services or name in self.services)
        }
        step = self.model_copy(update={"scale": {**self.scale, **kept}})
        return step.argv(ctx)

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: dict[str, int]) -> dict[str, int]:
        for name, count in v.items():
            check_service(name)
            if count < 0:
                raise ValueError(f"cannot scale {name} to {count}")
        return v

    def args(self) -> list[str]:
        argv = ["up", "-d"]
        argv += ["--no-deps"] if self.no_deps else []
        argv += ["--build"] if self.build else []
        for name, count in self.scale.items():
            argv += ["--scale", f"{name}={count}"]
        return [*argv, *self.services]


class ComposeScale(ComposeStep, ChangeStep):
    """Run SERVICE with N containers: `up -d --no-deps --scale S=N S`.

    The runbook's `docker-compose up -d --scale backend-wsgi=4` names no service, so it also
    starts every service stopped a moment before (the ASGI containers); naming the service and
    --no-deps touches that one service only.
    """

    type: Literal["compose.scale"] = "compose.scale"
    service: str
    replicas: int = Field(ge=0)

    summary: ClassVar[str] = "Scale a compose service"

    @field_validator("service")
    @classmethod
    def _service(cls, v: str) -> str:
        return check_service(v)

    def names(self) -> list[str]:
        return [self.service]

    def title(self) -> str:
        return self.name or f"Scale {self.service} to {self.replicas}"

    def args(self) -> list[str]:
        return ["up", "-d", "--no-deps", "--scale", f"{self.service}={self.replicas}", self.service]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        return {**await super().run(ctx), "replicas": self.replicas}

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`backend-wsgi: 2 -> 4 containers`"""
        running = (await self.containers(ctx, running=True)).get(self.service, 0)
        return f"{self.service}: {running} -> {self.replicas} containers"


class ComposeBuild(ComposeStep, ChangeStep):
    """`docker compose build [SERVICE...]` after a checkout (runbook 004 phase 3)."""

    type: Literal["compose.build"] = "compose.build"
    services: list[str] = []
    pull: bool = False  # also pull newer base images

    summary: ClassVar[str] = "Build compose images"
    verb: ClassVar[str] = "Build"
    # a rebuild after a crash is harmless but slow; still the right way to converge
    timeout: float = Field(default=1800.0, gt=0)

    def args(self) -> list[str]:
        return ["build", *(["--pull"] if self.pull else []), *self.services]


class _ReadOnly(ComposeStep):
    needs_containers: ClassVar[bool] = False
    timeout: float = Field(default=60.0, gt=0)


class ComposePs(_ReadOnly):
    """`docker compose ps [SERVICE...]`: which containers run, for the journal."""

    type: Literal["compose.ps"] = "compose.ps"
    services: list[str] = []

    summary: ClassVar[str] = "List compose containers"
    verb: ClassVar[str] = "List containers of"

    def args(self) -> list[str]:
        return ["ps", *self.services]


class ComposeLogs(_ReadOnly):
    """`docker compose logs --tail N SERVICE...` (runbook 004: check the error logs)."""

    type: Literal["compose.logs"] = "compose.logs"
    services: list[str] = Field(min_length=1)
    tail: int = Field(default=100, ge=1, le=10_000)

    summary: ClassVar[str] = "Collect recent container logs"
    verb: ClassVar[str] = "Collect logs of"
    needs_containers: ClassVar[bool] = True  # real compose prints nothing for none

    def args(self) -> list[str]:
        # never --follow: it would not return
        return ["logs", "--no-color", "--tail", str(self.tail), *self.services]
