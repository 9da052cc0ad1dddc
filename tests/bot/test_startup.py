"""A start that cannot work stops with one line saying what and what to do, exit 2, no
traceback; `rollbot check` reports the store, and with --online Slack, AWS and GitHub."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.testbed.aws import CREDENTIALS, Aws
from tests.testbed.github_api import TOKEN as GITHUB_TOKEN
from tests.testbed.github_api import FakeGitHub
from tests.testbed.ports import free_port
from tests.testbed.rollbot_process import ROOT, RollbotProcess, base_env
from tests.testbed.slack_api import FakeSlackApi

EXAMPLE = ROOT / "rollbot.example.yml"


def rollbot(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def env(fake_slack: FakeSlackApi, tmp_path: Path) -> dict[str, str]:
    return base_env(fake_slack, EXAMPLE, tmp_path / "rollbot.db")


def serve(env: dict[str, str], port: int | None = None) -> subprocess.CompletedProcess:
    port = port or free_port()
    return rollbot(env, "serve", "--host", "127.0.0.1", "--port", str(port))


def assert_one_line_refusal(result: subprocess.CompletedProcess, *fragments: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_port_in_use(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(env, port)
    assert_one_line_refusal(result, f"port {port}", "already in use", "--port")


def test_redis_unreachable(env: dict[str, str], redis_url: str) -> None:
    # a port that nothing listens on, beside the real server that the check must not confuse
    dead = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    line = assert_one_line_refusal(serve({**env, "REDIS_URL": dead}), "Redis", "REDIS_URL")
    assert "secret-password" not in line


def test_store_file_not_writable(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    result = serve({**env, "ROLLBOT_DB": str(blocker / "rollbot.db")})
    assert_one_line_refusal(result, "store file", "ROLLBOT_DB")


def test_store_path_is_a_folder(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "rollbot.db"
    folder.mkdir()
    assert_one_line_refusal(serve({**env, "ROLLBOT_DB": str(folder)}), "not a file")


def test_slack_token_rejected(env: dict[str, str], fake_slack: FakeSlackApi) -> None:
    result = serve({**env, "SLACK_BOT_TOKEN": "xoxb-your-token"})
    assert_one_line_refusal(result, "Slack rejected SLACK_BOT_TOKEN", "invalid_auth")
    assert fake_slack.calls_to("auth.test", ok_only=False), "the token was never checked"


def test_slack_unreachable(env: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/"
    assert_one_line_refusal(serve({**env, "SLACK_API_URL": dead}), "cannot reach Slack", dead)


def test_a_good_start_warns_of_nothing(env: dict[str, str], tmp_path: Path) -> None:
    bot = RollbotProcess(env, tmp_path, "quiet")
    try:
        bot.start()
    finally:
        bot.stop()
    log = bot.log_text()
    assert "WARNING" not in log and "Traceback" not in log, log
    assert "will be unused" not in log


def test_serve_help_documents_options_and_defaults(env: dict[str, str]) -> None:
    result = rollbot(env, "serve", "--help")
    assert result.returncode == 0
    assert "--port PORT" in result.stdout and "ROLLBOT_PORT, else 3000" in result.stdout
    assert "--host HOST" in result.stdout and "(default: 0.0.0.0" in result.stdout
    assert "ROLLBOT_DB" in result.stdout and "REDIS_URL" in result.stdout


def test_check_fails_with_unreachable_redis(env: dict[str, str]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = rollbot({**env, "REDIS_URL": dead}, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "redis: FAILED: cannot reach Redis" in result.stdout


def test_check_reports_reachable_redis(env: dict[str, str], redis_url: str) -> None:
    result = rollbot({**env, "REDIS_URL": redis_url}, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "redis: ok (127.0.0.1:" in result.stdout


def test_check_online_reports_every_counterpart(
    env: dict[str, str], redis_url: str, aws: Aws, github_api: FakeGitHub, tmp_path: Path
) -> None:
    # the example's compose hosts do not exist here (their check has tests of its own)
    example = yaml.safe_load(EXAMPLE.read_text())
    example["targets"] = {
        name: t for name, t in example["targets"].items() if not t["playbook"].startswith("host-")
    }
    catalog = tmp_path / "rollbot.yml"
    catalog.write_text(yaml.safe_dump(example))
    online = {
        **env,
        "ROLLBOT_CONFIG": str(catalog),
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "REDIS_URL": redis_url,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "GITHUB_API_URL": github_api.url,
    }
    result = rollbot(online, "check", "--online")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "redis: ok" in out
    assert "slack: ok (bot rollbot in workspace Acme)" in out
    assert "aws: ok (arn:aws:" in out
    assert f"github: ok ({github_api.url})" in out


def test_check_online_names_each_failure(env: dict[str, str], github_api: FakeGitHub) -> None:
    broken = {
        **env,
        "SLACK_BOT_TOKEN": "xoxb-revoked",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "GITHUB_TOKEN": "ghp_wrong",
        "GITHUB_API_URL": github_api.url,
    }
    result = rollbot(broken, "check", "--online")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "slack: FAILED: Slack rejected SLACK_BOT_TOKEN (auth.test: invalid_auth)" in out
    assert "aws: FAILED: " in out
    assert "github: FAILED: GitHub rejected GITHUB_TOKEN (401)" in out
    assert "store: ok" in out
    assert "Traceback" not in out + result.stderr
