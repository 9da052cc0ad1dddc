"""docker compose steps of runbook 004, through the `docker compose` CLI and not the Engine API:
a compose project exists only client-side, and the CLI reads it exactly as an operator would."""

# Why the CLI: the Engine API knows containers, not services. Scaling, recreating after a file
# change, build contexts, `.env` interpolation, profiles and start order would all have to be
# rebuilt here and would drift from what an operator gets typing the runbook's commands. The
# CLI reads the same files the same way, honours DOCKER_HOST and contexts, and every plan line
# is a command a person can run by hand.

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from playbooks.base import ChangeStep, Step, StepContext, StepFailed
from playbooks.steps.executor import COMPOSE_ENV, HOST_ENV, HostCommands

DEFAULT_COMMAND = ("docker", "compose")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


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

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, self.argv(ctx), self.env)]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        for name in self.names():  # fields filled by `use:` skipped validation
            check_service(name)
        result = await self.exec(ctx, self.argv(ctx), env=self.env)
        if not result.ok:
            raise self.failed(f"{self.title()} failed", result)
        return {**result.journal(), "services": self.names()}


class _Services(ComposeStep, ChangeStep):
    services: list[str] = Field(min_length=1)


class ComposeStop(_Services):
    """`docker compose stop SERVICE...` (runbook 004: stop the ASGI containers)."""

    type: Literal["compose.stop"] = "compose.stop"
    stop_timeout: int | None = Field(default=None, ge=0)  # seconds before SIGKILL

    summary: ClassVar[str] = "Stop compose services"
    verb: ClassVar[str] = "Stop"

    def args(self) -> list[str]:
        wait = ["-t", str(self.stop_timeout)] if self.stop_timeout is not None else []
        return ["stop", *wait, *self.services]


class ComposeStart(_Services):
    """`docker compose start SERVICE...`: start existing, stopped containers."""

    type: Literal["compose.start"] = "compose.start"

    summary: ClassVar[str] = "Start compose services"
    verb: ClassVar[str] = "Start"

    def args(self) -> list[str]:
        return ["start", *self.services]


class ComposeRestart(_Services):
    """`docker compose restart SERVICE...` (runbook 004 phase 4, after the migrations)."""

    type: Literal["compose.restart"] = "compose.restart"

    summary: ClassVar[str] = "Restart compose services"
    verb: ClassVar[str] = "Restart"

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

    summary: ClassVar[str] = "Bring compose services up"
    verb: ClassVar[str] = "Bring up"

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

    def args(self) -> list[str]:
        # never --follow: it would not return
        return ["logs", "--no-color", "--tail", str(self.tail), *self.services]
