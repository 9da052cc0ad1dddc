"""The whole /rollback flow through signed requests to `rollbot serve`, moto and the fake Slack."""

from __future__ import annotations

import json
import threading
import time

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    MESSAGE_OF,
    REQUESTER,
    SERVICE,
    STRANGER,
    ApiTestBed,
    approval_value,
    audit_actions,
    click,
    is_completion,
    read_journal,
    record_state,
    request_rollback,
)
from tests.testbed.aws import make_ecs_service, put_log_lines, service_state
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command


def test_full_text_rollback(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    aws, arns, health = api_bed.aws, api_bed.arns, api_bed.health
    put_log_lines(aws, "/ecs/sandbox-broker", ["ERROR 500 upstream", "INFO ok"])
    fake_slack.set_usergroup("S0SRE", [REQUESTER])  # an approver, but not of their own request
    bot = api_bed.start_bot()

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
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] == arns[2]

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
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] == arns[2]

    assert click(bot, "rollback_approve", value, LEAD)[0] == 200
    done = fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)[0]
    assert service_state(aws, CLUSTER, SERVICE)["taskDefinition"] in (
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
    return str(first.response["ts"])  # the root is edited as the state moves: find it by ts


def test_double_clicks_run_the_playbook_once(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    fake_slack.set_usergroup("S0SRE", ["U0SRE1"])
    bot = api_bed.start_bot()
    value = request_rollback(bot, fake_slack, "api")
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
    journal = read_journal(api_bed.db)
    assert [(e.step_id, e.event) for e in journal].count(("update", "start")) == 1
    assert len([e for e in journal if e.event == "start"]) == 4


def test_second_rollback_of_locked_target_is_refused(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    make_ecs_service(api_bed.aws, CLUSTER, "sandbox-broker-worker", "worker")
    extra = (
        "  worker:\n    playbook: ecs-revision\n    cluster: sandbox-broker-cluster\n"
        "    service: sandbox-broker-worker\n    region: eu-central-1\n"
        "    poll_delay: 0.2\n"
    )
    bot = api_bed.start_bot(extra=extra)
    request_rollback(bot, fake_slack, "api")
    bot.sender.post(*slash_command("/rollback", "api to 1", user_id="U0OTHER"))
    refusal = fake_slack.wait_for_response(lambda r: "already has rollback" in r.get("text", ""))
    assert "https://slack.com/archives/C0INCIDENTS/p" in refusal["text"]
    bot.sender.post(*slash_command("/rollback", "worker", user_id="U0OTHER"))
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "Approval needed for rollback of worker" in c.args["text"]
    )


def test_forged_approvals_are_refused_and_audited(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    make_ecs_service(api_bed.aws, CLUSTER, "sandbox-broker-worker", "worker")
    extra = (
        "  worker:\n    playbook: ecs-revision\n    cluster: sandbox-broker-cluster\n"
        "    service: sandbox-broker-worker\n    region: eu-central-1\n"
    )
    bot = api_bed.start_bot(extra=extra)
    api_value = request_rollback(bot, fake_slack, "api")
    worker_value = request_rollback(bot, fake_slack, "worker", nth=1)

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
    audit = audit_actions(api_bed.db)
    assert ("U0MALLORY", "rollback.decision_refused") in audit
    assert audit.count((LEAD, "rollback.forged_click")) == 3
    states = {json.loads(v)["id"]: s for v, s in ((api_value, 0), (worker_value, 0))}
    assert all(record_state(api_bed.db, rid) == "awaiting_approval" for rid in states)
