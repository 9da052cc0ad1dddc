"""PostgreSQL dump and restore of runbook 004 (the pre-deployment snapshot and the phase-5
restore), with the PostgreSQL client tools run on the host or inside a compose service."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from playbooks.base import ChangeStep, Step, StepContext
from playbooks.steps.compose import check_service, compose_exec
from playbooks.steps.executor import COMPOSE_ENV, HOST_ENV, HostCommands

# Database and role names as written on a command line: never a leading "-" (an option).
PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$")
# An archive path: absolute, no "..", nothing an option parser would take for a flag.
ARCHIVE_PATH = re.compile(r"^/(?!.*\.\.)[A-Za-z0-9._/@+-]{1,400}$")


class _ArchiveStep(HostCommands, Step):
    """PostgreSQL client tools on one dump file, inside `compose_service` when it is set
    (`docker compose exec -T SERVICE ...`, as the runbook does), else on this host."""

    archive: str  # the dump file, as the tool sees it (a path inside the container)
    compose_service: str | None = None
    directory: str | None = None  # where compose runs; default: the target's app_dir
    # for the tools on this host, e.g. PGPASSWORD (plans hide secret-looking values); inside a
    # container the container's own environment applies
    env: dict[str, str] = {}
    timeout: float = Field(default=1800.0, gt=0)

    # libpq's own connection variables, and compose's when the tools run in a container
    needs_env: ClassVar[frozenset[str]] = (
        HOST_ENV | COMPOSE_ENV | {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE"}
    )

    @field_validator("archive")
    @classmethod
    def _archive(cls, v: str) -> str:
        if not ARCHIVE_PATH.match(v):
            raise ValueError(f"{v!r} is not an absolute file path")
        return v

    @field_validator("compose_service")
    @classmethod
    def _service(cls, v: str | None) -> str | None:
        return None if v is None else check_service(v)

    def workdir(self, ctx: StepContext) -> str | None:
        return self.directory or ctx.param("app_dir")

    def tool(self, ctx: StepContext, *argv: str) -> list[str]:
        if self.compose_service is None:
            return list(argv)
        return compose_exec(ctx, self.compose_service, argv)

    async def must_run(self, ctx: StepContext, what: str, argv: list[str]) -> dict[str, Any]:
        result = await self.exec(ctx, argv, env=self.env)
        if not result.ok:
            raise self.failed(what, result)
        return result.journal()

    def list_archive(self, ctx: StepContext) -> list[str]:
        return self.tool(ctx, "pg_restore", "--list", self.archive)

    async def read_archive(self, ctx: StepContext, what: str) -> dict[str, Any]:
        """`pg_restore --list`: proves the archive exists and reads; counts its entries."""
        out = await self.must_run(ctx, what, self.list_archive(ctx))
        entries = [line for line in out["stdout"].splitlines() if re.match(r"^\d+;", line)]
        return {**out, "archive": self.archive, "entries": len(entries)}


class _DatabaseStep(_ArchiveStep):
    """An archive step that also connects to a database."""

    database: str
    user: str | None = None
    host: str | None = None  # default: the tool's own (the local socket in the container)
    port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("database", "user")
    @classmethod
    def _pg_name(cls, v: str | None) -> str | None:
        if v is not None and not PG_NAME.match(v):
            raise ValueError(f"{v!r} is not a PostgreSQL database or role name")
        return v

    def connection(self) -> list[str]:
        argv = [f"--dbname={self.database}"]
        argv += [f"--username={self.user}"] if self.user else []
        argv += [f"--host={self.host}"] if self.host else []
        argv += [f"--port={self.port}"] if self.port else []
        return argv


class PostgresCheckArchive(_ArchiveStep):
    """Read a dump's table of contents before anything is stopped or restored: a missing or
    unreadable archive ends the run while the application still serves."""

    type: Literal["postgres.check_archive"] = "postgres.check_archive"
    timeout: float = Field(default=120.0, gt=0)

    summary: ClassVar[str] = "Check the database dump"

    def title(self) -> str:
        return self.name or f"Check the dump {self.archive}"

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, self.list_archive(ctx))]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        return await self.read_archive(ctx, "the database dump cannot be read")


class PostgresDump(_DatabaseStep, ChangeStep):
    """`pg_dump --format=custom --file=ARCHIVE`: a snapshot pg_restore can put back whole
    (runbook 004's backup step 5); the archive is listed afterwards to prove it reads."""

    type: Literal["postgres.dump"] = "postgres.dump"

    # a change because it writes the archive; a dump that died half-way is simply taken
    # again: it overwrites the same file
    repeatable: ClassVar[bool] = True
    summary: ClassVar[str] = "Dump the database"

    def title(self) -> str:
        return self.name or f"Dump database {self.database} to {self.archive}"

    def dump(self, ctx: StepContext) -> list[str]:
        return self.tool(
            ctx, "pg_dump", *self.connection(), "--format=custom", f"--file={self.archive}"
        )

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, self.dump(ctx), self.env), self.line(ctx, self.list_archive(ctx))]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        out = await self.must_run(ctx, "pg_dump", self.dump(ctx))
        listing = await self.read_archive(ctx, "reading the new archive back")
        return {**out, "archive": self.archive, "entries": listing["entries"]}


class PostgresRestore(_DatabaseStep, ChangeStep):
    """`pg_restore --clean --if-exists --single-transaction`: the database goes back to the
    archive in one transaction, so a failure or a crash half-way leaves it as it was."""

    type: Literal["postgres.restore"] = "postgres.restore"

    dangerous: ClassVar[bool] = True  # whatever was written since the dump is gone
    # one transaction: after a crash either nothing changed or the restore is complete, and
    # restoring the same archive again gives the same database
    repeatable: ClassVar[bool] = True
    summary: ClassVar[str] = "Restore the database from its dump"

    def title(self) -> str:
        return self.name or f"Restore database {self.database} from {self.archive}"

    def restore(self, ctx: StepContext) -> list[str]:
        return self.tool(
            ctx,
            "pg_restore",
            *self.connection(),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            self.archive,
        )

    async def plan(self, ctx: StepContext) -> list[str]:
        return [
            f"(check the archive) {self.line(ctx, self.list_archive(ctx))}",
            self.line(ctx, self.restore(ctx), self.env),
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        # again here, for a playbook without a check step and for a resumed run
        await self.read_archive(ctx, "the database dump cannot be read; the database is untouched")
        out = await self.must_run(ctx, "pg_restore failed and was rolled back", self.restore(ctx))
        return {**out, "archive": self.archive}
