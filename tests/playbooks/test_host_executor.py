"""The local executor and the command and file steps built on it, with real processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from playbooks.base import StepContext, StepFailed
from playbooks.steps import executor as ex
from playbooks.steps.executor import EXECUTORS, CommandResult, LocalExecutor, clip
from playbooks.steps.files import FileBackup, FileRestore, FileWrite, LockTouch
from playbooks.steps.shell import ShellInspect, ShellMigrate, ShellRun

PY = sys.executable


def context(params: dict[str, Any] | None = None, ref: str = "previous") -> StepContext:
    return StepContext(target="web", params=params or {}, ref=ref, outputs={"request": {}})


async def test_runs_an_argv_list_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = await LocalExecutor().run(["echo", f"a; touch {marker}", "$HOME"], cwd=str(tmp_path))
    assert result.ok and result.stdout == f"a; touch {marker} $HOME\n"
    assert not marker.exists()
    assert result.command == f"echo 'a; touch {marker}' '$HOME'"


async def test_exit_code_stderr_env_and_input(tmp_path: Path) -> None:
    code = "import os,sys; d=sys.stdin.read(); print(os.environ['X'], d); sys.exit(3)"
    result = await LocalExecutor().run(
        [PY, "-c", code], env={"X": "one"}, input=b"two", cwd=str(tmp_path)
    )
    assert (result.exit_code, result.stdout.strip(), result.ok) == (3, "one two", False)
    failing = await LocalExecutor().run([PY, "-c", "import sys; sys.exit('broken thing')"])
    assert failing.exit_code == 1 and failing.reason() == "broken thing"


async def test_missing_program_and_directory_are_results_not_crashes(tmp_path: Path) -> None:
    missing = await LocalExecutor().run(["no-such-program-here"])
    assert missing.exit_code == 127 and "command not found" in missing.stderr
    nowhere = await LocalExecutor().run(["true"], cwd=str(tmp_path / "gone"))
    assert nowhere.exit_code == 127 and "working directory" in nowhere.stderr


async def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # the command starts a grandchild that would outlive a plain kill of the parent
    code = (
        "import subprocess,sys,time;"
        "p=subprocess.Popen(['sleep','30']);"
        f"open({str(pidfile)!r},'w').write(str(p.pid));"
        "print('started',flush=True); time.sleep(30)"
    )
    started = time.monotonic()
    result = await LocalExecutor().run([PY, "-c", code], timeout=1.0)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 6
    assert "started" in result.stdout and "[stopped after 1s]" in result.stderr
    child = int(pidfile.read_text())
    await asyncio.sleep(0.2)
    assert not _alive(child)


async def test_cancelling_a_run_stops_the_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = f"import os,time; open({str(pidfile)!r},'w').write(str(os.getpid())); time.sleep(30)"
    running = asyncio.create_task(LocalExecutor().run([PY, "-c", code], timeout=60))
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        await asyncio.sleep(0.02)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.sleep(0.1)
    assert not _alive(int(pidfile.read_text()))


async def test_a_background_child_holding_the_pipe_does_not_hang_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ex, "KILL_GRACE", 0.3)
    code = "import subprocess; subprocess.Popen(['sleep','5'], start_new_session=True); print('ok')"
    started = time.monotonic()
    result = await LocalExecutor().run([PY, "-c", code], timeout=10)
    assert result.ok and result.stdout.startswith("ok")
    assert time.monotonic() - started < 3


async def test_huge_output_keeps_head_and_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "CAPTURE_HEAD", 1000)
    monkeypatch.setattr(ex, "CAPTURE_TAIL", 2000)
    code = "print('FIRST'); print('x' * 3_000_000); print('LAST')"
    result = await LocalExecutor().run([PY, "-c", code])
    assert result.stdout.startswith("FIRST") and result.stdout.rstrip().endswith("LAST")
    assert "bytes left out" in result.stdout and len(result.stdout) < 3200
    shown = result.journal()["stdout"]
    assert len(shown) < ex.JOURNAL_HEAD + ex.JOURNAL_TAIL + 100 and shown.startswith("FIRST")
    assert clip("short") == "short"


async def test_argv_must_be_a_list_of_strings() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        await LocalExecutor().run([])
    with pytest.raises(ValueError, match="NUL"):
        await LocalExecutor().run(["echo", "a\0b"])


# ---------------------------------------------------------------------- shell steps
async def test_shell_run_plan_output_and_expected_exit(tmp_path: Path) -> None:
    step = ShellRun(argv=[PY, "-c", "print('smoke ok')"], env={"API_TOKEN": "s3cret", "MODE": "x"})
    ctx = context({"app_dir": str(tmp_path)})
    (line,) = await step.plan(ctx)
    assert line.startswith(f"[in {tmp_path}] API_TOKEN=[redacted] MODE=x {PY} -c")
    assert "s3cret" not in line
    out = await step.run(ctx)
    assert out["exit_code"] == 0 and out["stdout"] == "smoke ok\n"
    grep_none = ShellRun(argv=[PY, "-c", "raise SystemExit(1)"], expect_exit=[0, 1])
    assert (await grep_none.run(ctx))["exit_code"] == 1
    with pytest.raises(StepFailed, match=r"exited 2: boom"):
        await ShellRun(argv=[PY, "-c", "import sys; sys.stderr.write('boom'); sys.exit(2)"]).run(
            ctx
        )


async def test_shell_run_timeout_fails_the_step() -> None:
    step = ShellRun(argv=["sleep", "5"], timeout=0.3)
    with pytest.raises(StepFailed, match=r"timed out after 0.3s") as caught:
        await step.run(context())
    assert caught.value.output["timed_out"] is True


def test_shell_strings_are_refused() -> None:
    for argv in (["sh", "-c", "rm -rf /"], ["/bin/bash", "-ec", "x"], ["busybox", "sh", "-c", "x"]):
        with pytest.raises(ValidationError, match="argv list"):
            ShellRun(argv=argv)
    assert ShellRun(argv=["bash", "./scripts/smoke-test.sh", "-c"]).argv[0] == "bash"
    assert ShellRun.mutating and not ShellInspect.mutating and not ShellRun.dangerous


async def test_migrate_django_in_order_with_state_before_and_after(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    manage = tmp_path / "manage.py"
    manage.write_text(
        "import sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "print('[X] 0010_initial' if sys.argv[1] == 'showmigrations' else 'Unapplying...')\n"
    )
    step = ShellMigrate(
        framework="django",
        migrations={"ai_model": "0010", "chat_session": "0010_add_index"},
        command=[PY, "manage.py"],
    )
    assert ShellMigrate.dangerous and ShellMigrate.mutating and not ShellMigrate.can_check_done
    ctx = context({"app_dir": str(tmp_path)})
    plan = await step.plan(ctx)
    assert plan[1].endswith(f"{PY} manage.py migrate ai_model 0010")
    assert plan[2].endswith("migrate chat_session 0010_add_index")
    out = await step.run(ctx)
    assert log.read_text().splitlines() == [
        "showmigrations ai_model chat_session",
        "migrate ai_model 0010",
        "migrate chat_session 0010_add_index",
        "showmigrations ai_model chat_session",
    ]
    assert [r["exit_code"] for r in out["ran"]] == [0, 0] and "0010_initial" in out["before"]


async def test_migrate_stops_at_the_first_failure(tmp_path: Path) -> None:
    manage = tmp_path / "manage.py"
    manage.write_text(
        "import sys\nif sys.argv[1:3] == ['migrate', 'b']: sys.exit('CommandError: no b 0002')\n"
    )
    targets = {"a": "0001", "b": "0002", "c": "0003"}
    step = ShellMigrate(framework="django", migrations=targets, command=[PY, str(manage)])
    with pytest.raises(StepFailed, match=r"after 1 of 3 commands") as caught:
        await step.run(context())
    assert [r["command"].split()[-2] for r in caught.value.output["ran"]] == ["a"]


def test_migrate_names_are_checked() -> None:
    assert ShellMigrate(framework="alembic", revision="-1").revision == "-1"
    assert ShellMigrate(framework="alembic", revision="ae1027a6acf").revision
    for bad in (
        {"framework": "django", "migrations": {"app": "--fake"}},
        {"framework": "django", "migrations": {"-x": "0001"}},
        {"framework": "django", "migrations": {}},
        {"framework": "alembic", "revision": "--sql"},
        {"framework": "alembic"},
        {"framework": "django", "migrations": {"a": "0001"}, "compose_service": "-T"},
    ):
        with pytest.raises(ValidationError):
            ShellMigrate(**bad)


async def test_migrate_alembic_revision_from_use_is_checked_again(tmp_path: Path) -> None:
    step = ShellMigrate(framework="alembic", revision="base").model_copy(
        update={"revision": "--sql"}
    )
    with pytest.raises(StepFailed, match="not an Alembic revision"):
        await step.run(context())


# ---------------------------------------------------------------------- file steps
async def test_backup_copies_then_refuses_to_clobber_a_different_backup(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("good\n")
    step = FileBackup(path=str(conf), backup=str(tmp_path / "nginx.conf.bak"))
    ctx = context()
    assert (await step.run(ctx))["unchanged"] is False
    assert (tmp_path / "nginx.conf.bak").read_text() == "good\n"
    assert (await step.run(ctx))["unchanged"] is True
    assert (await step.already_done(ctx) or {}).get("resumed")
    conf.write_text("bad\n")
    with pytest.raises(StepFailed, match="only copy of the last good version"):
        await step.run(ctx)
    assert (tmp_path / "nginx.conf.bak").read_text() == "good\n"
    await step.model_copy(update={"overwrite": True}).run(ctx)
    assert (tmp_path / "nginx.conf.bak").read_text() == "bad\n"


async def test_backup_of_a_missing_file(tmp_path: Path) -> None:
    ctx = context({"app_dir": str(tmp_path)})
    with pytest.raises(StepFailed, match="nothing to back up"):
        await FileBackup(path=".env").run(ctx)
    out = await FileBackup(path=".env", missing_ok=True).run(ctx)
    assert out["skipped"] is True


async def test_restore_keeps_the_replaced_file_and_mode(tmp_path: Path) -> None:
    conf, backup = tmp_path / "app.conf", tmp_path / "app.conf.backup"
    conf.write_text("new\n")
    conf.chmod(0o640)
    backup.write_text("old\n")
    backup.chmod(0o600)
    ctx = context({"app_dir": str(tmp_path)})
    out = await FileRestore(path="app.conf").run(ctx)
    assert conf.read_text() == "old\n" and out["unchanged"] is False
    assert (tmp_path / "app.conf.before-rollback").read_text() == "new\n"
    assert conf.stat().st_mode & 0o777 == 0o640  # the live file keeps its own mode
    assert (await FileRestore(path="app.conf").run(ctx))["unchanged"] is True
    with pytest.raises(StepFailed, match="no backup at"):
        await FileRestore(path="other.conf").run(ctx)


async def test_write_and_lock(tmp_path: Path) -> None:
    ctx = context({"lock_file": str(tmp_path / "deployment.lock")}, ref="abc123")
    record = FileWrite(path=str(tmp_path / "commit.txt"), content="abc123")
    assert await record.already_done(ctx) is None
    await record.run(ctx)
    assert (tmp_path / "commit.txt").read_text() == "abc123\n"
    assert (await record.already_done(ctx) or {}).get("resumed")
    lock = LockTouch()
    assert (await lock.run(ctx))["created"] is True
    assert "rollback of web to abc123" in (tmp_path / "deployment.lock").read_text()
    assert (await lock.run(ctx))["created"] is False
    with pytest.raises(StepFailed, match="nothing to write"):
        await FileWrite(path=str(tmp_path / "x")).run(ctx)


async def test_a_registered_executor_is_used(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    class Recording:
        async def run(self, argv: Any, **_: Any) -> CommandResult:
            seen.append(list(argv))
            return CommandResult(tuple(argv), 0, "", "", 0.0)

    EXECUTORS["recording"] = lambda ctx: Recording()
    try:
        await ShellRun(argv=["reboot"], executor="recording").run(context())
    finally:
        del EXECUTORS["recording"]
    assert seen == [["reboot"]]
    with pytest.raises(StepFailed, match="unknown executor 'ssh'"):
        await ShellRun(argv=["true"], executor="ssh").run(context())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
