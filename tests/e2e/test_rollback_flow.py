"""The whole /rollback flow through signed requests to `rollbot serve`, moto and the fake Slack."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.testbed.aws import Aws, make_ecs_service, put_log_lines, service_state
from tests.testbed.slack_api import Call, FakeSlackApi
from tests.testbed.slack_requests import block_action, slash_command

LEAD, REQUESTER, STRANGER = "U0LEAD", "U0REQUESTER", "U0STRANGER"


def catalog(tmp_path: Path, health_url: str, extra: str = "") -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(f"""\
approvers: [{LEAD}, S0SRE]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    description: all API traffic
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
    health_urls: ["{health_url}"]
    log_groups: [/ecs/sandbox-broker]
    poll_delay: 0.2
    poll_timeout: 20
{extra}""")
    return path


def approval_value(fake: FakeSlackApi, nth: int = 0) -> str:
    """The Approve button's value of the nth approval request, remembering its message."""
    calls = fake.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=nth + 1
    )
    call = calls[nth]
    actions = next(b for b in call.args["blocks"] if b["type"] == "actions")
    texts = [e["text"]["text"] for e in actions["elements"]]
    assert texts == ["Approve", "Reject"]
    value = actions["elements"][0]["value"]
    MESSAGE_OF[value] = call.response["ts"]
    # the requester is told once the request is ready for a decision; a click before then
    # (faster than a person) would find the rollback still being prepared
    deadline = time.monotonic() + 15
    while len([r for r in fake.responses if "waiting for approval" in r.get("text", "")]) <= nth:
        assert time.monotonic() < deadline, "the rollback never became ready for approval"
        time.sleep(0.05)
    return value


MESSAGE_OF: dict[str, str] = {}  # button value -> ts of the message that carries it


def click(
    bot: Any, action: str, value: str, user: str, message_ts: str | None = None
) -> tuple[int, float]:
    """A signed click on the button of the message that carries `value`."""
    started = time.monotonic()
    ts = message_ts or MESSAGE_OF.get(value, "1.000001")
    status, _ = bot.sender.post(*block_action(action, value, user_id=user, message_ts=ts))
    return status, time.monotonic() - started


def is_completion(call: Call) -> bool:
    return "ROLLBACK COMPLETE" in call.args.get("text", "")


def test_full_text_rollback(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    arns = make_ecs_service(
        aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker", revisions=3
    )
    put_log_lines(aws, "/ecs/sandbox-broker", ["ERROR 500 upstream", "INFO ok"])
    health = http_backend()
    fake_slack.set_usergroup("S0SRE", [REQUESTER])  # an approver, but not of their own request
    bot = rollbot_server(config=catalog(tmp_path, health.url), env=aws.env)

    started = time.monotonic()
    status, body = bot.sender.post(
        *slash_command("/rollback", "api to 2 because 5xx spike after deploy", user_id=REQUESTER)
    )
    assert status == 200 and time.monotonic() - started < 3
    assert "capturing diagnostics" in json.dumps(body)

    # diagnostics first, in the announcement's thread, before anything changes
    upload = next(iter(fake_slack.wait_for("files.completeUploadExternal")))
    diag = next(u for u in fake_slack.uploaded_files if u.filename.startswith("diagnostics-"))
    assert "ERROR 500 upstream" in diag.text and upload.args.get("thread_ts")
    announcement = fake_slack.calls_to("chat.postMessage")[0].args
    assert announcement["channel"] == "C0INCIDENTS"
    assert "ROLLBACK REQUESTED" in announcement["text"] and "5xx spike" in announcement["text"]
    assert "*Decides:* <@U0LEAD> <!subteam^S0SRE>" in announcement["text"]
    assert (
        service_state(aws, "sandbox-broker-cluster", "sandbox-broker")["taskDefinition"] == arns[2]
    )

    value = approval_value(fake_slack)
    approval = fake_slack.wait_for("chat.postMessage", lambda c: "Approval" in c.args["text"])[0]
    assert f"taskDefinition='{arns[1]}'" in json.dumps(approval.args["blocks"])

    # the requester may not approve their own rollback, nor may a stranger
    for user in (REQUESTER, STRANGER):
        status, elapsed = click(bot, "rollback_approve", value, user)
        assert status == 200 and elapsed < 3
    fake_slack.wait_for_response(lambda r: "someone else has to approve" in r.get("text", ""))
    fake_slack.wait_for_response(lambda r: "Only the approvers" in r.get("text", ""))
    time.sleep(0.5)
    assert (
        service_state(aws, "sandbox-broker-cluster", "sandbox-broker")["taskDefinition"] == arns[2]
    )

    assert click(bot, "rollback_approve", value, LEAD)[0] == 200
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)[0]
    assert service_state(aws, "sandbox-broker-cluster", "sandbox-broker")["taskDefinition"] in (
        arns[1],
        "sandbox-broker:2",
    )
    text = done.args["text"]
    assert ":white_check_mark: Wait for the service to be stable" in text
    assert ":white_check_mark: Check the health endpoints" in text
    assert health.hits >= 1
    report = fake_slack.wait_for("files.completeUploadExternal", count=2)[1]
    assert report.args.get("thread_ts") == announcement_ts(fake_slack)
    incident = next(u for u in fake_slack.uploaded_files if u.filename.startswith("incident-"))
    assert "## Timeline" in incident.text and "rollback.approved by U0LEAD" in incident.text
    assert "## Lessons learned" in incident.text
    assert fake_slack.errors == []
    # Web API calls and response_url answers share a pool: not one new connection per call
    assert len(set(fake_slack.peers)) * 3 < len(fake_slack.peers), fake_slack.peers


def announcement_ts(fake: FakeSlackApi) -> str:
    first = fake.calls_to("chat.postMessage")[0]
    return next(ts for (ch, ts), m in fake.messages.items() if m is first.args)


def test_double_clicks_run_the_playbook_once(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker", revisions=3)
    fake_slack.set_usergroup("S0SRE", ["U0SRE1"])
    bot = rollbot_server(config=catalog(tmp_path, http_backend().url), env=aws.env)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    clicks = [(LEAD, False), (LEAD, True), ("U0SRE1", False)] * 2  # two approvers, retried
    threads = [
        threading.Thread(target=click, args=(bot, "rollback_approve", value, u)) for u, _ in clicks
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)
    time.sleep(1.0)
    assert len(fake_slack.calls_to("chat.postMessage", ok_only=False)) == len(
        [c for c in fake_slack.calls_to("chat.postMessage")]
    )
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if is_completion(c)]) == 1
    progress = [
        c
        for c in fake_slack.calls_to("chat.postMessage")
        if c.args["text"].startswith("Progress of")
    ]
    assert len(progress) == 1
    already = [r for r in fake_slack.responses if "already" in r.get("text", "")]
    assert len(already) == len(clicks) - 1
    journal = read_journal(tmp_path / "rollbot.db")
    assert [(e.step_id, e.event) for e in journal].count(("update", "start")) == 1
    assert len([e for e in journal if e.event == "start"]) == 4


def read_journal(db: Path) -> list[Any]:
    """The step journal of the only rollback in the bot's SQLite file."""
    import asyncio

    from bot.store.sqlite import SqliteStore

    async def read() -> list[Any]:
        store = SqliteStore(db)
        await store.connect()
        try:
            (record,) = await store.list_records("rollback")
            return await store.journal(record.id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_second_rollback_of_locked_target_is_refused(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker")
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker-worker", "worker")
    extra = (
        "  worker:\n    playbook: ecs-revision\n    cluster: sandbox-broker-cluster\n"
        "    service: sandbox-broker-worker\n    region: eu-central-1\n"
        "    poll_delay: 0.2\n"
    )
    bot = rollbot_server(config=catalog(tmp_path, http_backend().url, extra), env=aws.env)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    approval_value(fake_slack)
    bot.sender.post(*slash_command("/rollback", "api to 1", user_id="U0OTHER"))
    refusal = fake_slack.wait_for_response(lambda r: "already has rollback" in r.get("text", ""))
    assert "https://slack.com/archives/C0INCIDENTS/p" in refusal["text"]
    bot.sender.post(*slash_command("/rollback", "worker", user_id="U0OTHER"))
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "Approval needed for rollback of worker" in c.args["text"]
    )


def test_forged_approvals_are_refused_and_audited(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, http_backend: Any, tmp_path: Path
) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker")
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker-worker", "worker")
    extra = (
        "  worker:\n    playbook: ecs-revision\n    cluster: sandbox-broker-cluster\n"
        "    service: sandbox-broker-worker\n    region: eu-central-1\n"
    )
    bot = rollbot_server(config=catalog(tmp_path, http_backend().url, extra), env=aws.env)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    api_value = approval_value(fake_slack)
    bot.sender.post(*slash_command("/rollback", "worker", user_id=REQUESTER))
    worker_value = approval_value(fake_slack, nth=1)

    # valid signature, a user id that is no approver
    click(bot, "rollback_approve", api_value, "U0MALLORY")
    # an approver's click on the api message, its value rewritten to the worker rollback
    click(bot, "rollback_approve", worker_value, LEAD, message_ts=MESSAGE_OF[api_value])
    # garbage and an id that does not exist
    click(bot, "rollback_approve", '{"id": "rb-00000000"}', LEAD)
    click(bot, "rollback_reject", "not json <!channel>", LEAD)
    fake_slack.wait_for_response(lambda r: "Only the approvers" in r.get("text", ""))
    forged = [r for r in fake_slack.responses if "does not" in r.get("text", "")]
    for _ in range(50):
        if len(forged) >= 3:
            break
        time.sleep(0.1)
        forged = [r for r in fake_slack.responses if "does not" in r.get("text", "")]
    assert len(forged) == 3
    audit = audit_actions(tmp_path / "rollbot.db")
    assert ("U0MALLORY", "rollback.decision_refused") in audit
    assert audit.count((LEAD, "rollback.forged_click")) == 3
    states = {json.loads(v)["id"]: s for v, s in ((api_value, 0), (worker_value, 0))}
    assert all(record_state(tmp_path / "rollbot.db", rid) == "awaiting_approval" for rid in states)


def audit_actions(db: Path) -> list[tuple[str, str]]:
    import sqlite3

    rows = sqlite3.connect(db).execute("SELECT actor, action FROM audit ORDER BY seq")
    return [(a, b) for a, b in rows]


def record_state(db: Path, rollback_id: str) -> str:
    import sqlite3

    row = sqlite3.connect(db).execute("SELECT state FROM records WHERE id=?", (rollback_id,))
    return row.fetchone()[0]
