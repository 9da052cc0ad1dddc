"""File steps of runbook 004 (backup, restore, a small record, the deployment lock), made of
cp/cmp/test/tee through the executor so they work unchanged on another host later."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import Field

from playbooks import changes
from playbooks.base import ChangeStep, Step, StepContext, StepFailed
from playbooks.steps.executor import HostCommands

REPLACED_SUFFIX = ".before-rollback"


class _FileStep(HostCommands, Step):
    """Shared file operations; relative paths are taken from the target's app_dir."""

    cwd: str | None = None
    timeout: float = Field(default=30.0, gt=0)

    def workdir(self, ctx: StepContext) -> str | None:
        return self.cwd or ctx.param("app_dir")

    async def exists(self, ctx: StepContext, path: str) -> bool:
        result = await self.exec(ctx, ["test", "-e", path])
        if result.exit_code not in (0, 1):
            raise self.failed(f"cannot look at {path}", result)
        return result.exit_code == 0

    async def same(self, ctx: StepContext, a: str, b: str) -> bool | None:
        """True when both files hold the same bytes, False when they differ, None when one
        of them is missing."""
        result = await self.exec(ctx, ["cmp", "-s", "--", a, b])
        if result.exit_code in (0, 1):
            return result.exit_code == 0
        if not await self.exists(ctx, a) or not await self.exists(ctx, b):
            return None
        raise self.failed(f"cannot compare {a} with {b}", result)

    async def copy(self, ctx: StepContext, src: str, dst: str, keep_mode: bool = True) -> None:
        # -p keeps the mode of a backup; copying onto an existing file keeps that file's owner
        # and mode whatever the flag, which is what a restored /etc file needs
        flags = ["-p"] if keep_mode else []
        await self.must(ctx, f"copying {src} to {dst}", ["cp", *flags, "--", src, dst])


class _Backup(_FileStep, ChangeStep):
    overwrite: bool = False  # replace an existing, different backup
    missing_ok: bool = False  # nothing to back up is not an error (an optional .env)

    summary: ClassVar[str] = "Back a file up"

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        raise NotImplementedError

    def title(self) -> str:
        return self.name or self.summary

    async def plan(self, ctx: StepContext) -> list[str]:
        path, backup = self.paths(ctx)
        keep = "replace it" if self.overwrite else "refuse to replace it"
        return [
            self.line(ctx, ["cmp", "-s", "--", path, backup]) + f"  (differing backup: {keep})",
            self.line(ctx, ["cp", "-p", "--", path, backup]),
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        path, backup = self.paths(ctx)
        out = {"path": path, "backup": backup}
        if not await self.exists(ctx, path):
            if self.missing_ok:
                return {**out, "skipped": True, "summary": f"{path} does not exist: no backup"}
            raise StepFailed(f"nothing to back up: {path} does not exist", out)
        same = await self.same(ctx, path, backup)
        if same:
            return {**out, "unchanged": True, "summary": f"{backup} already holds {path}"}
        if same is False and not self.overwrite:
            raise StepFailed(
                f"{backup} exists and differs from {path}; it may be the only copy of the"
                " last good version, so it is left alone (move it away, or set overwrite: true)",
                out,
            )
        await self.copy(ctx, path, backup)
        if not await self.same(ctx, path, backup):
            raise StepFailed(f"{backup} does not match {path} after copying", out)
        return {**out, "unchanged": False, "summary": f"copied {path} to {backup}"}

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        path, backup = self.paths(ctx)
        if await self.same(ctx, path, backup):
            return {"path": path, "backup": backup, "unchanged": True, "resumed": True}
        return None


class _Restore(_FileStep, ChangeStep):
    keep_replaced: bool = True  # keep the replaced file as PATH.before-rollback for later study

    summary: ClassVar[str] = "Put a backup back"

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        raise NotImplementedError

    def title(self) -> str:
        return self.name or self.summary

    async def plan(self, ctx: StepContext) -> list[str]:
        path, backup = self.paths(ctx)
        lines = [self.line(ctx, ["cmp", "-s", "--", backup, path]) + "  (identical: nothing to do)"]
        if self.keep_replaced:
            lines.append(self.line(ctx, ["cp", "-p", "--", path, path + REPLACED_SUFFIX]))
        return [*lines, self.line(ctx, ["cp", "--", backup, path])]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        path, backup = self.paths(ctx)
        out: dict[str, Any] = {"path": path, "backup": backup}
        if not await self.exists(ctx, backup):
            raise StepFailed(f"no backup at {backup}: nothing to restore {path} from", out)
        if await self.same(ctx, backup, path):
            return {**out, "unchanged": True, "summary": f"{path} already equals {backup}"}
        if self.keep_replaced and await self.exists(ctx, path):
            out["replaced_copy"] = path + REPLACED_SUFFIX
            await self.copy(ctx, path, out["replaced_copy"])
        await self.copy(ctx, backup, path, keep_mode=False)
        if not await self.same(ctx, backup, path):
            raise StepFailed(f"{path} does not match {backup} after copying", out)
        return {**out, "unchanged": False, "summary": f"restored {path} from {backup}"}

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        path, backup = self.paths(ctx)
        if await self.same(ctx, backup, path):
            return {"path": path, "backup": backup, "unchanged": True, "resumed": True}
        return None

    # how the restored file is named in the change sentence
    what: ClassVar[str] = ""

    async def describe_change(self, ctx: StepContext) -> str | None:
        """`config restored from backup of 2026-11-20 14:02 (12 lines differ)`"""
        path, backup = self.paths(ctx)
        what = self.what or path
        stamp = await self.exec(ctx, ["stat", "-c", "%Y", "--", backup])
        if not stamp.ok:
            return f"{what}: no backup at {backup}, nothing to restore"
        when = changes.minute(float(stamp.stdout.strip()))
        diff = await self.exec(ctx, ["diff", "--", path, backup])
        if diff.exit_code == 0:
            return f"{what} already equals its backup of {when}: nothing to restore"
        if diff.exit_code != 1:  # the live file is missing or unreadable: no count to give
            return f"{what} restored from backup of {when}"
        lines = sum(1 for line in diff.stdout.splitlines() if line[:2] in ("< ", "> "))
        return f"{what} restored from backup of {when} ({lines} lines differ)"


class FileBackup(_Backup):
    """Copy a file to its backup (runbook 004: docker-compose.yml.backup, .env.backup)."""

    type: Literal["file.backup"] = "file.backup"
    path: str
    backup: str | None = None  # default: PATH.backup

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        return self.path, self.backup or f"{self.path}.backup"

    def title(self) -> str:
        return self.name or f"Back up {self.path}"


class FileRestore(_Restore):
    """Copy a backup over the file it was taken from."""

    type: Literal["file.restore"] = "file.restore"
    path: str
    backup: str | None = None  # default: PATH.backup

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        return self.path, self.backup or f"{self.path}.backup"

    def title(self) -> str:
        return self.name or f"Restore {self.path}"


class FileWrite(_FileStep, ChangeStep):
    """Write text to a file, e.g. the commit recorded before a deployment."""

    type: Literal["file.write"] = "file.write"
    path: str
    content: str | None = None  # often `use: {content: commit.commit}`

    summary: ClassVar[str] = "Write a file"

    def _data(self) -> bytes:
        if self.content is None:
            raise StepFailed(f"nothing to write to {self.path}: set content or `use` an output")
        text = str(self.content)
        return (text if text.endswith("\n") else text + "\n").encode()

    def title(self) -> str:
        return self.name or f"Write {self.path}"

    async def plan(self, ctx: StepContext) -> list[str]:
        return [self.line(ctx, ["tee", "--", self.path]) + f"  <<< {str(self.content)!r}"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        await self.must(ctx, f"writing {self.path}", ["tee", "--", self.path], input=self._data())
        return {"path": self.path, "content": str(self.content)}

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        # cmp reads "-" from stdin: compares the file with what would be written
        result = await self.exec(ctx, ["cmp", "-s", "-", self.path], input=self._data())
        if result.exit_code == 0:
            return {"path": self.path, "content": str(self.content), "resumed": True}
        return None


class LockTouch(_FileStep, ChangeStep):
    """Runbook 004 phase 1, `touch /tmp/deployment.lock`: deploy scripts that honour the lock
    stop deploying. An existing lock is kept as it is; nothing here removes it."""

    type: Literal["lock.touch"] = "lock.touch"
    path: str | None = None  # default: the target's lock_file, else /tmp/deployment.lock

    summary: ClassVar[str] = "Prevent new deployments (lock file)"

    def lock(self, ctx: StepContext) -> str:
        return self.path or ctx.param("lock_file") or "/tmp/deployment.lock"

    async def plan(self, ctx: StepContext) -> list[str]:
        path = self.lock(ctx)
        return [f"{self.line(ctx, ['test', '-e', path])}  (exists: keep it)", f"create {path}"]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        path = self.lock(ctx)
        if await self.exists(ctx, path):
            return {"path": path, "created": False, "summary": f"{path} was already there"}
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        note = f"rollback of {ctx.target} to {ctx.ref} by Rollbot, {when}\n".encode()
        await self.must(ctx, f"creating {path}", ["tee", "--", path], input=note)
        return {"path": path, "created": True, "summary": f"created {path}"}

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        path = self.lock(ctx)
        if await self.exists(ctx, path):
            return {"path": path, "created": False, "resumed": True}
        return None
