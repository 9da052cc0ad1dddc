"""The decision table: which act takes a rollback where, and from which states."""

from __future__ import annotations

from bot.rollback.models import TERMINAL, TRANSITIONS, Act, State, next_state, states_leading


def test_an_approval_runs_or_asks_for_a_confirmation() -> None:
    assert next_state("awaiting_approval", Act.APPROVE) == State.APPROVED
    assert next_state("awaiting_approval", Act.APPROVE_DANGEROUS) == State.AWAITING_CONFIRMATION
    assert next_state("awaiting_confirmation", Act.APPROVE_DANGEROUS) == State.APPROVED


def test_a_rejection_ends_either_wait() -> None:
    assert next_state(State.AWAITING_APPROVAL, Act.REJECT) == State.REJECTED
    assert next_state(State.AWAITING_CONFIRMATION, Act.REJECT) == State.REJECTED
    assert states_leading(Act.REJECT, State.REJECTED) == {
        State.AWAITING_APPROVAL,
        State.AWAITING_CONFIRMATION,
    }


def test_a_confirmation_only_comes_from_its_own_wait() -> None:
    assert states_leading(Act.APPROVE_DANGEROUS, State.APPROVED) == {State.AWAITING_CONFIRMATION}
    assert states_leading(Act.APPROVE, State.APPROVED) == {State.AWAITING_APPROVAL}


def test_no_act_applies_once_decided_or_to_unknown_states() -> None:
    for state in [*TERMINAL, State.REQUESTED, State.APPROVED, State.RUNNING, State.VERIFYING]:
        for act in Act:
            if (state, act) == (State.RUNNING, Act.REPLAN):
                continue  # the bot's own act: the world changed before the first change
            assert next_state(state, act) is None
    assert {s for s in State if next_state(s, Act.REPLAN)} == {State.RUNNING}
    assert next_state(State.RUNNING, Act.REPLAN) == State.AWAITING_APPROVAL
    assert next_state("no-such-state", Act.APPROVE) is None
    assert all(to not in (State.REQUESTED, State.RUNNING) for to in TRANSITIONS.values())
