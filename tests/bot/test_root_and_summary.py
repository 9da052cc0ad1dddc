"""The words the channel reads: the root announcement's headline for every state, and the
approval request's first section holding the whole before -> after summary within Slack's
limit."""

from __future__ import annotations

import pytest

from bot.rollback import messaging as msg
from bot.rollback.announce import headline
from bot.rollback.models import RollbackData, State, StepRecord
from bot.store.base import Record

PLAN = [
    {"step_id": "resolve", "title": "Find", "mutating": False, "calls": ["a"], "change": None},
    {
        "step_id": "update",
        "title": "Deploy",
        "mutating": True,
        "calls": ["ecs.update_service(...)"],
        "change": "svc-api: `api:42` (image `api:v2.3`) -> `api:41` (image `api:v2.2`), 2 tasks",
    },
    {"step_id": "stable", "title": "Wait", "mutating": False, "calls": ["b"], "change": None},
]


def rollback(state: str, **data: object) -> tuple[Record, RollbackData]:
    values = {"target": "api", "playbook": "ecs-revision", "requester": "U0REQ", "plan": PLAN}
    rb = RollbackData.model_validate({**values, **data})
    record = Record(
        id="rb-1234abcd",
        kind="rollback",
        state=state,
        data=rb.model_dump(),
        created_at=1000.0,
        updated_at=1000.0,
    )
    return record, rb


@pytest.mark.parametrize(
    ("state", "data", "emoji", "words"),
    [
        (State.AWAITING_APPROVAL, {}, ":hourglass_flowing_sand:", "WAITING FOR APPROVAL"),
        (State.APPROVED, {"approver": "U0LEAD"}, ":white_check_mark:", "APPROVED, STARTING"),
        (State.REJECTED, {"approver": "U0LEAD"}, ":no_entry:", "REJECTED"),
        (State.CANCELLED, {}, ":heavy_minus_sign:", "CANCELLED"),
        ("expired", {}, ":alarm_clock:", "EXPIRED WITHOUT A DECISION"),
        (
            State.SUCCEEDED,
            {"started_at": 1000.0, "finished_at": 1240.0},
            ":white_check_mark:",
            "COMPLETED IN 4m 00s",
        ),
    ],
)
def test_each_state_has_its_words_and_emoji(state: str, data: dict, emoji: str, words: str) -> None:
    record, rb = rollback(state, **data)
    head = headline(record, rb, ["U0LEAD", "S0SRE"])
    assert (head.emoji, head.text) == (emoji, words)


def test_waiting_names_the_approvers_and_running_names_the_step() -> None:
    record, rb = rollback(State.AWAITING_APPROVAL)
    assert headline(record, rb, ["U0LEAD", "S0SRE"]).people == ["U0LEAD", "S0SRE"]
    done = StepRecord(index=0, step_id="resolve", title="Find", outcome="ok")
    record, rb = rollback(State.RUNNING, steps=[done], current_step="Deploy", approver="U0LEAD")
    head = headline(record, rb, [])
    assert head.text == "RUNNING STEP 2 OF 3" and head.detail == "step 2 of 3: Deploy"


def test_failed_says_at_which_step() -> None:
    failed = StepRecord(index=1, step_id="update", title="Deploy", outcome="failed")
    record, rb = rollback(State.FAILED, steps=[failed], error="AccessDenied")
    head = headline(record, rb, [])
    assert head.text == "FAILED AT STEP 2 OF 3" and head.detail == "AccessDenied"


def test_the_summary_opens_the_approval_request_and_fits_its_first_section() -> None:
    _, rb = rollback(State.AWAITING_APPROVAL)
    first = msg.approval_blocks("rb-1234abcd", rb, ["U0LEAD"])[0]["text"]["text"]
    assert first.startswith("*What changes:*\n• svc-api: `api:42` (image `api:v2.3`) → `api:41`")
    many = [dict(PLAN[1], step_id=f"s{i}", change="x" * 290) for i in range(40)]
    _, big = rollback(State.AWAITING_APPROVAL, plan=many)
    first = msg.approval_blocks("rb-1234abcd", big, ["U0LEAD"])[0]["text"]["text"]
    assert first.startswith("*What changes:*\n• xxx") and len(first) <= 3000
    assert "Approval needed" in first  # the ask itself is never cut off
