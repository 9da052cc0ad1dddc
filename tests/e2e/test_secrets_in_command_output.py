"""Planted secrets in what host commands and GitHub say, through `rollbot serve`: compose's
error output, an nginx configuration nginx quotes back, a git commit message, and a GitHub API
error that echoes the requested ref. None may reach Slack, the SQLite files or the bot's log."""

from __future__ import annotations

import json
import shlex
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import LEAD, REQUESTER, click, has_ended, request_rollback
from tests.testbed.github_api import FakeGitHub, sha
from tests.testbed.host import Host, make_host, routed_to
from tests.testbed.secrets import leaks, text
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

Bot = Callable[..., Any]
SLACK_TOKEN_IN_CONF = "xoxb-1111111111-2222222222-PlantedBotTok1"
GITHUB_REF_TOKEN = "ghp_PlantedGitHubToken6abcdefghijklmnop"
REPO = "example-org/planted"


def catalog(name: str, **target: Any) -> dict[str, Any]:
    entry = {"poll_delay": 0.05, "poll_timeout": 10, **target}
    return {"approvers": [LEAD], "channel": "C0INCIDENTS", "targets": {name: entry}}


def everything(fake: FakeSlackApi, tmp_path: Path, bot: Any) -> dict[str, str | bytes]:
    calls = json.dumps([[c.method, c.args] for c in fake.calls]) + json.dumps(fake.responses)
    files = "".join(u.text + u.title for u in fake.uploads.values())
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("rollbot.db*"))
    return {"Slack": calls + files, "the SQLite files": stored, "the bot's log": bot.log_text()}


def assert_nothing_leaked(places: dict[str, str | bytes]) -> None:
    found = {place: leaks(hay) for place, hay in places.items() if leaks(hay)}
    assert not found, found


@pytest.fixture
def host(tmp_path: Path, git_repo: Any, compose_app: Any, nginx: Any) -> Host:
    return make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)


def failing_stop(tmp_path: Path, printed: str) -> list[str]:
    """The real `docker compose`, except that `stop` prints `printed` on stderr and fails."""
    script = tmp_path / "compose-with-a-failing-stop"
    script.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  if [ "$arg" = stop ]; then printf %s ' + shlex.quote(printed) + " >&2; exit 1; fi\n"
        "done\n"
        'exec docker compose "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)]


def test_compose_error_output_is_redacted_everywhere(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot, tmp_path: Path
) -> None:
    host.deploy_bad_release()
    command = failing_stop(tmp_path, text())  # a failing command that prints every secret
    params = host.params(compose_command=command)
    bot = rollbot_server(catalog=catalog("chat-config", playbook="host-config-rollback", **params))
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "chat-config"), LEAD)
    ended = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    assert "ROLLBACK FAILED" in ended and "[redacted]" in ended, ended
    fake_slack.wait_for("files.completeUploadExternal", count=2, timeout=30)
    bot.stop()
    assert_nothing_leaked(everything(fake_slack, tmp_path, bot))


def test_nginx_and_git_output_is_redacted_everywhere(
    host: Host, fake_slack: FakeSlackApi, rollbot_server: Bot, tmp_path: Path
) -> None:
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(host.repo.commit(f"release notes\n\n{text()}", {"notes.txt": "x\n"}) + "\n")
    good = routed_to(host.server, host.app.ports["backend-wsgi"])
    broken = good.replace("proxy_pass", SLACK_TOKEN_IN_CONF, 1)
    (host.server.prefix / "nginx.conf.pre-hybrid.bak").write_text(broken)
    host.deploy_bad_release()
    params = host.params(recorded_commit_file=str(record))
    bot = rollbot_server(catalog=catalog("chat-full", playbook="host-full-rollback", **params))
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "chat-full"), LEAD)
    ended = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    assert "ROLLBACK FAILED" in ended and "unknown directive" in ended, ended
    fake_slack.wait_for("files.completeUploadExternal", count=2, timeout=30)
    bot.stop()
    assert_nothing_leaked(everything(fake_slack, tmp_path, bot))


def test_a_github_error_echoing_a_token_is_redacted(
    github_api: FakeGitHub,
    fake_slack: FakeSlackApi,
    rollbot_server: Bot,
    http_backend: Any,
    tmp_path: Path,
) -> None:
    github_api.add_repo(REPO, tags={"v1": sha("v1")})
    github_api.add_workflow(REPO, "rollback.yml", required=["environment", "rollback_to_tag"])
    target = catalog(
        "planted", playbook="github-rollback", github_repo=REPO, health_urls=[http_backend().url]
    )
    bot = rollbot_server(
        catalog=target,
        env={
            "GITHUB_API_URL": github_api.url,
            "GITHUB_TOKEN": "ghp_BotOwnTokenForTheFake0123456789",
        },
    )
    bot.sender.post(
        *slash_command("/rollback", f"planted to {GITHUB_REF_TOKEN}", user_id=REQUESTER)
    )
    answer = fake_slack.wait_for_response(lambda r: "planted" in json.dumps(r), timeout=30)
    assert "[redacted]" in json.dumps(answer), answer
    bot.stop()
    places = everything(fake_slack, tmp_path, bot)
    assert_nothing_leaked(places)
    for place, hay in places.items():
        hay = hay.decode("utf-8", "replace") if isinstance(hay, bytes) else hay
        assert GITHUB_REF_TOKEN not in hay, place
