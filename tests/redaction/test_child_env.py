"""Every host step type, and diagnose's host source, start their commands with an allow-listed
environment: the programs they run are replaced by a recorder of `env`, and the bot's own
Slack, GitHub, AWS and Redis secrets must not be in what any child saw."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import playbooks.steps  # noqa: F401  (registers every step type)
from bot.diagnose.sources import host
from playbooks.base import STEP_TYPES, StepContext
from playbooks.steps.executor import HostCommands

BOT_SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-child-env-bot-token-1",
    "SLACK_SIGNING_SECRET": "child-env-signing-secret-2",
    "SLACK_APP_TOKEN": "xapp-child-env-app-token-3",
    "GITHUB_TOKEN": "ghp_childEnvGitHubToken4abcdefghij",
    "AWS_ACCESS_KEY_ID": "AKIACHILDENV0000005",
    "AWS_SECRET_ACCESS_KEY": "child-env-aws-secret-key-6",
    "AWS_SESSION_TOKEN": "child-env-aws-session-7",
    "REDIS_URL": "redis://:child-env-redis-pw-8@127.0.0.1:6379/0",
    "UNRELATED_APP_SETTING": "child-env-not-declared-9",
}
DECLARED = {"PGPASSWORD": "child-env-pg-password-10", "LC_TIME": "C.UTF-8"}
# Every program a host step may start.
PROGRAMS = (
    "git nginx docker podman pg_dump pg_restore psql cp tee test cmp cat env python python3 "
    "alembic mkdir mv rm touch ls"
).split()

# Enough of each host step type to start its first command.
STEP_ARGS: dict[str, dict[str, Any]] = {
    "compose.build": {},
    "compose.logs": {"services": ["web"]},
    "compose.ps": {},
    "compose.restart": {"services": ["web"]},
    "compose.scale": {"service": "web", "replicas": 2},
    "compose.start": {"services": ["web"]},
    "compose.stop": {"services": ["web"]},
    "compose.up": {},
    "file.backup": {"path": "/tmp/child-env/app.conf"},
    "file.restore": {"path": "/tmp/child-env/app.conf"},
    "file.write": {"path": "/tmp/child-env/app.conf", "content": "x"},
    "git.checkout": {"ref": "v1"},
    "git.record_current": {},
    "git.resolve_ref": {},
    "lock.touch": {},
    "nginx.backup": {},
    "nginx.reload": {},
    "nginx.restore": {},
    "nginx.test": {},
    "postgres.check_archive": {"archive": "/tmp/child-env/db.dump"},
    "postgres.dump": {"archive": "/tmp/child-env/db.dump", "database": "app"},
    "postgres.restore": {"archive": "/tmp/child-env/db.dump", "database": "app"},
    "shell.inspect": {"argv": ["env"]},
    "shell.migrate": {"framework": "django", "migrations": {"app": "0001_initial"}},
    "shell.run": {"argv": ["env"]},
}
HOST_STEP_TYPES = sorted(n for n, c in STEP_TYPES.items() if issubclass(c, HostCommands))


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bin directory first on PATH whose programs write their environment and exit 0; the
    bot's secrets set in this process's environment."""
    bin_dir, seen = tmp_path / "bin", tmp_path / "seen"
    bin_dir.mkdir()
    seen.mkdir()
    script = f'#!/bin/sh\n/usr/bin/env > "{seen}/$$.env"\nexit 0\n'
    for program in PROGRAMS:
        path = bin_dir / program
        path.write_text(script)
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name, value in {**BOT_SECRETS, **DECLARED}.items():
        monkeypatch.setenv(name, value)
    return seen


def context(tmp_path: Path) -> StepContext:
    params = {
        "app_dir": str(tmp_path),
        "compose_project": "proj",
        "nginx_conf": str(tmp_path / "nginx.conf"),
        "lock_file": str(tmp_path / "deploy.lock"),
        "recorded_commit_file": str(tmp_path / "recorded"),
    }
    return StepContext(target="child-env", params=params)


def environments(seen: Path) -> list[dict[str, str]]:
    out = []
    for path in sorted(seen.glob("*.env")):
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        out.append(dict(pairs))
        path.unlink()
    return out


def test_every_host_step_type_is_covered() -> None:
    assert HOST_STEP_TYPES == sorted(STEP_ARGS)


@pytest.mark.parametrize("step_type", sorted(STEP_ARGS))
async def test_a_child_of_each_host_step_sees_none_of_the_bots_secrets(
    step_type: str, recorder: Path, tmp_path: Path
) -> None:
    cls = STEP_TYPES[step_type]
    step = cls(type=step_type, **STEP_ARGS[step_type])
    try:
        await step.run(context(tmp_path))
    except Exception:
        pass  # the recorder prints nothing a step can parse; only what it saw matters here
    seen = environments(recorder)
    assert seen, f"{step_type} started no command"
    for env in seen:
        leaked = sorted(set(env) & set(BOT_SECRETS))
        assert not leaked, f"{step_type} passed {leaked} to its child"
        assert not [v for v in BOT_SECRETS.values() if v in repr(env)]
        assert env.get("PATH", "").startswith(str(tmp_path)), "PATH must reach the child"
        assert env.get("LC_TIME") == "C.UTF-8", "the locale must reach the child"
        # a variable reaches a child only when its step declares it
        assert ("PGPASSWORD" in env) == ("PGPASSWORD" in cls.needs_env)
        assert set(env) <= cls.needs_env | {"LC_TIME", "GIT_TERMINAL_PROMPT", "PWD", "SHLVL", "_"}


async def test_diagnose_host_commands_see_none_of_the_bots_secrets(
    recorder: Path, tmp_path: Path
) -> None:
    ctx = SimpleNamespace(params=context(tmp_path).params, timeout=10.0)
    await host.containers(ctx)
    await host.nginx_test(ctx)
    seen = environments(recorder)
    assert len(seen) == 2
    for env in seen:
        assert not sorted(set(env) & set(BOT_SECRETS) | ({"PGPASSWORD"} & set(env)))
