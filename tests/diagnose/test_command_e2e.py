"""/diagnose through the real bot process: signed slash command in, verdict and file out, and
the Roll back button opening the pre-filled form."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.diagnose.conftest import (
    ALB,
    SECRET_ENV,
    SECRET_TOKEN,
    seed_logs,
    seed_metrics,
    seed_service,
    write_catalog,
)
from tests.testbed.aws import Aws
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import block_action, slash_command


def test_diagnose_command_end_to_end_without_leaking_secrets(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    seed_service(aws)
    seed_logs(aws)
    seed_metrics(aws)
    config = write_catalog(
        tmp_path, health=[http_backend().url], diagnose={"load_balancer": ALB, "source_timeout": 3}
    )
    bot = rollbot_server(config=config, env=aws.env)

    status, body = bot.sender.post(*slash_command("/diagnose", "api", channel_id="C0ORIGIN"))
    assert status == 200 and "Diagnosing" in json.dumps(body)
    message = fake_slack.wait_for("chat.postMessage")[0].args
    fake_slack.wait_for("files.completeUploadExternal")
    shown = json.dumps(message)
    assert "CRITICAL" in shown and "Error rate" in shown and "15.0% (150 of 1000)" in shown
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["text"]["text"] == "Roll back" and json.loads(button["value"])["target"] == "api"
    upload = fake_slack.uploaded_files[0].text
    assert "ERROR 500 auth failed" in upload and "DB_PASSWORD" in upload
    rows = sqlite3.connect(tmp_path / "rollbot.db").execute("SELECT data FROM records").fetchall()
    stored = json.dumps(rows)
    for secret in (SECRET_ENV, SECRET_TOKEN):
        assert secret not in shown and secret not in upload and secret not in stored
    assert fake_slack.errors == []

    bot.sender.post(*block_action("diagnose_rollback", button["value"], user_id="U0LEAD"))
    view = fake_slack.wait_for("views.open")[0].args["view"]
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "api"
    assert (
        json.loads(view["private_metadata"])["diagnosis"]
        == json.loads(button["value"])["diagnosis"]
    )
