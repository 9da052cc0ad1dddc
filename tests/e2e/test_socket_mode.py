"""The main rollback flow through `rollbot socket`: two replicas connected to the fake Slack's
Socket Mode service at once, each envelope handled once (also when Slack delivers it again,
to the other replica), and both connections replaced in the middle of the rollback."""

from __future__ import annotations

import json
import time

from tests.e2e.helpers import (
    LEAD,
    MESSAGE_OF,
    REQUESTER,
    ApiTestBed,
    approval_value,
    audit_actions,
    catalog,
    is_completion,
    record_state,
)
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command
from tests.testbed.socket_mode import payload_of


def socket_bot(api_bed: ApiTestBed, env: dict[str, str] | None = None) -> RollbotProcess:
    config = catalog(api_bed.tmp_path, api_bed.health.url)
    return api_bed.rollbot_server(
        config=config, env={**api_bed.aws.env, **(env or {})}, socket=True
    )


def test_rollback_over_socket_mode_two_replicas_and_reconnects_mid_rollback(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    socket = fake_slack.socket
    api_bed.health.status = 503  # holds the rollback in verification while connections change
    env = {"ROLLBOT_STATUS_INTERVAL": "60", "ROLLBOT_LEASE_SECONDS": "5"}
    first, second = socket_bot(api_bed, env), socket_bot(api_bed, env)
    connections = {c.number: c for c in socket.wait_connections(2)}
    assert set(connections) == {first.connection, second.connection}
    assert all(c.ticket for c in connections.values())

    # the slash command reaches one replica; Slack, seeing no ack in time, sends it again
    # to the other: one request, one announcement
    command = socket.command(
        "/rollback",
        "api to 2 because 5xx after deploy",
        user_id=REQUESTER,
        connection=connections[first.connection],
    )
    ack = socket.wait_ack(command)
    assert ack.elapsed < 3 and "capturing diagnostics" in json.dumps(ack.payload)
    socket.redeliver(command, connections[second.connection])
    socket.wait_ack(command)
    value = approval_value(fake_slack)
    rollback_id = json.loads(value)["id"]

    click = socket.click("rollback_approve", value, LEAD, message_ts=MESSAGE_OF[value])
    assert socket.wait_ack(click).elapsed < 3
    other = next(c for n, c in connections.items() if n != click.connection)
    socket.redeliver(click, other)  # the same click again, on the other connection
    socket.wait_ack(click)
    fake_slack.wait_for("chat.postMessage", lambda c: "Progress" in c.args["text"], timeout=20)
    _wait_state(api_bed, rollback_id, {"verifying"})

    # mid-rollback: Slack asks one connection to refresh and the other one drops
    socket.disconnect(connections[first.connection], "refresh_requested")
    socket.drop(connections[second.connection])
    fresh = socket.wait_connections(2, timeout=20)
    assert not {c.number for c in fresh} & set(connections)
    # an envelope whose first delivery was lost with the connection arrives marked as a retry
    status = socket.deliver(
        *payload_of(slash_command("/rollback", "status", user_id=REQUESTER)),
        retry_attempt=1,
        retry_reason="timeout",
        wait=5,
    )
    assert socket.wait_ack(status).connection in {c.number for c in fresh}
    listed = fake_slack.wait_for_response(lambda r: "Rollbacks in progress" in r.get("text", ""))
    assert rollback_id in listed["text"]

    api_bed.health.status = 200
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    time.sleep(1.5)  # long enough for a duplicate to show up
    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert len([t for t in posts if "ROLLBACK REQUESTED" in t]) == 1
    assert len([t for t in posts if "Approval needed" in t]) == 1
    assert len([t for t in posts if "ROLLBACK COMPLETE" in t]) == 1
    actions = audit_actions(api_bed.db)
    assert actions.count((LEAD, "rollback.approved")) == 1
    assert record_state(api_bed.db, rollback_id) == "succeeded"
    assert all(len(e.acks) == len(e.deliveries) for e in socket.envelopes.values())
    assert fake_slack.errors == []
    assert first.alive and second.alive


def _wait_state(api_bed: ApiTestBed, rollback_id: str, states: set[str]) -> None:
    deadline = time.monotonic() + 30
    while record_state(api_bed.db, rollback_id) not in states:
        assert time.monotonic() < deadline, record_state(api_bed.db, rollback_id)
        time.sleep(0.1)
