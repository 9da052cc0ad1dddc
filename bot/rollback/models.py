"""Rollback states, Slack action ids and the data kept with each rollback."""

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


class ActionId(StrEnum):
    APPROVE = "rollback_approve"
    REJECT = "rollback_reject"
    CONFIRM = "rollback_confirm"
    RETRY_FURTHER = "rollback_further"
    OPEN_FROM_DIAGNOSIS = "diagnose_rollback"


class CallbackId(StrEnum):
    ROLLBACK_MODAL = "rollback_modal"


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
    steps: list[StepRecord] = Field(default_factory=list)
    checklist: list[dict[str, Any]] = Field(default_factory=list)
    current_step: str = ""
    error: str = ""
    executor: str = ""
    status_updates: int = 0
