"""/rollback status, history, cancel, the form, and the failure path, through `rollbot serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    REQUESTER,
    SERVICE,
    ApiTestBed,
    approval_value,
    click,
    request_rollback,
)
from tests.testbed.aws import Aws, make_ecs_service, service_state
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command, view_submission


def rollback_id(fake: FakeSlackApi) -> str:
    return json.loads(approval_value(fake))["id"]


def test_status_cancel_and_history(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    aws = api_bed.aws
    bot = api_bed.start_bot()
    bot.sender.post(*slash_command("/rollback", "api because testing", user_id=REQUESTER))
    rid = rollback_id(fake_slack)

    bot.sender.post(*slash_command("/rollback", "status"))
    status = fake_slack.wait_for_response(lambda r: "in progress" in r.get("text", ""))
    assert rid in status["text"] and "awaiting_approval" in status["text"]

    bot.sender.post(*slash_command("/rollback", f"cancel {rid}", user_id=REQUESTER))
    fake_slack.wait_for_response(lambda r: "cancelled" in r.get("text", "") and rid in r["text"])
    approval = fake_slack.wait_for("chat.update", lambda c: "cancelled" in c.args["text"])[0]
    assert "Approve" not in json.dumps(approval.args["blocks"])
    # the target is free again, and a click on the old buttons does nothing
    click(bot, "rollback_approve", json.dumps({"id": rid}), LEAD)
    fake_slack.wait_for_response(lambda r: "already cancelled" in r.get("text", ""))
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"].endswith(":3")

    second_value = request_rollback(bot, fake_slack, "api to 2", nth=1)
    second = json.loads(second_value)["id"]
    assert second != rid
    click(bot, "rollback_approve", second_value, LEAD)
    fake_slack.wait_for("chat.postMessage", lambda c: "ROLLBACK COMPLETE" in c.args["text"])
    bot.sender.post(*slash_command("/rollback", f"cancel {second}"))
    fake_slack.wait_for_response(
        lambda r: (
            "can no longer be cancelled" in r.get("text", "")
            and "resolve, update, stable, health" in r["text"]
        )
    )
    bot.sender.post(*slash_command("/rollback", "history api"))
    history = fake_slack.wait_for_response(lambda r: "Rollback history" in r.get("text", ""))
    assert "succeeded" in history["text"] and "cancelled" in history["text"]
    assert "median" in history["text"]  # the runbooks' time-estimate table, from real runs
    assert fake_slack.errors == []


def modal_values(target: str, ref: str, reason: str, severity: str = "high") -> dict:
    return {
        "target": {
            "value": {
                "type": "static_select",
                "selected_option": {"value": target} if target else None,
            }
        },
        "ref": {"value": {"type": "plain_text_input", "value": ref}},
        "reason": {"value": {"type": "plain_text_input", "value": reason}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": severity}}},
    }


def test_form_opens_validates_and_starts(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    bot = api_bed.start_bot()
    assert bot.sender.post(*slash_command("/rollback", ""))[0] == 200
    view = fake_slack.wait_for("views.open")[0].args["view"]
    assert view["callback_id"] == "rollback_modal"
    assert [b["block_id"] for b in view["blocks"]] == ["target", "ref", "reason", "severity"]

    status, body = bot.sender.post(
        *view_submission(
            "rollback_modal",
            modal_values("", "$(reboot)", ""),
            user_id=REQUESTER,
            private_metadata=view["private_metadata"],
        )
    )
    assert status == 200 and body["response_action"] == "errors"
    assert set(body["errors"]) == {"target", "ref", "reason"}

    status, body = bot.sender.post(
        *view_submission(
            "rollback_modal",
            modal_values("api", "2", "<!channel> errors {{ 7*7 }}", "critical"),
            user_id=REQUESTER,
            private_metadata=view["private_metadata"],
        )
    )
    assert status == 200 and not body
    announcement = fake_slack.wait_for(
        "chat.postMessage", lambda c: "ROLLBACK REQUESTED" in c.args["text"]
    )[0]
    text = announcement.args["text"]
    assert "&lt;!channel&gt; errors {{ 7*7 }}" in text and "<!channel>" not in text
    assert "*Severity:* critical" in text
    fake_slack.wait_for("chat.postEphemeral", lambda c: "waiting for approval" in c.args["text"])


def test_failed_rollback_posts_failure_and_options(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    api_bed.health.status = 500
    bot = api_bed.start_bot()
    click(bot, "rollback_approve", request_rollback(bot, fake_slack, "api"), LEAD)
    failed = fake_slack.wait_for(
        "chat.postMessage", lambda c: "ROLLBACK FAILED" in c.args["text"], timeout=40
    )[0]
    text = failed.args["text"]
    assert "health check failed" in text and "500" in text
    assert ":x: Check the health endpoints" in text
    buttons = json.dumps(failed.args["blocks"])
    assert "Roll back further" in buttons
    fake_slack.wait_for("files.completeUploadExternal", count=2)
    report = next(u for u in fake_slack.uploaded_files if u.filename.startswith("incident-"))
    assert "failed" in report.text
    # the lock is released: a new rollback of the same target may start
    bot.sender.post(*slash_command("/rollback", "api to 1", user_id=REQUESTER))
    fake_slack.wait_for("chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=2)


def test_dangerous_playbook_needs_a_second_confirmation(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, CLUSTER, "worker", "worker", desired=2)
    (tmp_path / "stop-db-writer.yml").write_text(
        "name: stop-db-writer\ndescription: Stop the writer before a database restore\n"
        "dangerous: true\nparams:\n  cluster: {type: str, required: true}\n"
        "  service: {type: str, required: true}\n  region: {type: str}\n"
        "steps:\n  - {id: stop, type: ecs.scale, desired_count: 0}\n"
    )
    config = tmp_path / "rollbot.yml"
    config.write_text(
        f"approvers: [{LEAD}]\nchannel: C0INCIDENTS\ntargets:\n  writer:\n"
        "    playbook: stop-db-writer.yml\n    cluster: sandbox-broker-cluster\n"
        "    service: worker\n    region: eu-central-1\n"
    )
    bot = rollbot_server(config=config, env=aws.env)
    click(
        bot, "rollback_approve", request_rollback(bot, fake_slack, "writer because restore"), LEAD
    )
    confirm = fake_slack.wait_for(
        "chat.postMessage", lambda c: "Second confirmation" in c.args["text"]
    )[0]
    actions = next(b for b in confirm.args["blocks"] if b["type"] == "actions")
    assert [e["text"]["text"] for e in actions["elements"]] == ["Confirm", "Reject"]
    time.sleep(1.5)  # nothing runs on the first approval
    assert service_state(aws, CLUSTER, "worker")["desiredCount"] == 2
    value = actions["elements"][0]["value"]
    confirm_ts = confirm.response["ts"]
    click(bot, "rollback_confirm", value, "U0MALLORY", message_ts=confirm_ts)
    fake_slack.wait_for_response(lambda r: "Only the approvers" in r.get("text", ""))
    click(bot, "rollback_confirm", value, LEAD, message_ts=confirm_ts)
    fake_slack.wait_for("chat.postMessage", lambda c: "ROLLBACK COMPLETE" in c.args["text"])
    assert service_state(aws, CLUSTER, "worker")["desiredCount"] == 0
