"""The decision table: which act takes a rollback where, and from which states."""

from __future__ import annotations

from bot.rollback.models import (
    TERMINAL,
    TRANSITIONS,
    Act,
    State,
    approvals_of,
    next_state,
    states_leading,
)


def test_an_approval_is_counted_and_the_last_one_runs_or_asks_for_a_confirmation() -> None:
    assert next_state("awaiting_approval", Act.APPROVE) == State.AWAITING_APPROVAL
    assert next_state("awaiting_approval", Act.QUORUM) == State.APPROVED
    assert next_state("awaiting_approval", Act.QUORUM_DANGEROUS) == State.AWAITING_CONFIRMATION
    assert next_state("awaiting_confirmation", Act.CONFIRM) == State.APPROVED


def test_approve_and_confirm_are_different_acts() -> None:
    assert next_state("awaiting_confirmation", Act.APPROVE) is None
    assert next_state("awaiting_confirmation", Act.QUORUM) is None
    assert next_state("awaiting_approval", Act.CONFIRM) is None


def test_a_rejection_ends_either_wait() -> None:
    assert next_state(State.AWAITING_APPROVAL, Act.REJECT) == State.REJECTED
    assert next_state(State.AWAITING_CONFIRMATION, Act.REJECT) == State.REJECTED
    assert states_leading(Act.REJECT, State.REJECTED) == {
        State.AWAITING_APPROVAL,
        State.AWAITING_CONFIRMATION,
    }


def test_a_confirmation_only_comes_from_its_own_wait() -> None:
    assert states_leading(Act.CONFIRM, State.APPROVED) == {State.AWAITING_CONFIRMATION}
    assert states_leading(Act.QUORUM, State.APPROVED) == {State.AWAITING_APPROVAL}


def test_no_act_applies_once_ended_or_to_unknown_states() -> None:
    for state in TERMINAL:
        for act in Act:
            if (state, act) == (State.RUNNING, Act.REPLAN):
                continue  # the bot's own act: the world changed before the first change
            assert next_state(state, act) is None
    assert {s for s in State if next_state(s, Act.REPLAN)} == {State.RUNNING}
    assert next_state(State.RUNNING, Act.REPLAN) == State.AWAITING_APPROVAL
    for act in (Act.APPROVE, Act.CONFIRM, Act.REJECT, Act.QUORUM):
        for state in (State.REQUESTED, State.APPROVED, State.RUNNING, State.VERIFYING):
            assert next_state(state, act) is None
    assert next_state("no-such-state", Act.APPROVE) is None
    assert all(
        to not in (State.REQUESTED, State.RUNNING) or a == Act.START
        for (_, a), to in TRANSITIONS.items()
    )


def test_approvals_are_listed_first_come_first_and_once_per_person() -> None:
    data = {"target": "api", "approved_by:U2": 20.0, "approved_by:U1": 10.0, "approver": "x"}
    assert approvals_of(data) == ["U1", "U2"]
    assert approvals_of({"target": "api"}) == []
