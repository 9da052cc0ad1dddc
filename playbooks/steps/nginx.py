"""nginx steps of runbook 004: back the configuration up, put the backup back, `nginx -t`,
and a reload that only ever happens after a passing test."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks.base import ChangeStep, Step, StepContext, StepFailed
from playbooks.steps.executor import CommandResult, HostCommands
from playbooks.steps.files import _Backup, _Restore

BACKUP_SUFFIX = ".pre-deploy.bak"
SEVERE = ("[emerg]", "[alert]", "[crit]")


def nginx_command(ctx: StepContext, own: list[str] | None) -> list[str]:
    """The nginx command line without an action: the target's nginx_command, e.g.
    [nginx, -p, /srv/edge/, -c, /srv/edge/nginx.conf], else plain [nginx]."""
    return list(own or ctx.param("nginx_command") or ["nginx"])


def conf_paths(ctx: StepContext, conf: str | None, backup: str | None) -> tuple[str, str]:
    path = conf or ctx.param("nginx_conf")
    if not path:
        raise StepFailed("no nginx configuration named: set nginx_conf on the target")
    return path, backup or ctx.param("nginx_backup") or path + BACKUP_SUFFIX


def rejection(result: CommandResult) -> str:
    """nginx's own reason for refusing a configuration: its [emerg] line(s)."""
    lines = (result.stderr + "\n" + result.stdout).splitlines()
    severe = [line.strip() for line in lines if any(tag in line for tag in SEVERE)]
    return " | ".join(severe) or result.reason()


class NginxBackup(_Backup):
    """`cp nginx.conf nginx.conf.pre-hybrid.bak` before a deployment; an existing, different
    backup is never overwritten unless asked."""

    type: Literal["nginx.backup"] = "nginx.backup"
    conf: str | None = None  # default: the target's nginx_conf
    backup: str | None = None  # default: the target's nginx_backup, else CONF.pre-deploy.bak

    summary: ClassVar[str] = "Back up the nginx configuration"

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        return conf_paths(ctx, self.conf, self.backup)


class NginxRestore(_Restore):
    """`cp nginx.conf.pre-hybrid.bak nginx.conf`; nothing to do when they are identical."""

    type: Literal["nginx.restore"] = "nginx.restore"
    conf: str | None = None
    backup: str | None = None

    summary: ClassVar[str] = "Restore the previous nginx configuration"
    what: ClassVar[str] = "nginx config"

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        return conf_paths(ctx, self.conf, self.backup)


class _NginxStep(HostCommands, Step):
    command: list[str] | None = None  # default: the target's nginx_command, else [nginx]
    timeout: float = Field(default=30.0, gt=0)

    def argv(self, ctx: StepContext, *action: str) -> list[str]:
        return [*nginx_command(ctx, self.command), *action]

    async def test(self, ctx: StepContext) -> CommandResult:
        return await self.exec(ctx, self.argv(ctx, "-t"))


class NginxTest(_NginxStep):
    """`nginx -t`: fails with nginx's [emerg] line when the configuration is refused."""

    type: Literal["nginx.test"] = "nginx.test"

    summary: ClassVar[str] = "Test the nginx configuration"

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, self.argv(ctx, "-t"))]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        result = await self.test(ctx)
        if not result.ok:
            raise StepFailed(
                f"nginx -t refused the configuration: {rejection(result)}", result.journal()
            )
        return {"test": "passed", "output": result.stderr.strip()}


class NginxReload(_NginxStep, ChangeStep):
    """`nginx -t && nginx -s reload`. A refused configuration stops the step before any
    signal is sent, so the running nginx keeps its current configuration."""

    type: Literal["nginx.reload"] = "nginx.reload"

    # a second reload of the same configuration changes nothing: after a crash, just reload
    repeatable: ClassVar[bool] = True
    summary: ClassVar[str] = "Test and reload nginx"

    async def plan(self, ctx: StepContext) -> list[str]:
        return [
            self.line(ctx, self.argv(ctx, "-t")),
            self.line(ctx, self.argv(ctx, "-s", "reload")) + "  (only if the test passed)",
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        tested = await self.test(ctx)
        if not tested.ok:
            raise StepFailed(
                f"nginx -t refused the configuration, so nginx was NOT reloaded and keeps"
                f" serving its current configuration: {rejection(tested)}",
                {**tested.journal(), "reloaded": False},
            )
        reload = await self.exec(ctx, self.argv(ctx, "-s", "reload"))
        if not reload.ok:
            raise StepFailed(
                f"nginx -s reload failed: {rejection(reload)}",
                {**reload.journal(), "test": "passed"},
            )
        return {"test": "passed", "reloaded": True, "command": reload.command}
