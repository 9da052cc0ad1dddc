"""Commands as steps: `shell.run` (changes things), `shell.inspect` (only looks) and
`shell.migrate`, the dangerous schema rollback of runbooks 002 and 004 (Django or Alembic)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from playbooks.base import ChangeStep, Step, StepContext, StepFailed
from playbooks.steps.compose import check_service, compose_exec
from playbooks.steps.executor import (
    COMPOSE_ENV,
    HOST_ENV,
    CommandResult,
    HostCommands,
    check_argv,
    is_shell_string,
)

DJANGO_APP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
DJANGO_MIGRATION = re.compile(r"^(zero|\d{4}[A-Za-z0-9_]{0,100})$")
# a revision id, base, a relative step (-1) or id+N / branch@id; never an option-like word
ALEMBIC_REVISION = re.compile(
    r"^(base|-\d{1,3}|[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{1,64})?([+-]\d{1,3})?)$"
)


def _argv(v: list[str]) -> list[str]:
    argv = check_argv(v)
    if is_shell_string(argv):
        raise ValueError("write the command as an argv list; `sh -c` strings are refused")
    return argv


class _Command(HostCommands, Step):
    """One command as an argv list; whether it changes anything is the subclass's to say."""

    argv: list[str] = Field(min_length=1)
    cwd: str | None = None  # default: the target's app_dir
    env: dict[str, str] = {}
    expect_exit: list[int] = [0]  # exit codes that count as success

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        return _argv(v)

    @field_validator("expect_exit", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    def workdir(self, ctx: StepContext) -> str | None:
        return self.cwd or ctx.param("app_dir")

    def title(self) -> str:
        return self.name or f"Run {self.argv[0]}"

    async def plan(self, ctx: StepContext) -> list[str]:
        codes = "" if self.expect_exit == [0] else f"  (success: exit {self.expect_exit})"
        return [self.line(ctx, self.argv, self.env) + codes]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        argv = _argv(self.argv)  # again: `use:` may have replaced it after validation
        result = await self.exec(ctx, argv, env=self.env)
        if result.timed_out or result.exit_code not in self.expect_exit:
            raise self.failed(self.title(), result)
        return result.journal()


class ShellRun(_Command, ChangeStep):
    """One command as an argv list, e.g. [./scripts/smoke-test.sh] or [systemctl, restart, x]."""

    type: Literal["shell.run"] = "shell.run"
    timeout: float = Field(default=300.0, gt=0)

    summary: ClassVar[str] = "Run a command"


class ShellInspect(_Command):
    """A command that only looks (showmigrations, `git log`, a status script): it can run at
    any time, and a crash in it never needs a person's check."""

    type: Literal["shell.inspect"] = "shell.inspect"
    timeout: float = Field(default=60.0, gt=0)

    summary: ClassVar[str] = "Look at the system"


class ShellMigrate(HostCommands, ChangeStep):
    """Roll the database schema back with the framework's own command, app by app:
    `python manage.py migrate APP NNNN` (Django) or `alembic downgrade REV` (Alembic).

    The state before and after (`showmigrations` / `alembic current`) goes into the journal.
    Data dropped by a migration does not come back: playbooks with this step are dangerous.
    """

    type: Literal["shell.migrate"] = "shell.migrate"
    framework: Literal["django", "alembic"]
    migrations: dict[str, str] = {}  # django: app -> migration to go back to, run in this order
    revision: str | None = None  # alembic: the revision to downgrade to
    command: list[str] | None = None  # default: [python, manage.py] or [alembic]
    compose_service: str | None = None  # run inside this compose service (compose exec -T)
    cwd: str | None = None  # default: the target's app_dir
    env: dict[str, str] = {}
    timeout: float = Field(default=900.0, gt=0)

    dangerous: ClassVar[bool] = True
    needs_env: ClassVar[frozenset[str]] = HOST_ENV | COMPOSE_ENV  # compose_service runs in one
    summary: ClassVar[str] = "Roll database migrations back"

    @model_validator(mode="after")
    def _targets(self) -> ShellMigrate:
        self.check_targets()
        return self

    def check_targets(self) -> None:
        if self.framework == "django":
            if not self.migrations or self.revision is not None:
                raise ValueError("django needs `migrations` (app: migration) and no `revision`")
            for app, name in self.migrations.items():
                if not DJANGO_APP.match(app) or not DJANGO_MIGRATION.match(name):
                    raise ValueError(f"{app} {name}: not a Django app and migration (or zero)")
        else:
            if self.revision is None or self.migrations:
                raise ValueError("alembic needs `revision` and no `migrations`")
            if not ALEMBIC_REVISION.match(self.revision):
                raise ValueError(f"{self.revision!r} is not an Alembic revision")
        if self.compose_service is not None:
            check_service(self.compose_service)
        if self.command is not None:
            _argv(self.command)

    def workdir(self, ctx: StepContext) -> str | None:
        return self.cwd or ctx.param("app_dir")

    def _prefix(self, ctx: StepContext) -> list[str]:
        default = ["python", "manage.py"] if self.framework == "django" else ["alembic"]
        tool = list(self.command or default)
        if self.compose_service is None:
            return tool
        return compose_exec(ctx, self.compose_service, tool)

    def commands(self, ctx: StepContext) -> tuple[list[str], list[list[str]]]:
        """(the read-only state command, the changing commands in order)."""
        prefix = self._prefix(ctx)
        if self.framework == "django":
            state = [*prefix, "showmigrations", *self.migrations]
            changes = [[*prefix, "migrate", app, name] for app, name in self.migrations.items()]
            return state, changes
        return [*prefix, "current"], [[*prefix, "downgrade", str(self.revision)]]

    def title(self) -> str:
        if self.name:
            return self.name
        if self.framework == "django":
            return "Migrate back " + ", ".join(f"{a} to {n}" for a, n in self.migrations.items())
        return f"Alembic downgrade to {self.revision}"

    async def plan(self, ctx: StepContext) -> list[str]:
        state, changes = self.commands(ctx)
        look = self.line(ctx, state, self.env)
        return [f"(state) {look}", *(self.line(ctx, c, self.env) for c in changes), "(state) again"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        try:
            self.check_targets()  # `use:` may have set the revision after validation
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        state, changes = self.commands(ctx)
        # the state command first: if the tool cannot even start, nothing has changed yet
        before = await self._run(ctx, state, "reading the migration state", [])
        done: list[dict[str, Any]] = []
        for argv in changes:
            result = await self._run(ctx, argv, "the migration", done, before)
            done.append(_brief(result))
        after = await self._run(ctx, state, "reading the migration state afterwards", done, before)
        return {
            "before": before.journal()["stdout"],
            "ran": done,
            "after": after.journal()["stdout"],
        }

    async def _run(
        self,
        ctx: StepContext,
        argv: list[str],
        what: str,
        done: list[dict[str, Any]],
        before: CommandResult | None = None,
    ) -> CommandResult:
        result = await self.exec(ctx, argv, env=self.env)
        if result.ok:
            return result
        failure = self.failed(what, result)
        ran = f" after {len(done)} of {len(self.commands(ctx)[1])} commands" if done else ""
        output = {**failure.output, "ran": done}
        if before is not None:
            output["before"] = before.journal()["stdout"]
        raise StepFailed(f"{failure}{ran}", output)


def _brief(result: CommandResult) -> dict[str, Any]:
    return {"command": result.command, "exit_code": result.exit_code, "seconds": result.seconds}
