"""An executor's claim on one rollback's execution: its fencing token, the heartbeat that
renews it through short store outages, and the checks at each step boundary.

The store refuses writes carrying an older token than the current claim's, so a paused or
partitioned executor can never write over its successor. Locally, an executor whose claim
lapsed stops at the next step boundary, starts a changing step only on a freshly renewed
claim, and stops a read-only step at once when it learns that it was replaced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.rollback import records
from bot.store.base import Store
from bot.store.outage import FailureLog, is_unavailable, retrying
from playbooks.journal import JournalEntry, RunStopped

log = logging.getLogger(__name__)
T = TypeVar("T")


class LeaseLost(RunStopped):
    """This executor may not go on: its claim lapsed without renewal, or was taken over."""


class ExecutionLease:
    """The claim `token` of `owner` on rollback `rollback_id`, valid for `ttl` after each
    renewal (measured on this process's monotonic clock, from when the renewal was sent)."""

    def __init__(
        self, store: Store, rollback_id: str, owner: str, token: int, ttl: float, target: str
    ) -> None:
        self.store = store
        self.rollback_id = rollback_id
        self.owner = owner
        self.token = token
        self.ttl = ttl
        self.target = target
        self.valid_until = time.monotonic() + ttl
        self.lost_reason = ""
        self.failures = FailureLog("execution")
        self.on_lost: Callable[[], None] = lambda: None

    @property
    def lost(self) -> bool:
        return bool(self.lost_reason)

    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    def lose(self, reason: str) -> None:
        if not self.lost:
            self.lost_reason = reason
            log.warning(
                "rollback %s: executor %s (claim %d) stops: %s",
                self.rollback_id,
                self.owner,
                self.token,
                reason,
            )
            self.on_lost()

    async def renew(self) -> bool:
        """One renewal; False (and the lease lost) when a later claim replaced ours."""
        sent = time.monotonic()
        if await self.store.renew_execution(self.rollback_id, self.owner, self.token, self.ttl):
            self.valid_until = max(self.valid_until, sent + self.ttl)
            return True
        holder = await self.store.execution_claim(self.rollback_id)
        by = f"claim {holder.token} of {holder.owner}" if holder else "another claim"
        self.lose(f"it was taken over by {by}")
        return False

    async def keep(self) -> None:
        """The heartbeat: renew every third of the lease; while the store is unreachable, try
        again with backoff. It never ends on an error, only when cancelled or replaced."""
        delay = self.ttl / 3
        while not self.lost:
            await asyncio.sleep(delay)
            try:
                await self.renew()
                await records.take_target(self.store, self.target, self.rollback_id)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("rollback %s: renewing the claim failed", self.rollback_id)
                else:
                    self.failures.failed(exc)
                delay = min(0.5, self.ttl / 3)  # the store may be back any moment
                continue
            self.failures.succeeded()
            delay = self.ttl / 3

    async def before_step(self, mutating: bool) -> None:
        """The step boundary: stop when the claim is gone; renew a lapsed claim, and renew
        before a changing step so that it starts on a fresh lease."""
        if self.lost:
            raise LeaseLost(self.lost_reason)
        if not mutating and self.valid():
            return
        try:
            renewed = await retrying(self.renew, self.failures, while_=self.valid)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.lose("the state store stayed unreachable until its claim lapsed")
            raise LeaseLost(self.lost_reason) from None
        if not renewed:
            raise LeaseLost(self.lost_reason)

    async def write(self, call: Callable[[], Awaitable[T]], *, until_back: bool = False) -> T:
        """A store call of the executor, retried while the store is unreachable: while the
        claim is valid, or (`until_back`) until the store answers, for the end of a step
        that already ran; the store's fencing refuses it if a successor took over."""
        keep_trying = (lambda: not self.lost) if until_back else self.valid
        try:
            return await retrying(call, self.failures, while_=keep_trying)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.lose("the state store stayed unreachable until its claim lapsed")
            raise LeaseLost(self.lost_reason) from None


class ClaimedJournal:
    """The step journal as one claim writes it: stamped with the claim's token, refused by the
    store once a later claim exists, retried through short store outages."""

    def __init__(self, lease: ExecutionLease) -> None:
        self.lease = lease

    async def journal(self, rollback_id: str) -> list[JournalEntry]:
        return await self.lease.write(lambda: self.lease.store.journal(rollback_id))

    async def journal_append(self, rollback_id: str, entry: JournalEntry) -> int:
        stamped = entry.model_copy(update={"fence": self.lease.token})
        store, token = self.lease.store, self.lease.token

        def append() -> Awaitable[int]:
            return store.journal_append(rollback_id, stamped, fence=token)

        # a step that ran is journaled as soon as the store is back (or refused, if replaced)
        return await self.lease.write(append, until_back=entry.event == "end")
