"""The root announcement always ends on the newest state: an edit overtaken by a state change
is followed by another, and a rollback's end schedules a later edit on any replica."""

from __future__ import annotations

from typing import Any

import pytest

from bot.rollback import records
from bot.rollback.announce import announce_job, announce_state
from bot.rollback.models import RollbackData, State
from bot.services import Services
from bot.store.base import Store
from tests.testbed.slack_api import FakeSlackApi


async def waiting_rollback(services: Services) -> tuple[str, str]:
    """A rollback awaiting approval with its root posted; (id, root ts)."""
    rollback_id = records.new_id()
    data = RollbackData(
        target="api", playbook="ecs-revision", requester="U0REQ", channel="C0INCIDENT"
    )
    await records.create(services.store, rollback_id, data)
    ts = await services.slack.post("C0INCIDENT", "ROLLBACK REQUESTED", subject=rollback_id)
    await services.store.update_data(rollback_id, {"thread_ts": ts})
    moved = await records.move(
        services.store, rollback_id, {State.REQUESTED}, State.AWAITING_APPROVAL, "rollbot"
    )
    assert moved is not None
    return rollback_id, ts


def root(fake: FakeSlackApi, ts: str) -> str:
    return str(fake.messages[("C0INCIDENT", ts)]["text"])


async def test_an_edit_overtaken_by_a_state_change_is_followed_by_the_newer_one(
    services: Services, fake_slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollback_id, ts = await waiting_rollback(services)
    sent = services.slack.update
    edits: list[str] = []

    async def overtaken(channel: str, msg_ts: str, text: str, *a: Any, **kw: Any) -> None:
        await sent(channel, msg_ts, text, *a, **kw)
        edits.append(text.split("\n")[0])
        if len(edits) == 1:  # another replica decides while this edit is on its way
            await records.move(
                services.store,
                rollback_id,
                {State.AWAITING_APPROVAL},
                State.REJECTED,
                "U0APPROVE",
                approver="U0APPROVE",
            )

    monkeypatch.setattr(services.slack, "update", overtaken)
    await announce_state(services, rollback_id)
    assert [e.split(" —")[0] for e in edits] == [
        ":hourglass_flowing_sand: *WAITING FOR APPROVAL",
        ":no_entry: *REJECTED",
    ]
    assert root(fake_slack, ts).startswith(":no_entry: *REJECTED — api*")


async def test_an_ending_schedules_a_later_edit_that_any_replica_runs(
    services: Services, store: Store, fake_slack: FakeSlackApi
) -> None:
    rollback_id, ts = await waiting_rollback(services)
    await records.move(store, rollback_id, {State.AWAITING_APPROVAL}, State.CANCELLED, "U0REQ")
    job = await store.get_job(f"{records.ANNOUNCE_JOB}:{rollback_id}")
    assert job is not None and job.kind == records.ANNOUNCE_JOB
    assert root(fake_slack, ts) == "ROLLBACK REQUESTED"  # this replica died before its edit
    await announce_job(services, job)
    assert root(fake_slack, ts).startswith(":heavy_minus_sign: *CANCELLED — api*")


async def test_a_move_that_does_not_end_the_rollback_schedules_nothing(
    services: Services, store: Store
) -> None:
    rollback_id, _ = await waiting_rollback(services)
    assert await store.get_job(f"{records.ANNOUNCE_JOB}:{rollback_id}") is None
