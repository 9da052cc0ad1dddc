"""The state table, every state against every act: written out here once more by hand, so a
change to `models.TRANSITIONS` must be made twice (and in the README) on purpose."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.rollback import records
from bot.rollback.models import TRANSITIONS, Act, State, destination, next_state, sources
from bot.store.sqlite import SqliteStore

S = State
# state -> {act: next state}; every pair not listed must be refused
EXPECTED: dict[State, dict[Act, State]] = {
    S.REQUESTED: {
        Act.PREPARED: S.AWAITING_APPROVAL,
        Act.CANCEL: S.CANCELLED,
        Act.FAIL: S.FAILED,
        Act.INTERRUPT: S.INTERRUPTED,
    },
    S.AWAITING_APPROVAL: {
        Act.APPROVE: S.AWAITING_APPROVAL,
        Act.QUORUM: S.APPROVED,
        Act.QUORUM_DANGEROUS: S.AWAITING_CONFIRMATION,
        Act.REJECT: S.REJECTED,
        Act.CANCEL: S.CANCELLED,
        Act.EXPIRE: S.EXPIRED,
        Act.FAIL: S.FAILED,
    },
    S.AWAITING_CONFIRMATION: {
        Act.CONFIRM: S.APPROVED,
        Act.REJECT: S.REJECTED,
        Act.CANCEL: S.CANCELLED,
        Act.EXPIRE: S.EXPIRED,
    },
    S.APPROVED: {Act.START: S.RUNNING, Act.CANCEL: S.CANCELLED},
    S.RUNNING: {
        Act.VERIFY: S.VERIFYING,
        Act.SUCCEED: S.SUCCEEDED,
        Act.FAIL: S.FAILED,
        Act.INTERRUPT: S.INTERRUPTED,
        # before the first change, the plan made again differs from the approved one
        Act.REPLAN: S.AWAITING_APPROVAL,
    },
    S.VERIFYING: {Act.SUCCEED: S.SUCCEEDED, Act.FAIL: S.FAILED, Act.INTERRUPT: S.INTERRUPTED},
    S.SUCCEEDED: {},
    S.FAILED: {},
    S.REJECTED: {},
    S.CANCELLED: {},
    S.INTERRUPTED: {},
    S.EXPIRED: {},
}


def test_the_table_names_every_state() -> None:
    assert set(EXPECTED) == set(State)


@pytest.mark.parametrize(("state", "act"), list(itertools.product(State, Act)))
def test_every_state_and_act(state: State, act: Act) -> None:
    assert next_state(state.value, act) == EXPECTED[state].get(act)


def test_the_code_table_has_nothing_more() -> None:
    assert {(s, a): n for s, acts in EXPECTED.items() for a, n in acts.items()} == TRANSITIONS


@pytest.mark.parametrize("act", list(Act))
def test_each_act_leads_to_one_state(act: Act) -> None:
    targets = {n for (_, a), n in TRANSITIONS.items() if a == act}
    assert targets == {destination(act)}
    assert sources(act) == {s for s, acts in EXPECTED.items() if act in acts}


async def test_a_move_outside_the_table_is_refused(tmp_path: object) -> None:
    store = SqliteStore(tmp_path / "t.db")  # type: ignore[operator]
    await store.connect()
    try:
        for bad in ((S.AWAITING_CONFIRMATION, S.AWAITING_CONFIRMATION), (S.EXPIRED, S.APPROVED)):
            with pytest.raises(ValueError, match="no act moves"):
                await records.move(store, "rb-00000000", {bad[0]}, bad[1], "U0")
    finally:
        await store.close()


def test_the_readme_documents_this_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = readme.split("| state | act → next state |", 1)[1].split("\n\n", 1)[0]
    documented: dict[tuple[State, Act], State] = {}
    for row in rows.strip().splitlines()[1:]:
        states, moves = (cell.strip() for cell in row.strip("|").split("|"))
        for move in moves.split(" · ") if moves != "none (final)" else []:
            act, to = move.split(" (")[0].split(" → ")
            for state in states.split(", "):
                documented[(State(state), Act(act))] = State(to.split(" ")[0])
    assert documented == TRANSITIONS
