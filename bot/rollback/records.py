"""Store operations for rollbacks: create, move state by compare-and-set, locks, queries."""

from __future__ import annotations

import re
import secrets
from typing import Any

from bot.rollback.models import (
    KIND,
    TERMINAL,
    Act,
    RollbackData,
    State,
    allowed,
    destination,
    sources,
)
from bot.store.audit import audit_entry
from bot.store.base import Job, Record, Store, now

# A target lock outlives any single replica only this long without being renewed.
TARGET_LOCK_TTL = 4 * 3600.0


# When a rollback ends, a due-job edits its root announcement once more a little later, on
# whichever replica is alive: a replica killed between the move and its own edit cannot leave
# the channel showing an older state (bot.rollback.announce runs it).
ANNOUNCE_JOB = "rollback.announce"
ANNOUNCE_GRACE = 5.0

# What a rollback id looks like (see new_id); anything else in a button is forged.
ID = re.compile(r"^rb-[a-z0-9]{4,32}$")


def new_id() -> str:
    return "rb-" + secrets.token_hex(4)


def target_lock(target: str) -> str:
    return f"target:{target}"


def prepare_lock(rollback_id: str) -> str:
    return f"prepare:{rollback_id}"


def exec_lock(rollback_id: str) -> str:
    return f"exec:{rollback_id}"


def data_of(record: Record) -> RollbackData:
    return RollbackData.model_validate(record.data)


async def create(store: Store, rollback_id: str, data: RollbackData) -> Record:
    t = now()
    record = Record(
        id=rollback_id,
        kind=KIND,
        state=State.REQUESTED,
        data=data.model_dump(),
        created_at=t,
        updated_at=t,
    )
    requested = audit_entry(
        data.requester,
        "rollback.requested",
        rollback_id,
        target=data.target,
        ref=data.ref,
        reason=data.reason,
    )
    if not await store.create(record, requested):
        raise RuntimeError(f"rollback id {rollback_id} already exists")
    return record


async def move(
    store: Store,
    rollback_id: str,
    from_states: set[State] | frozenset[State],
    to: State,
    actor: str,
    *,
    fence: int | None = None,
    **patch: Any,
) -> Record | None:
    """Compare-and-set the state; only the transition that won is audited, in the same write.
    An executor passes its claim's `fence`: the store refuses the move once it was replaced.
    Only moves the table in `models.TRANSITIONS` allows."""
    refused = [s for s in from_states if not allowed(s, to)]
    if refused:
        raise ValueError(f"no act moves a rollback from {refused[0].value} to {to.value}")
    action = f"rollback.{to.value}"
    return await _write(store, rollback_id, from_states, to, actor, action, patch, fence)


async def apply(
    store: Store, rollback_id: str, act: Act, actor: str, action: str = "", **patch: Any
) -> Record | None:
    """Do `act` by the table: compare-and-set from every state it applies in to the one it
    leads to; None when the rollback is in none of them (nothing written then)."""
    to = destination(act)
    action = action or f"rollback.{to.value}"
    return await _write(store, rollback_id, sources(act), to, actor, action, patch)


async def _write(
    store: Store,
    rollback_id: str,
    from_states: set[State] | frozenset[State],
    to: State,
    actor: str,
    action: str,
    patch: dict[str, Any],
    fence: int | None = None,
) -> Record | None:
    if to in TERMINAL:  # before the move: no crash can fall between the two
        await store.schedule(
            Job(
                id=f"{ANNOUNCE_JOB}:{rollback_id}",
                kind=ANNOUNCE_JOB,
                due_at=now() + ANNOUNCE_GRACE,
                payload={"id": rollback_id},
            )
        )
    detail = {k: v for k, v in patch.items() if k in ("approver", "error", "reason", "why")}
    entry = audit_entry(actor, action, rollback_id, **detail)
    states = {s.value for s in from_states}
    return await store.transition(rollback_id, states, to.value, patch, entry, fence=fence)


async def active_for_target(store: Store, target: str) -> Record | None:
    """The unfinished rollback holding this target, if any."""
    info = await store.lock_info(target_lock(target))
    if info is None:
        return None
    record = await store.get(info.owner)
    if record is None or record.state in TERMINAL:
        return None
    return record


async def take_target(store: Store, target: str, rollback_id: str) -> bool:
    return await store.acquire_lock(target_lock(target), rollback_id, TARGET_LOCK_TTL)


async def release_target(store: Store, target: str, rollback_id: str) -> None:
    await store.release_lock(target_lock(target), rollback_id)


async def list_rollbacks(
    store: Store, *, active: bool | None = None, target: str | None = None, limit: int = 50
) -> list[Record]:
    records = await store.list_records(KIND, limit=500 if target else limit)
    if active is True:
        records = [r for r in records if r.state not in TERMINAL]
    elif active is False:
        records = [r for r in records if r.state in TERMINAL]
    if target:
        records = [r for r in records if r.data.get("target") == target]
    return records[:limit]
