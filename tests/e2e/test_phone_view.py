"""Read on a phone: the approval request opens with the change in words, the root announcement
follows the state, and the Home tab shows an approver what waits for them."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from pathlib import Path

from tests.e2e.helpers import (
    LEAD,
    MESSAGE_OF,
    REQUESTER,
    ApiTestBed,
    click,
    is_completion,
    request_rollback,
)
from tests.testbed.aws_gate import AwsGate
from tests.testbed.ports import wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import block_action, sign, slash_command


def _root(fake: FakeSlackApi) -> tuple[str, str]:
    first = fake.calls_to("chat.postMessage")[0]
    return (str(first.args["channel"]), str(first.response["ts"]))


def _root_text(fake: FakeSlackApi, wanted: str, timeout: float = 20) -> str:
    key = _root(fake)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = str(fake.messages[key].get("text", ""))
        if wanted in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"root never said {wanted!r}: {fake.messages[key].get('text')!r}")


def _open_home(bot: object, user: str) -> None:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEAM",
            "api_app_id": "A0ROLLBOT",
            "event_id": f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D0"},
        }
    ).encode()
    status, _ = bot.sender.post(body, sign(body, content_type="application/json"))  # type: ignore[attr-defined]
    assert status == 200


def _home(fake: FakeSlackApi, user: str, wanted: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = fake.views.get(f"home:{user}")
        if view and wanted in json.dumps(view):
            return view
        time.sleep(0.1)
    raise AssertionError(
        f"{user}'s Home tab never showed {wanted!r}: {fake.views.get(f'home:{user}')}"
    )


def test_ecs_approval_opens_with_before_and_after_and_root_says_completed(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api to 2 because 5xx")
    approval = fake_slack.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"]
    )
    first = approval[0].args["blocks"][0]["text"]["text"]
    assert first.startswith(
        "*What changes:*\n• sandbox-broker: `sandbox-broker:3` (image `sandbox-broker:v3`)"
    )
    assert "→ `sandbox-broker:2` (image `sandbox-broker:v2`)" in first and " task" in first
    assert len(first) <= 3000
    assert "WAITING FOR APPROVAL" in _root_text(fake_slack, "WAITING FOR APPROVAL")

    assert click(bot, "rollback_approve", value, LEAD)[0] == 200
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)[0]
    assert "*Changes made:*\n• sandbox-broker: `sandbox-broker:3`" in done.args["text"]
    root = _root_text(fake_slack, "COMPLETED IN")
    assert root.startswith(":white_check_mark: *COMPLETED IN") and "<@U0LEAD>" in root
    assert fake_slack.errors == []


def test_rejected_rollback_root_says_rejected(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api")
    assert click(bot, "rollback_reject", value, LEAD)[0] == 200
    assert _root_text(fake_slack, "REJECTED").startswith(":no_entry: *REJECTED")


def test_expired_rollback_root_says_expired(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    bot = api_bed.start_bot(env={"ROLLBOT_APPROVAL_TIMEOUT": "3"})
    request_rollback(bot, fake_slack, "api")
    assert "WAITING FOR APPROVAL" in _root_text(fake_slack, "WAITING FOR APPROVAL")
    root = _root_text(fake_slack, "EXPIRED", timeout=30)
    assert root.startswith(":alarm_clock: *EXPIRED WITHOUT A DECISION")


def test_home_tab_shows_the_approver_the_request_and_decides_from_there(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    fake_slack.set_usergroup("S0SRE", [REQUESTER])  # an approver, but not of their own request
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api to 2")
    rollback_id = json.loads(value)["id"]

    _open_home(bot, REQUESTER)
    mine = _home(fake_slack, REQUESTER, "runs `sandbox-broker:3`")  # the tab as opened
    assert rollback_id not in json.dumps(mine)  # no Approve button for their own request

    _open_home(bot, LEAD)
    view = _home(fake_slack, LEAD, "runs `sandbox-broker:3`")  # the tab as opened, not a refresh
    assert rollback_id in json.dumps(view)
    shown = json.dumps(view, ensure_ascii=False)
    assert "`api`: ecs-revision — runs `sandbox-broker:3`" in shown  # the target, its revision
    actions = next(b for b in view["blocks"] if b.get("block_id") == f"home:{rollback_id}")
    approve = next(e for e in actions["elements"] if e["action_id"] == "rollback_approve")
    home_value = approve["value"]
    assert json.loads(home_value)["ts"] == MESSAGE_OF[value]

    def from_home(user: str, carried: str) -> int:
        container = {"type": "view", "view_id": f"home:{user}"}
        signed = block_action(
            "rollback_approve",
            carried,
            user_id=user,
            container=container,
            view={"type": "home", "id": f"home:{user}"},
        )
        return bot.sender.post(*signed)[0]

    # a Home button whose message binding is wrong is refused like a forged one in the thread
    assert from_home(LEAD, json.dumps({"id": rollback_id, "ts": "9.999"})) == 200
    fake_slack.wait_for("chat.postMessage", lambda c: "does not belong" in c.args["text"])
    # the requester clicking through Home is refused under the same rules
    assert from_home(REQUESTER, home_value) == 200
    fake_slack.wait_for("chat.postMessage", lambda c: "someone else" in c.args["text"])

    assert from_home(LEAD, home_value) == 200
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)
    assert "COMPLETED IN" in _root_text(fake_slack, "COMPLETED IN")
    # nobody opened the tab again: the state change refreshed it for the people concerned
    for user in (LEAD, REQUESTER):
        refreshed = _home(fake_slack, user, "*succeeded* in")
        assert f"home:{rollback_id}" not in json.dumps(refreshed)  # nothing waits any more
    assert fake_slack.errors == []


def test_failed_rollback_root_says_at_which_step(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url})
    value = request_rollback(bot, fake_slack, "api to 2")
    aws_gate.fail("UpdateService", 10, "AccessDeniedException")
    assert click(bot, "rollback_approve", value, LEAD)[0] == 200
    root = _root_text(fake_slack, "FAILED AT STEP", timeout=30)
    assert root.startswith(":x: *FAILED AT STEP 2 OF 4 — api*")


def test_cancelled_rollback_root_says_cancelled(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api")
    rollback_id = json.loads(value)["id"]
    bot.sender.post(*slash_command("/rollback", f"cancel {rollback_id}", user_id=REQUESTER))
    assert _root_text(fake_slack, "CANCELLED").startswith(":heavy_minus_sign: *CANCELLED")


def test_the_final_state_reaches_the_root_through_the_outbox_after_a_kill(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api")
    _root_text(fake_slack, "WAITING FOR APPROVAL")
    fake_slack.fail_next("chat.update", 1000, status=503)  # Slack refuses every edit
    assert click(bot, "rollback_reject", value, LEAD)[0] == 200
    db = api_bed.db
    wait_until(lambda: "chat_update" in _queued(db), 60, "the root edit in the outbox")

    bot.kill(signal.SIGKILL)  # dies with the edit still queued
    fake_slack.heal()
    bot.start()
    assert _root_text(fake_slack, "REJECTED", timeout=30).startswith(":no_entry: *REJECTED")
    wait_until(lambda: _queued(db) == [], 15, "an empty outbox")
    assert fake_slack.errors == []


def _queued(db: Path) -> list[str]:
    rows = sqlite3.connect(db).execute("SELECT entry FROM outbox ORDER BY seq")
    return [json.loads(entry)["method"] for (entry,) in rows]


ENV_AND_SCALE_TARGETS = """\
  api-env:
    playbook: ecs-env-rollback
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
  api-stop:
    playbook: ecs-scale
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
    desired_count: 0
"""


def _first_section(fake: FakeSlackApi, nth: int) -> str:
    calls = fake.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=nth + 1
    )
    return str(calls[nth].args["blocks"][0]["text"]["text"])


def test_env_and_scale_approvals_open_with_their_real_values(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    ecs = api_bed.aws.client("ecs")
    base = ecs.describe_task_definition(taskDefinition=api_bed.arns[2])["taskDefinition"]

    def register(env: dict[str, str]) -> str:
        container = {**base["containerDefinitions"][0]}
        container["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        made = ecs.register_task_definition(family=base["family"], containerDefinitions=[container])
        return str(made["taskDefinition"]["taskDefinitionArn"])

    register({"TORNADO_PROCESSES": "1", "API_TOKEN": "before-token"})
    bad = register({"TORNADO_PROCESSES": "4", "API_TOKEN": "after-token"})
    ecs.update_service(
        cluster="sandbox-broker-cluster", service="sandbox-broker", taskDefinition=bad
    )
    bot = api_bed.start_bot(extra=ENV_AND_SCALE_TARGETS)

    value = request_rollback(bot, fake_slack, "api-env")
    env = _first_section(fake_slack, 0)
    assert env.startswith("*What changes:*\n• sandbox-broker (new revision of `sandbox-broker:5`):")
    assert "TORNADO_PROCESSES: 4 → 1" in env
    assert re.search(r"API_TOKEN changed \(sha256:[0-9a-f]{8} → sha256:[0-9a-f]{8}\)", env)
    assert "before-token" not in env and "after-token" not in env
    assert click(bot, "rollback_reject", value, LEAD)[0] == 200
    _root_text(fake_slack, "REJECTED")

    request_rollback(bot, fake_slack, "api-stop", nth=1)
    scale = _first_section(fake_slack, 1)
    assert scale.startswith("*What changes:*\n• sandbox-broker: 2 → 0\n")
    assert fake_slack.errors == []
