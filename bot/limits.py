"""Per-user and per-target rate limits on /diagnose, rollback requests and cancels.

Counted in the store (fixed windows), so every replica shares them. A refusal is a clear
"try again in N s" answer for the person asking and an audit entry."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from bot.services import Services
from bot.slack.text import code
from bot.store.audit import audit

log = logging.getLogger(__name__)


class Limited(StrEnum):
    DIAGNOSE = "diagnose"
    ROLLBACK = "rollback"
    CANCEL = "cancel"


# what the answer calls each act
WORDING = {
    Limited.DIAGNOSE: "/diagnose requests",
    Limited.ROLLBACK: "rollback requests",
    Limited.CANCEL: "cancel requests",
}


@dataclass(frozen=True)
class Refusal:
    act: Limited
    user: str
    scope: str  # "user" or "target"
    subject: str  # the target (or rollback id) asked about
    limit: int
    retry_after: float

    @property
    def seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))

    def text(self) -> str:
        what = WORDING[self.act]
        who = "from you" if self.scope == "user" else f"for {code(self.subject)}"
        return (
            f":hourglass_flowing_sand: Too many {what} {who} right now (at most {self.limit} "
            f"a window): try again in {self.seconds} s."
        )


def _limits(services: Services, act: Limited) -> tuple[int, int | None]:
    """(per user, per target) for an act; cancels are limited per user only."""
    s = services.settings
    return {
        Limited.DIAGNOSE: (s.rollbot_diagnose_per_user, s.rollbot_diagnose_per_target),
        Limited.ROLLBACK: (s.rollbot_rollback_per_user, s.rollbot_rollback_per_target),
        Limited.CANCEL: (s.rollbot_cancel_per_user, None),
    }[act]


async def check(services: Services, act: Limited, user: str, subject: str) -> Refusal | None:
    """Count this attempt; None when it may go on, else the refusal (not yet audited).

    A store that cannot count lets the attempt through: the act itself then reports the
    store's trouble, and a limit must never be why an emergency rollback cannot be asked."""
    per_user, per_target = _limits(services, act)
    window = services.settings.rollbot_rate_window_seconds
    scopes = [("user", f"{act}:user:{user}", per_user)]
    if per_target is not None:
        scopes.append(("target", f"{act}:target:{subject}", per_target))
    for scope, key, limit in scopes:
        if (left := _still_refused(key)) > 0:
            return Refusal(act, user, scope, subject, limit, left)
        try:
            answer = await services.store.rate_hit(key, limit, window)
        except Exception as exc:
            log.warning("rate limit %s not counted (store: %s); letting it through", key, exc)
            return None
        if not answer.allowed:
            _remember_refused(key, answer.retry_after)
            return Refusal(act, user, scope, subject, limit, answer.retry_after)
    return None


# Keys this replica saw refused, until their window ends: a window's count only grows, so a
# burst beyond the limit is refused here without a store round trip for each attempt.
_REFUSED_UNTIL: dict[str, float] = {}


KEPT = 10_000  # refusals remembered before the lapsed ones are swept


def _remember_refused(key: str, seconds: float) -> None:
    t = time.monotonic()
    if len(_REFUSED_UNTIL) >= KEPT:
        for lapsed in [k for k, until in _REFUSED_UNTIL.items() if until <= t]:
            del _REFUSED_UNTIL[lapsed]
    _REFUSED_UNTIL[key] = t + seconds


def forget_refusals() -> None:
    """Drop what this process remembers of refusals (a store that was emptied, tests)."""
    _REFUSED_UNTIL.clear()


def _still_refused(key: str) -> float:
    """Seconds left of a refusal this replica saw for `key`, else 0 (and forget it)."""
    until = _REFUSED_UNTIL.get(key)
    if until is None:
        return 0.0
    left = until - time.monotonic()
    if left <= 0:
        del _REFUSED_UNTIL[key]
        return 0.0
    return left


async def refused(services: Services, refusal: Refusal) -> None:
    """Put the refusal on the audit log; never raises (the person was answered already)."""
    try:
        await audit(
            services.store,
            refusal.user,
            f"{refusal.act}.rate_limited",
            refusal.subject,
            scope=refusal.scope,
            limit=refusal.limit,
            retry_after=refusal.seconds,
        )
    except Exception as exc:
        log.warning("could not audit a rate-limit refusal of %s: %s", refusal.user, exc)
