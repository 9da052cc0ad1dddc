"""When the state store is unreachable: which errors mean that, retrying them with backoff,
one log line per failing component per interval (with a count) instead of a traceback per
poll, and the audit entries of requests refused meanwhile, written once the store is back."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot import metrics
from bot.store.base import AuditEntry, Store

log = logging.getLogger(__name__)

# The parts of a process that talk to the store on their own; the metric's label values.
COMPONENTS = ("jobs", "execution", "outbox", "delivery_notes", "listeners", "healthz")
STORE_UNREACHABLE = (
    ":warning: Rollbot's state store is unreachable: nothing was changed — try again in a minute."
)
LOG_EVERY = 10.0  # seconds between two log lines of one failing component
FIRST_DELAY, MAX_DELAY = 0.1, 1.0  # backoff between retries of a store call
# SQLite errors that mean the file cannot be written now, not that the request is wrong.
SQLITE_OUTAGES = ("locked", "busy", "full", "readonly", "read-only", "unable to open", "i/o")
# Redis replies that mean the server refuses writes for now (persistence failing, memory full
# under noeviction, a replica after a failover, loading its data after a restart).
REDIS_OUTAGES = ("MISCONF", "OOM", "READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN")
REDIS_REFUSALS = (  # the redis-py classes of those replies (LOADING is a ConnectionError)
    "ConnectionError",
    "TimeoutError",
    "OutOfMemoryError",
    "ReadOnlyError",
    "TryAgainError",
)

T = TypeVar("T")


def is_unavailable(exc: BaseException) -> bool:
    """The store cannot be reached or written now; the same call may work in a minute."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in SQLITE_OUTAGES)
    # only a process using Redis has loaded its client library
    errors = sys.modules.get("redis.exceptions")
    if errors is None or not isinstance(exc, errors.RedisError):
        return False
    # redis-py turns some reply prefixes into classes (and cuts the prefix off), not all
    refusing = tuple(getattr(errors, name) for name in REDIS_REFUSALS if hasattr(errors, name))
    if isinstance(exc, refusing):
        return True
    return str(exc).split(" ", 1)[0].upper() in REDIS_OUTAGES


def describe(exc: BaseException) -> str:
    """An error in one short line for the logs: its class and the start of its message."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class StoreWasUnreachable(ConnectionError):
    """A request refused without trying the store, which failed a moment ago (how: `cause`)."""

    def __init__(self, cause: str) -> None:
        tail = f": {cause}" if cause else ""
        super().__init__(f"the state store was unreachable a moment ago{tail}")


class StoreHealth:
    """What this process last saw of the store, and the audits waiting for it to come back."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.up_since = float("-inf")  # monotonic time the store last came back
        self.deferred: list[AuditEntry] = []
        self.cause = ""  # the last error that meant the store was unreachable, for the logs

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, StoreWasUnreachable):
            self.cause = describe(error)
        if self.down_since is None:
            self.down_since = time.monotonic()

    def succeeded(self) -> None:
        if self.down_since is not None:
            self.down_since = None
            self.up_since = time.monotonic()

    def recovered_within(self, seconds: float) -> bool:
        """The store came back less than `seconds` ago (or is down now)."""
        return self.down or time.monotonic() - self.up_since < seconds

    def defer(self, entry: AuditEntry) -> None:
        self.deferred.append(entry)

    async def flush(self, store: Store) -> int:
        """Write the deferred audit entries, oldest first; returns how many were written."""
        written = 0
        while self.deferred:
            await store.audit(self.deferred[0])
            self.deferred.pop(0)
            written += 1
        return written


HEALTH = StoreHealth()


class FailureLog:
    """One warning when a component starts failing, then at most one line per LOG_EVERY with
    the count, and one line when the store answers again."""

    def __init__(self, component: str, every: float = LOG_EVERY) -> None:
        assert component in COMPONENTS, component
        self.component = component
        self.every = every
        self.total = 0  # failures since the outage began
        self.unlogged = 0  # failures since the last line
        self.first_at: float | None = None
        self.logged_at = 0.0

    def failed(self, exc: BaseException) -> None:
        metrics.store_errors.labels(component=self.component).inc()
        HEALTH.failed(exc)
        t = time.monotonic()
        self.total += 1
        self.unlogged += 1
        reason = describe(exc)
        if self.first_at is None:
            self.first_at = self.logged_at = t
            self.unlogged = 0
            log.warning(
                "%s: state store unreachable (%s); retrying, logging a count every %gs",
                self.component,
                reason,
                self.every,
            )
        elif t - self.logged_at >= self.every:
            log.warning(
                "%s: state store still unreachable: %d failure(s) in the last %.0fs (%s)",
                self.component,
                self.unlogged,
                t - self.logged_at,
                reason,
            )
            self.logged_at, self.unlogged = t, 0

    def succeeded(self) -> None:
        HEALTH.succeeded()
        if self.first_at is None:
            return
        log.warning(
            "%s: state store reachable again after %d failure(s) in %.1fs",
            self.component,
            self.total,
            time.monotonic() - self.first_at,
        )
        self.first_at, self.total, self.unlogged = None, 0, 0


async def retrying(
    call: Callable[[], Awaitable[T]],
    failures: FailureLog,
    *,
    while_: Callable[[], bool] = lambda: True,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
) -> T:
    """`call()`, again with exponential backoff while the store is unreachable and `while_()`
    holds; the last error is raised once it no longer does. Other errors pass at once."""
    delay = first_delay
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            failures.failed(exc)
            if not while_():
                raise
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        failures.succeeded()
        return result
