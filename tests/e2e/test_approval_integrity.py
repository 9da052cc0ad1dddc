"""Approval integrity through `rollbot serve`, signed requests and moto, on SQLite and Redis:
Approve and Confirm are different clicks, several approvers per target, requests expire, only
the requester or an approver cancels, foreign workspaces and replays are refused, and every
refusal is in the audit log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store.base import AuditEntry, LockInfo, Record, Store
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    MESSAGE_OF,
    REQUESTER,
    SERVICE,
    STRANGER,
    ApiTestBed,
    approval_value,
    catalog,
    click,
    is_completion,
    request_rollback,
)
from tests.testbed import slack_requests
from tests.testbed.aws import service_state
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command, view_submission

SRE1, SRE2 = "U0SRE1", "U0SRE2"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The bots' store: the shared SQLite file, or a Redis server on loopback."""
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
def bed(api_bed: ApiTestBed, fake_slack: FakeSlackApi, store_env: dict[str, str]) -> Iterator[Bed]:
    fake_slack.set_usergroup("S0SRE", [SRE1, SRE2, REQUESTER])
    yield Bed(api_bed, fake_slack, store_env)


class Bed:
    """Bots on the `api` catalog with the chosen store, and a look into that store."""

    def __init__(self, api: ApiTestBed, fake: FakeSlackApi, store_env: dict[str, str]) -> None:
        self.api, self.fake, self.store_env = api, fake, store_env

    def start(
        self, settings: str = "", env: dict[str, str] | None = None, dangerous: bool = False
    ) -> RollbotProcess:
        """A bot whose `api` target has the extra `settings` lines (and a dangerous playbook)."""
        path = catalog(self.api.tmp_path, self.api.health.url)
        text = path.read_text().replace(
            "    poll_timeout: 20\n", "    poll_timeout: 20\n" + settings
        )
        if dangerous:
            shipped = (ROOT / "playbooks/files/ecs-revision.yml").read_text()
            playbook = self.api.tmp_path / "ecs-revision-dangerous.yml"
            playbook.write_text(
                shipped.replace("name: ecs-revision", "name: ecs-revision-dangerous")
                + "dangerous: true\n"
            )
            text = text.replace("playbook: ecs-revision", f"playbook: {playbook.name}")
        path.write_text(text)
        full = {**self.api.aws.env, **self.store_env, **(env or {})}
        return self.api.rollbot_server(config=path, env=full)

    def _store(self) -> Store:
        url = self.store_env.get("REDIS_URL")
        return RedisStore(url) if url else SqliteStore(self.api.db)

    def _read(self, what: Any) -> Any:
        async def run() -> Any:
            store = self._store()
            await store.connect()
            try:
                return await what(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def audit(self) -> list[AuditEntry]:
        return self._read(lambda s: s.audit_since(0.0))

    def actions(self) -> list[tuple[str, str]]:
        return [(e.actor, e.action) for e in self.audit()]

    def record(self, rollback_id: str) -> Record:
        return self._read(lambda s: s.get(rollback_id))

    def state(self, value: str) -> str:
        return self.record(json.loads(value)["id"]).state

    def lock(self, target: str = "api") -> LockInfo | None:
        return self._read(lambda s: s.lock_info(f"target:{target}"))

    def lock_owner(self, target: str = "api") -> str | None:
        info = self.lock(target)
        return info.owner if info else None


def wait_until(check: Any, timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def responses(fake: FakeSlackApi, part: str) -> list[dict[str, Any]]:
    return [r for r in fake.responses if part in r.get("text", "")]


def confirm_value(fake: FakeSlackApi) -> tuple[str, str]:
    """The Confirm button's value and the ts of the confirmation message."""
    call = fake.wait_for("chat.postMessage", lambda c: "Second confirmation" in c.text)[0]
    actions = next(b for b in call.args["blocks"] if b["type"] == "actions")
    assert [e["text"]["text"] for e in actions["elements"]] == ["Confirm", "Reject"]
    return actions["elements"][0]["value"], call.response["ts"]


def modal_values(target: str, ref: str, reason: str) -> dict[str, Any]:
    """The rollback form's state as Slack reports it on submission."""
    choose = {"type": "static_select", "selected_option": {"value": target}}
    return {
        "target": {"value": choose},
        "ref": {"value": {"type": "plain_text_input", "value": ref}},
        "reason": {"value": {"type": "plain_text_input", "value": reason}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "high"}}},
    }


def service_revision(bed: Bed) -> str:
    return service_state(bed.api.aws, CLUSTER, SERVICE)["taskDefinition"]


def test_a_dangerous_playbook_runs_only_after_its_confirm_click(bed: Bed) -> None:
    bot = bed.start(dangerous=True)
    before = service_revision(bed)
    value = request_rollback(bot, bed.fake, "api")
    click(bot, "rollback_approve", value, LEAD)
    confirm, confirm_ts = confirm_value(bed.fake)

    # the same approver clicks the original Approve again, another approver too, and a
    # Confirm click arrives on the approval message: none of them is the confirmation
    click(bot, "rollback_approve", value, LEAD)
    click(bot, "rollback_approve", value, SRE1)
    click(bot, "rollback_confirm", confirm, SRE1, message_ts=MESSAGE_OF[value])
    wait_until(lambda: len(responses(bed.fake, "waits for its *Confirm* click")) == 2)
    bed.fake.wait_for_response(lambda r: "does not belong" in r["text"])
    time.sleep(1.0)
    assert bed.state(value) == "awaiting_confirmation"
    assert service_revision(bed) == before
    assert not [c for c in bed.fake.calls_to("chat.postMessage") if is_completion(c)]
    refused = [
        (e.actor, e.detail.get("act"))
        for e in bed.audit()
        if e.action == "rollback.decision_refused"
    ]
    assert refused == [(LEAD, "approve"), (SRE1, "approve")]
    assert (SRE1, "rollback.forged_click") in bed.actions()
    assert ("U0LEAD", "rollback.approved") not in bed.actions()

    click(bot, "rollback_confirm", confirm, SRE1, message_ts=confirm_ts)
    bed.fake.wait_for("chat.postMessage", is_completion, timeout=30)
    assert service_revision(bed) != before
    assert bed.state(value) == "succeeded"
    assert (SRE1, "rollback.approved") in bed.actions()


def test_two_approvers_racing_still_wait_for_the_confirm_click(bed: Bed) -> None:
    bot = bed.start(dangerous=True)
    before = service_revision(bed)
    value = request_rollback(bot, bed.fake, "api")
    clickers = [
        threading.Thread(target=click, args=(bot, "rollback_approve", value, u))
        for u in (LEAD, SRE1, SRE2, LEAD)
    ]
    for t in clickers:
        t.start()
    for t in clickers:
        t.join()
    confirm_value(bed.fake)
    time.sleep(1.5)
    assert bed.state(value) == "awaiting_confirmation"
    assert service_revision(bed) == before
    asked = [c for c in bed.fake.calls_to("chat.postMessage") if "Second confirmation" in c.text]
    assert len(asked) == 1
    assert not [c for c in bed.fake.calls_to("chat.postMessage") if is_completion(c)]


def test_two_approvals_need_two_different_approvers(bed: Bed) -> None:
    bot = bed.start("    approvals: 2\n")
    before = service_revision(bed)
    value = request_rollback(bot, bed.fake, "api")
    approval = bed.fake.wait_for("chat.postMessage", lambda c: "Approval needed" in c.text)[0]
    assert "2 different approvers" in json.dumps(approval.args["blocks"])

    click(bot, "rollback_approve", value, LEAD)
    bed.fake.wait_for_response(lambda r: "Your approval is counted: 1 of 2" in r["text"])
    click(bot, "rollback_approve", value, LEAD)  # the same person again
    click(bot, "rollback_approve", value, REQUESTER)  # an approver, but the requester
    bed.fake.wait_for_response(lambda r: "You already approved" in r["text"])
    bed.fake.wait_for_response(lambda r: "someone else has to approve" in r["text"])
    shown = bed.fake.wait_for("chat.postMessage", lambda c: "approvals)" in c.text)
    assert len(shown) == 1 and "<@U0LEAD> approved" in shown[0].text and "1 of 2" in shown[0].text
    assert shown[0].args.get("thread_ts")
    time.sleep(1.0)
    assert bed.state(value) == "awaiting_approval"
    assert service_revision(bed) == before

    click(bot, "rollback_approve", value, SRE1)
    bed.fake.wait_for("chat.postMessage", lambda c: "<@U0SRE1> approved" in c.text)
    bed.fake.wait_for("chat.postMessage", is_completion, timeout=30)
    assert service_revision(bed) != before
    record = bed.record(json.loads(value)["id"])
    assert record.data["approved_by"] == [LEAD, SRE1]
    actions = bed.actions()
    assert actions.count((LEAD, "rollback.approval_counted")) == 1
    assert (SRE1, "rollback.approved") in actions
    assert (LEAD, "rollback.decision_refused") in actions
    assert (REQUESTER, "rollback.decision_refused") in actions


def test_a_request_nobody_decides_expires_after_a_reminder(bed: Bed) -> None:
    # the process default is long; this target's own timeout is four seconds
    bot = bed.start("    approval_timeout: 4\n", env={"ROLLBOT_APPROVAL_TIMEOUT": "3600"})
    value = request_rollback(bot, bed.fake, "api")
    rid = json.loads(value)["id"]
    approval = bed.fake.wait_for("chat.postMessage", lambda c: "Approval needed" in c.text)[0]
    assert "Expires at" in json.dumps(approval.args["blocks"])
    taken = bed.lock()
    assert taken is not None and taken.owner == rid

    reminder = bed.fake.wait_for("chat.postMessage", lambda c: ":alarm_clock:" in c.text)[0]
    assert "<@U0LEAD>" in reminder.text and "<!subteam^S0SRE>" in reminder.text
    assert reminder.args["thread_ts"] and reminder.at - approval.at >= 1.5
    assert bed.state(value) == "awaiting_approval"
    renewed = bed.lock()  # the watch renewed the target lock while the request waits
    assert renewed is not None and renewed.owner == rid
    assert renewed.expires_at - taken.expires_at >= 1.0

    told = bed.fake.wait_for("chat.postMessage", lambda c: c.args["channel"] == REQUESTER)[0]
    assert "expired" in told.text and told.at - approval.at >= 3.5
    wait_until(lambda: bed.state(value) == "expired", what="the expiry")
    assert bed.lock_owner() is None
    updated = bed.fake.wait_for("chat.update", lambda c: "expired" in c.text)
    assert updated[0].args["ts"] == MESSAGE_OF[value]
    assert bed.fake.wait_for(
        "chat.postMessage", lambda c: "expired" in c.text and c.args.get("thread_ts")
    )
    assert len([c for c in bed.fake.calls_to("chat.postMessage") if ":alarm_clock:" in c.text]) == 1

    click(bot, "rollback_approve", value, LEAD)  # too late
    bed.fake.wait_for_response(lambda r: "expired: nobody decided in time" in r["text"])
    time.sleep(0.5)
    assert bed.state(value) == "expired"
    assert (LEAD, "rollback.decision_refused") in bed.actions()
    assert ("rollbot", "rollback.expired") in bed.actions()

    # the target is free for a new request
    request_rollback(bot, bed.fake, "api", nth=1)


def test_only_the_requester_or_an_approver_cancels(bed: Bed) -> None:
    bot = bed.start()
    value = request_rollback(bot, bed.fake, "api")
    rid = json.loads(value)["id"]
    bot.sender.post(*slash_command("/rollback", "api", user_id=STRANGER))  # the target is busy
    bed.fake.wait_for_response(lambda r: "already has rollback" in r["text"])
    busy = [e for e in bed.audit() if e.action == "rollback.request_refused"]
    assert [(e.actor, e.subject, e.detail["why"]) for e in busy] == [(STRANGER, "api", "busy")]
    bot.sender.post(*slash_command("/rollback", f"cancel {rid}", user_id=STRANGER))
    bed.fake.wait_for_response(lambda r: "Only the requester" in r["text"])
    time.sleep(0.3)
    assert bed.state(value) == "awaiting_approval"
    refused = [e for e in bed.audit() if e.action == "rollback.cancel_refused"]
    assert [(e.actor, e.subject) for e in refused] == [(STRANGER, rid)]
    assert "neither the requester nor an approver" in refused[0].detail["why"]

    bot.sender.post(*slash_command("/rollback", f"cancel {rid}", user_id=SRE1))
    bed.fake.wait_for_response(lambda r: r["text"] == f"Rollback `{rid}` cancelled.")
    assert bed.state(value) == "cancelled" and bed.lock_owner() is None
    assert (SRE1, "rollback.cancelled") in bed.actions()
    # too late now, even for the requester: refused, and audited
    bot.sender.post(*slash_command("/rollback", f"cancel {rid}", user_id=REQUESTER))
    bed.fake.wait_for_response(lambda r: "can no longer be cancelled" in r["text"])
    wait_until(lambda: (REQUESTER, "rollback.cancel_refused") in bed.actions())


def test_requests_from_another_workspace_are_refused(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = bed.start()
    value = request_rollback(bot, bed.fake, "api")  # from the installation's own team
    monkeypatch.setitem(slack_requests.TEAM, "id", "T0EVIL")
    status, body = bot.sender.post(*slash_command("/rollback", "api", user_id=STRANGER))
    assert status == 200 and "serves another workspace" in json.dumps(body)
    click(bot, "rollback_approve", value, LEAD)  # an approver's id, sent from another team
    form = modal_values("api", "1", "from elsewhere")
    status, _ = bot.sender.post(*view_submission("rollback_modal", form, user_id=STRANGER))
    assert status == 200
    time.sleep(1.0)
    assert bed.state(value) == "awaiting_approval"
    refused = [e for e in bed.audit() if e.action == "slack.foreign_team_refused"]
    assert [(e.actor, e.subject, e.detail["kind"]) for e in refused] == [
        (STRANGER, "T0EVIL", "command"),
        (LEAD, "T0EVIL", "block_actions"),
        (STRANGER, "T0EVIL", "view_submission"),
    ]
    assert len(bed.fake.wait_for("chat.postMessage", lambda c: "Approval needed" in c.text)) == 1
    assert len(bed.fake.calls_to("chat.postMessage", ok_only=False)) == len(
        bed.fake.calls_to("chat.postMessage")
    )
    assert not [c for c in bed.fake.calls_to("chat.postMessage") if "from elsewhere" in c.text]


def test_a_replayed_request_is_processed_once(bed: Bed) -> None:
    first, second = bed.start(), bed.start()
    signed = slash_command("/rollback", "api because replayed", user_id=REQUESTER)
    first.sender.post(*signed)
    value = approval_value(bed.fake)
    click(first, "rollback_reject", value, LEAD)
    wait_until(lambda: bed.lock_owner() is None, what="the target to be free")
    # the captured request again, within Slack's five minutes, to each replica
    for bot in (first, second):
        status, _ = bot.sender.post(*signed)
        assert status == 200
    time.sleep(2.0)
    assert (
        len(bed.fake.calls_to("chat.postMessage", ok_only=False))
        == len(
            [c for c in bed.fake.calls_to("chat.postMessage") if "Approval needed" not in c.text]
        )
        + 1
    )
    assert bed.actions().count((REQUESTER, "slack.replay_refused")) == 2
    assert bed.actions().count((REQUESTER, "rollback.requested")) == 1


def test_an_org_wide_install_serves_the_listed_teams_of_its_enterprise(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed.fake.answer(
        "auth.test",
        {
            "ok": True,
            "team_id": "T0TEAM",
            "enterprise_id": "E0ORG",
            "user_id": "U0ROLLBOT",
            "bot_id": "B0ROLLBOT",
            "is_enterprise_install": True,
        },
    )
    bot = bed.start(env={"ROLLBOT_ALLOWED_TEAMS": "T0TEAM, T0OTHER"})

    def command(team: str, enterprise: str, user: str) -> None:
        monkeypatch.setitem(slack_requests.TEAM, "id", team)
        body, _ = slash_command("/rollback", "api", user_id=user)
        body += f"&enterprise_id={enterprise}".encode() if enterprise else b""
        status, _ = bot.sender.post(body, slack_requests.sign(body))
        assert status == 200

    command("T0THIRD", "E0ORG", "U0THIRD")  # same enterprise, a team not listed
    command("T0OTHER", "", "U0NOORG")  # a listed team id, but from no enterprise
    command("T0OTHER", "E0ORG", REQUESTER)  # listed, in the enterprise: served
    approval_value(bed.fake)
    time.sleep(0.5)
    refused = [e for e in bed.audit() if e.action == "slack.foreign_team_refused"]
    assert [(e.actor, e.subject) for e in refused] == [
        ("U0THIRD", "T0THIRD"),
        ("U0NOORG", "T0OTHER"),
    ]
    assert len(bed.fake.wait_for("chat.postMessage", lambda c: "Approval needed" in c.text)) == 1
