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


TERMINAL = frozenset(
    {State.SUCCEEDED, State.FAILED, State.REJECTED, State.CANCELLED, State.INTERRUPTED}
)
CANCELLABLE = frozenset(
    {State.REQUESTED, State.AWAITING_APPROVAL, State.AWAITING_CONFIRMATION, State.APPROVED}
)
EXECUTING = frozenset({State.RUNNING, State.VERIFYING})
KIND = "rollback"


class Act(StrEnum):
    """What a person can do to a rollback awaiting a decision."""

    APPROVE = "approve"
    # the same click on a dangerous playbook: a second person's confirmation is needed
    APPROVE_DANGEROUS = "approve_dangerous"
    REJECT = "reject"
    # the world changed between approval and run: the new plan needs a new approval
    REPLAN = "replan"


# (state, act) -> next state; a pair not listed means the act no longer applies.
TRANSITIONS: dict[tuple[State, Act], State] = {
    (State.AWAITING_APPROVAL, Act.APPROVE): State.APPROVED,
    (State.AWAITING_APPROVAL, Act.APPROVE_DANGEROUS): State.AWAITING_CONFIRMATION,
    (State.AWAITING_CONFIRMATION, Act.APPROVE_DANGEROUS): State.APPROVED,
    (State.AWAITING_APPROVAL, Act.REJECT): State.REJECTED,
    (State.AWAITING_CONFIRMATION, Act.REJECT): State.REJECTED,
    # taken before the first change step, so nothing has changed yet
    (State.RUNNING, Act.REPLAN): State.AWAITING_APPROVAL,
}


def next_state(state: str, act: Act) -> State | None:
    """Where `act` takes a rollback in `state`, or None when it does not apply there."""
    return TRANSITIONS.get((State(state), act)) if state in State._value2member_map_ else None


def states_leading(act: Act, to: State) -> frozenset[State]:
    """Every state from which `act` leads to `to`: the compare-and-set's accepted sources."""
    return frozenset(s for (s, a), n in TRANSITIONS.items() if a == act and n == to)


class JobKind(StrEnum):
    EXECUTE = "rollback.execute"
    STATUS = "rollback.status"
    # notices a request whose preparing replica died before asking for approval
    PREPARATION = "rollback.preparation"


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
