"""The step journal a playbook run writes: its entry type and what it needs from a store."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field


class JournalEntry(BaseModel):
    """One step event of a playbook run: written before and after each step."""

    seq: int = 0
    at: float
    step: int
    step_id: str
    event: str  # "start" | "end"
    outcome: str = ""  # "ok" | "failed" | "skipped" (on "end")
    output: dict[str, Any] = Field(default_factory=dict)
    # the fencing token of the claim that wrote it (0: written without one)
    fence: int = 0


class RunStopped(Exception):
    """The run must stop where it is, without finishing: this runner may no longer write
    (its claim on the run was taken over, or it could not renew it in time)."""


class Journal(Protocol):
    """Durable, ordered step events per rollback; the bot's store is one."""

    async def journal_append(self, rollback_id: str, entry: JournalEntry) -> int: ...

    async def journal(self, rollback_id: str) -> list[JournalEntry]: ...
