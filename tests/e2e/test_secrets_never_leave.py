"""The planted-secret corpus through `rollbot serve`: secrets in the task definitions'
environment, in CloudWatch log lines and in the health endpoint's body, a GitHub token and a
catalog password in the bot's own configuration. After `/diagnose`, an environment override
(whose plan must show that a secret changes) and a revision rollback, no planted value is in
any Slack call, uploaded file or response_url answer, in the SQLite files, in the audit export,
in `rollbot plan` output or in the bot's log."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.helpers import LEAD, REQUESTER, ApiTestBed, click, has_ended, request_rollback
from tests.testbed.aws import make_ecs_service, put_log_lines
from tests.testbed.rollbot_process import ROOT
from tests.testbed.secrets import VALUES, environment, leaks, lines, text
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

# Planted in the bot's own configuration: its environment and its catalog.
GITHUB_TOKEN = "ghp_PlantedBotOwnGitHubToken0abcdefghij"
NEW_DB_PASS = "newPlantedDbPass77"
CATALOG_DB_URL = "postgresql://app:CatalogDbPw78@db.internal:5432/app"
OWN = (GITHUB_TOKEN, NEW_DB_PASS, "CatalogDbPw78")
ENV_CLUSTER, ENV_SERVICE = "planted-cluster", "planted-service"


def extra_target(api_bed: ApiTestBed) -> str:
    return f"""\
  api-env:
    playbook: ecs-env-override
    cluster: {ENV_CLUSTER}
    service: {ENV_SERVICE}
    region: eu-central-1
    environment: {{DB_PASS: {NEW_DB_PASS}, MODE: slow, DATABASE_URL: "{CATALOG_DB_URL}"}}
    health_urls: ["{api_bed.health.url}"]
    poll_delay: 0.2
    poll_timeout: 20
"""


def found(haystack: str | bytes) -> list[str]:
    if isinstance(haystack, bytes):
        haystack = haystack.decode("utf-8", "replace")
    return leaks(haystack) + [v for v in OWN if v in haystack]


def everything_slack_saw(fake: FakeSlackApi) -> str:
    calls = json.dumps([[c.method, c.args] for c in fake.calls])
    files = "".join(u.text + u.title + u.initial_comment for u in fake.uploads.values())
    return calls + files + json.dumps(fake.responses)


def cli(bot, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=bot.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_no_planted_secret_leaves_the_bot(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    aws = api_bed.aws
    make_ecs_service(aws, ENV_CLUSTER, ENV_SERVICE, "planted", environment=environment())
    # the api service's next revisions carry the corpus too (the rollback goes back to one)
    make_ecs_service(aws, "sandbox-broker-cluster", "planted-api", "sandbox-broker",
                     environment=environment())  # fmt: skip
    put_log_lines(aws, "/ecs/sandbox-broker", [f"ERROR {line}" for line in lines()])
    api_bed.health.body = text()
    bot = api_bed.start_bot(env={"GITHUB_TOKEN": GITHUB_TOKEN}, extra=extra_target(api_bed))

    # /diagnose: the capture's post and its uploaded file
    bot.sender.post(*slash_command("/diagnose", "api", user_id=REQUESTER))
    fake_slack.wait_for("files.completeUploadExternal", timeout=60)

    # the environment override: its plan names the changed variables, a secret by fingerprint
    plan = cli(bot, "plan", "api-env")
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "api-env"), LEAD)
    ended = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0].args["text"]
    assert "ROLLBACK COMPLETE" in ended, ended
    approval = next(t for t in fake_slack.texts() if "Approval needed" in t)
    assert "DB_PASS: sha256:" in approval and "MODE:" in approval, approval

    # a revision rollback of the api service (its revisions carry the corpus)
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "api", nth=1), LEAD)
    fake_slack.wait_for("chat.postMessage", has_ended, count=2, timeout=60)
    fake_slack.wait_for("files.completeUploadExternal", count=3, timeout=30)

    audit = cli(bot, "audit")
    bot.stop()

    assert "DB_PASS: sha256:" in plan and "MODE: " in plan, plan
    assert "PLAIN_0" not in plan  # unchanged variables are not listed
    assert '"action": "rollback.approved"' in audit, audit[:2000]
    assert fake_slack.errors == []
    stored = b"".join(p.read_bytes() for p in api_bed.tmp_path.glob("rollbot.db*"))
    where = {
        "Slack": everything_slack_saw(fake_slack),
        "the SQLite files": stored,
        "the audit export": audit,
        "rollbot plan": plan,
        "the bot's log": bot.log_text(),
    }
    leaked = {place: found(haystack) for place, haystack in where.items() if found(haystack)}
    assert not leaked, leaked
    assert len(VALUES) >= 25
