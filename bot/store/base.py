"""The state store contract: one async interface with a Redis and an SQLite backend."""

from __future__ import annotations

import abc
import time
from typing import Any

from pydantic import BaseModel, Field

from bot.store.redacting import redact_writes
from playbooks.journal import JournalEntry, RunStopped


def now() -> float:
    return time.time()


class Record(BaseModel):
    """A stored object (a rollback, a diagnosis) with a state moved only by compare-and-set."""

    id: str
    kind: str
    state: str
    data: dict[str, Any] = Field(default_factory=dict)
    version: int = 1
    created_at: float
    updated_at: float


class AuditEntry(BaseModel):
    seq: int = 0  # assigned by the store, strictly increasing
    at: float
    actor: str  # Slack user id, "rollbot", or a replica name
    action: str
    subject: str = ""  # rollback id, target name ...
    detail: dict[str, Any] = Field(default_factory=dict)
    # the hash chain (bot/store/audit_chain.py), set by the store; "" on older entries
    prev: str = ""  # the hash of the entry appended before this one
    hash: str = ""  # sha256 over prev, seq and the fields above


class Job(BaseModel):
    """A due-job: posted by whichever replica claims it first once it is due."""

    id: str
    kind: str
    due_at: float
    payload: dict[str, Any] = Field(default_factory=dict)
    owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0


class OutboxEntry(BaseModel):
    """A Slack call that could not be made yet; delivered later, in order, per queue."""

    seq: int = 0  # assigned by the store, strictly increasing
    at: float
    queue: str  # one queue per channel, so a thread keeps its order
    method: str  # the Slack client method, e.g. "chat_postMessage"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    subject: str = ""


class RateLimit(BaseModel):
    """The answer of one counted attempt against a fixed-window limit."""

    allowed: bool
    count: int  # attempts in the current window, this one included
    retry_after: float = 0.0  # seconds until the window ends (when not allowed)


class Pruned(BaseModel):
    """What a retention pass removed."""

    diagnoses: int = 0
    journals: int = 0  # rollbacks whose step journal was removed
    outbox: int = 0


class LockInfo(BaseModel):
    name: str
    owner: str
    expires_at: float
    token: int = 0  # the fencing token, for a claim of an execution


class ExecutionClaim(BaseModel):
    """A claim on running one record's work (a rollback's playbook): its fencing token is
    greater than that of every earlier claim, and says whom it replaced."""

    token: int
    previous_owner: str = ""  # "" for the first claim
    previous_expires_at: float | None = None  # when that holder's lease ran out


class Fenced(RunStopped):
    """The store refused a write carrying a fencing token older than the current claim's."""

    def __init__(self, record_id: str, token: int, current: int, holder: str) -> None:
        super().__init__(
            f"write for {record_id} refused: its claim {token} was taken over by claim "
            f"{current} ({holder or 'unknown holder'})"
        )
        self.record_id = record_id
        self.token = token
        self.current = current
        self.holder = holder


class Store(abc.ABC):
    """Everything Rollbot keeps. Every method is atomic on its own."""

    backend: str = "abstract"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # what any backend writes passes the redactor first (bot.store.redacting)
        super().__init_subclass__(**kwargs)
        redact_writes(cls)

    # -- lifecycle
    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the backend answers; never raises."""

    # -- records
    @abc.abstractmethod
    async def create(self, record: Record, audit: AuditEntry | None = None) -> bool:
        """Insert (with `audit` appended to the audit log in the same write); False, and
        nothing written, if the id exists."""

    @abc.abstractmethod
    async def get(self, record_id: str) -> Record | None: ...

    async def transition(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str],
        to_state: str,
        patch: dict[str, Any] | None = None,
        audit: AuditEntry | None = None,
        *,
        fence: int | None = None,
    ) -> Record | None:
        """Compare-and-set: move to `to_state` only if the state is one of `from_states`.

        `patch` is merged into `data` (top-level keys) and `audit` appended to the audit log
        in the same atomic step, so a crash cannot leave a change without its audit entry.
        Returns the new record, or None (and nothing written) if the record is missing or in
        another state. With `fence`, raises Fenced (nothing written) when a later claim of
        the record exists.
        """
        return await self._change(record_id, from_states, to_state, patch or {}, audit, fence)

    async def update_data(
        self, record_id: str, patch: dict[str, Any], *, fence: int | None = None
    ) -> Record | None:
        """Merge `patch` into data without touching the state (fenced like `transition`)."""
        return await self._change(record_id, None, None, patch, None, fence)

    @abc.abstractmethod
    async def _change(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str] | None,
        to_state: str | None,
        patch: dict[str, Any],
        audit: AuditEntry | None,
        fence: int | None = None,
    ) -> Record | None:
        """One atomic read-check-write of a record (and its audit entry, if any): the state is
        checked only when `from_states` is given and changed only when `to_state` is; the
        fencing token only when `fence` is."""

    @abc.abstractmethod
    async def list_records(
        self, kind: str, *, states: set[str] | None = None, limit: int = 50
    ) -> list[Record]:
        """Newest first."""

    # -- locks
    @abc.abstractmethod
    async def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lock if free, expired, or already ours (which renews it)."""

    @abc.abstractmethod
    async def release_lock(self, name: str, owner: str) -> bool:
        """Release only if `owner` holds it."""

    @abc.abstractmethod
    async def lock_info(self, name: str) -> LockInfo | None:
        """The live holder, or None when free or expired."""

    # -- audit log (append-only)
    @abc.abstractmethod
    async def audit(self, entry: AuditEntry) -> int:
        """Append; returns the assigned sequence number."""

    @abc.abstractmethod
    async def audit_since(
        self, since: float = 0.0, subject: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        """Oldest first."""

    # -- claims of a record's execution, with fencing tokens
    @abc.abstractmethod
    async def claim_execution(
        self, record_id: str, owner: str, ttl: float
    ) -> ExecutionClaim | None:
        """Claim the record's execution for `ttl` seconds with a new, greater fencing token;
        None when another owner holds a claim that has not lapsed."""

    @abc.abstractmethod
    async def renew_execution(self, record_id: str, owner: str, token: int, ttl: float) -> bool:
        """Extend our claim to now + `ttl`; False when a later claim replaced it (even a lapsed
        claim is renewed while nobody took it over)."""

    @abc.abstractmethod
    async def release_execution(self, record_id: str, owner: str, token: int) -> bool:
        """End our claim now, so another may take over at once; False if it was not ours."""

    @abc.abstractmethod
    async def execution_claim(self, record_id: str) -> LockInfo | None:
        """The current claim (lapsed or not), or None if the record was never claimed."""

    # -- step journal
    @abc.abstractmethod
    async def journal_append(
        self, rollback_id: str, entry: JournalEntry, *, fence: int | None = None
    ) -> int:
        """Append; with `fence`, raises Fenced (nothing written) when a later claim exists."""

    @abc.abstractmethod
    async def journal(self, rollback_id: str) -> list[JournalEntry]: ...

    # -- due-jobs
    @abc.abstractmethod
    async def schedule(self, job: Job) -> None:
        """Create or replace the job with this id (unclaimed)."""

    @abc.abstractmethod
    async def claim_due(self, owner: str, lease: float, limit: int = 10) -> list[Job]:
        """Claim jobs that are due and unclaimed (or whose lease ran out); each once."""

    @abc.abstractmethod
    async def reschedule(self, job_id: str, owner: str, due_at: float) -> bool:
        """Put a claimed job back for `due_at`; only its owner may."""

    @abc.abstractmethod
    async def complete(self, job_id: str, owner: str) -> bool:
        """Delete a claimed job; only its owner may."""

    @abc.abstractmethod
    async def cancel_job(self, job_id: str) -> bool:
        """Delete regardless of owner."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> Job | None: ...

    # -- outbox
    @abc.abstractmethod
    async def outbox_put(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> int:
        """Append to the entry's queue (and `audit` to the audit log, in the same write);
        returns the entry's sequence number."""

    @abc.abstractmethod
    async def outbox_peek(self, queue: str, limit: int = 20) -> list[OutboxEntry]:
        """The oldest entries of a queue, oldest first."""

    @abc.abstractmethod
    async def outbox_drop(self, queue: str, seq: int) -> bool:
        """Remove one delivered (or undeliverable) entry."""

    @abc.abstractmethod
    async def outbox_queues(self) -> list[str]:
        """Queues that hold entries."""

    # -- idempotency keys
    @abc.abstractmethod
    async def remember(self, key: str, ttl: float) -> bool:
        """True the first time a key is seen within `ttl`, False afterwards."""

    @abc.abstractmethod
    async def note(self, keys: list[str], ttl: float) -> None:
        """Mark keys as seen for `ttl`, in one round trip; keys seen already are left as they
        are. Repeating it is harmless, so it needs no resend protection."""

    # -- rate limits (fixed windows shared by every replica)
    @abc.abstractmethod
    async def rate_hit(self, key: str, limit: int, window: float) -> RateLimit:
        """Count one attempt under `key`: allowed while at most `limit` attempts fell in the
        current window of `window` seconds (which starts with the first attempt)."""

    # -- retention (the audit log is never pruned)
    @abc.abstractmethod
    async def prune(self, before: float) -> Pruned:
        """Remove diagnoses created before `before`, the step journals of rollbacks created
        before it, and outbox entries queued before it."""
