"""The README's quick start, run as written on a fresh copy of the repository (nothing beside
it): the bot installs itself into .venv, starts on the embedded SQLite store and answers
/healthz; run again, it reuses the install and keeps the operator's rollbot.yml."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.testbed.ports import free_port
from tests.testbed.rollbot_process import AWS_ISOLATION, NOT_INHERITED, ROOT
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET

FIRST_START = 480.0  # creating the virtualenv and installing every dependency (local wheels)
AGAIN_START = 30.0


def quick_start_commands() -> list[str]:
    """The ```bash blocks of the README's Quick start section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def fresh_copy(dest: Path) -> Path:
    """The repository's files as a clone would have them (tracked and new, never ignored ones
    such as .venv or rollbot.yml), in a folder with nothing beside it."""
    dest.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return dest


def start(command: str, clone: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["bash", "-c", command],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float, log: Path) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return json.loads(resp.read())
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"no 200 from /healthz within {timeout:g}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> int:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=10)


def test_readme_has_the_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    assert commands[0].startswith("SLACK_BOT_TOKEN=xoxb-your-token ")
    assert "bash scripts/start --port 3000" in commands[0]
    assert commands[1] == "bash .ci/run"
    assert (ROOT / ".ci" / "run").is_file()


@pytest.mark.timeout(FIRST_START + AGAIN_START + 120)
def test_command_one_on_a_fresh_copy(fake_slack: FakeSlackApi, tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "rollbot")
    assert [p.name for p in clone.parent.iterdir()] == ["rollbot"]  # nothing beside the copy
    port = free_port()
    # the reader's own values in place of the placeholders, and a free port for 3000
    command = (
        quick_start_commands()[0]
        .replace("xoxb-your-token", TOKEN)
        .replace("your-signing-secret", SIGNING_SECRET)
        .replace("--port 3000", f"--port {port}")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env.update(AWS_ISOLATION)
    env["SLACK_API_URL"] = fake_slack.url
    env.pop("VIRTUAL_ENV", None)
    log = tmp_path / "quick-start.log"

    first = start(command, clone, env, log)
    try:
        health = wait_healthy(first, port, FIRST_START, log)
    finally:
        code = stop(first)
    assert health["store"] == {"backend": "sqlite", "ok": True}
    assert code == 0, log.read_text()[-3000:]
    assert (clone / ".venv" / "bin" / "rollbot").exists()
    assert (clone / "rollbot.db").exists()
    assert (clone / "rollbot.yml").read_text() == (clone / "rollbot.example.yml").read_text()

    # again: the same command, no reinstall, the operator's catalog left as it is
    edited = (clone / "rollbot.yml").read_text() + "\n# edited by the operator\n"
    (clone / "rollbot.yml").write_text(edited)
    again = start(command, clone, env, log)
    try:
        wait_healthy(again, port, AGAIN_START, log)
    finally:
        assert stop(again) == 0
    assert (clone / "rollbot.yml").read_text() == edited
    assert "Traceback" not in log.read_text()
