"""Rollback states, the decision table between them, and the data kept with each rollback."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class State(StrEnum):
    REQUESTED = "requested"
    AWAITING_APPROVAL = "awaiting_approval"
    # dangerous playbooks (database changes): approved once, then confirmed explicitly
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    APPROVED = "approved"
    RUNNING = "running"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    # nobody decided within the approval timeout
    EXPIRED = "expired"


TERMINAL = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.REJECTED,
        State.CANCELLED,
        State.INTERRUPTED,
        State.EXPIRED,
    }
)
# Waiting for people: these expire, and their target lock is renewed by a due-job meanwhile.
WAITING = frozenset({State.AWAITING_APPROVAL, State.AWAITING_CONFIRMATION})
EXECUTING = frozenset({State.RUNNING, State.VERIFYING})
KIND = "rollback"


class Act(StrEnum):
    """Everything that moves a rollback: what people do, and what Rollbot does on its own."""

    # people
    APPROVE = "approve"  # one approver's click on the approval message, counted
    CONFIRM = "confirm"  # the click on the confirmation message of a dangerous playbook
    REJECT = "reject"
    CANCEL = "cancel"
    # Rollbot
    PREPARED = "prepared"  # diagnostics, plan and approval request are out
    QUORUM = "quorum"  # the last approval needed came in
    QUORUM_DANGEROUS = "quorum_dangerous"  # ... of a dangerous playbook: Confirm is next
    EXPIRE = "expire"
    START = "start"
    VERIFY = "verify"
    SUCCEED = "succeed"
    FAIL = "fail"
    INTERRUPT = "interrupt"
    # the world changed between approval and run: the new plan needs a new approval
    REPLAN = "replan"


def _each(states: frozenset[State] | set[State], act: Act, to: State) -> dict:
    return {(s, act): to for s in states}


# THE table of allowed moves: (state, act) -> next state. A pair not listed means the act does
# not apply in that state (a click on a decided rollback, a Confirm before the approvals ...).
# Every act leads to exactly one state, wherever it starts.
TRANSITIONS: dict[tuple[State, Act], State] = {
    (State.REQUESTED, Act.PREPARED): State.AWAITING_APPROVAL,
    (State.AWAITING_APPROVAL, Act.APPROVE): State.AWAITING_APPROVAL,
    (State.AWAITING_APPROVAL, Act.QUORUM): State.APPROVED,
    (State.AWAITING_APPROVAL, Act.QUORUM_DANGEROUS): State.AWAITING_CONFIRMATION,
    (State.AWAITING_CONFIRMATION, Act.CONFIRM): State.APPROVED,
    **_each(WAITING, Act.REJECT, State.REJECTED),
    **_each(WAITING, Act.EXPIRE, State.EXPIRED),
    **_each(WAITING | {State.REQUESTED, State.APPROVED}, Act.CANCEL, State.CANCELLED),
    (State.APPROVED, Act.START): State.RUNNING,
    (State.RUNNING, Act.VERIFY): State.VERIFYING,
    **_each(EXECUTING, Act.SUCCEED, State.SUCCEEDED),
    **_each(EXECUTING | {State.REQUESTED, State.AWAITING_APPROVAL}, Act.FAIL, State.FAILED),
    **_each(EXECUTING | {State.REQUESTED}, Act.INTERRUPT, State.INTERRUPTED),
    # taken before the first change step, so nothing has changed yet
    (State.RUNNING, Act.REPLAN): State.AWAITING_APPROVAL,
}
CANCELLABLE = frozenset(s for (s, a) in TRANSITIONS if a == Act.CANCEL)


def next_state(state: str, act: Act) -> State | None:
    """Where `act` takes a rollback in `state`, or None when it does not apply there."""
    return TRANSITIONS.get((State(state), act)) if state in State._value2member_map_ else None


def states_leading(act: Act, to: State) -> frozenset[State]:
    """Every state from which `act` leads to `to`: the compare-and-set's accepted sources."""
    return frozenset(s for (s, a), n in TRANSITIONS.items() if a == act and n == to)


def sources(act: Act) -> frozenset[State]:
    """The states in which `act` applies."""
    return frozenset(s for (s, a) in TRANSITIONS if a == act)


def destination(act: Act) -> State:
    """The one state `act` leads to."""
    return next(n for (_, a), n in TRANSITIONS.items() if a == act)


def allowed(from_state: State, to: State) -> bool:
    """Whether some act of the table moves a rollback from `from_state` to `to`."""
    return any(s == from_state and n == to for (s, _), n in TRANSITIONS.items())


class JobKind(StrEnum):
    EXECUTE = "rollback.execute"
    STATUS = "rollback.status"
    # notices a request whose preparing replica died before asking for approval
    PREPARATION = "rollback.preparation"
    # reminds the approvers, renews the target lock and ends a request nobody decided
    APPROVAL = "rollback.approval"


class StepRecord(BaseModel):
    index: int
    step_id: str
    title: str
    outcome: str
    seconds: float = 0.0
    error: str = ""
    output: dict[str, Any] = Field(default_factory=dict)


class RollbackData(BaseModel):
    """Everything a rollback carries besides its state; stored as the record's data."""

    target: str
    playbook: str
    ref: str = "previous"
    reason: str = ""
    severity: str = "high"
    requester: str
    origin_channel: str = ""
    channel: str = ""
    thread_ts: str = ""
    approval_ts: str = ""
    dangerous: bool = False
    confirm_ts: str = ""
    confirmed_by: str = ""
    progress_ts: str = ""
    approver: str = ""
    # how many distinct approvers must approve (the target's `approvals`), and until when
    approvals_needed: int = 1
    approval_timeout: float = 0.0
    expires_at: float | None = None
    reminded: bool = False
    approved_by: list[str] = Field(default_factory=list)  # every approver, once approved
    decided_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    estimate_minutes: float = 5.0
    diagnosis_id: str = ""
    plan: list[dict[str, Any]] = Field(default_factory=list)
    plan_digest: str = ""  # of the plan's changing calls: what an approval binds to
    steps: list[StepRecord] = Field(default_factory=list)
    checklist: list[dict[str, Any]] = Field(default_factory=list)
    current_step: str = ""
    error: str = ""
    executor: str = ""
    status_updates: int = 0


# Each approval is its own top-level data key, so two approvers clicking at once are both kept.
APPROVAL_KEY = "approved_by:"


def approvals_of(data: dict[str, Any]) -> list[str]:
    """The approvers counted so far, first approval first."""
    # a mark set to None was withdrawn (the plan changed and needs new approvals)
    marks = {
        k[len(APPROVAL_KEY) :]: at
        for k, at in data.items()
        if k.startswith(APPROVAL_KEY) and at is not None
    }
    return sorted(marks, key=lambda user: (marks[user], user))
