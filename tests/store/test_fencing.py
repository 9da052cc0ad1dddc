"""Claims of an execution carry fencing tokens, checked on both backends: a later claim gets a
greater token, and a journal write or state change carrying an older one is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.store.audit import audit_entry
from bot.store.base import Fenced, JournalEntry, Record, Store, now
from tests.store.conftest import same_backend

TTL = 0.2
PAST_TTL = 0.35


@pytest.fixture
async def other(store: Store) -> AsyncIterator[Store]:
    """A second instance on the same file or server: another replica."""
    s = same_backend(store)
    await s.connect()
    yield s
    await s.close()


async def _record(store: Store, record_id: str = "rb-0001") -> None:
    t = now()
    rec = Record(id=record_id, kind="rollback", state="running", created_at=t, updated_at=t)
    assert await store.create(rec)


def _step(step: int, event: str = "start") -> JournalEntry:
    return JournalEntry(at=now(), step=step, step_id=f"s{step}", event=event)


async def test_claims_get_growing_tokens_and_name_whom_they_replaced(
    store: Store, other: Store
) -> None:
    first = await store.claim_execution("rb-0001", "a", TTL)
    assert first is not None and first.token == 1 and first.previous_owner == ""
    assert await other.claim_execution("rb-0001", "b", TTL) is None  # a's claim is live
    await asyncio.sleep(PAST_TTL)
    second = await other.claim_execution("rb-0001", "b", TTL)
    assert second is not None and second.token == 2
    assert second.previous_owner == "a"
    assert second.previous_expires_at is not None and second.previous_expires_at < now()
    info = await store.execution_claim("rb-0001")
    assert info is not None and (info.owner, info.token) == ("b", 2)
    assert await store.execution_claim("rb-never") is None


async def test_renewal_keeps_a_lapsed_claim_nobody_took_over(store: Store) -> None:
    claim = await store.claim_execution("rb-0001", "a", TTL)
    assert claim is not None
    await asyncio.sleep(PAST_TTL)
    assert await store.renew_execution("rb-0001", "a", claim.token, 5.0)
    info = await store.execution_claim("rb-0001")
    assert info is not None and info.expires_at > now() + 4
    assert await store.claim_execution("rb-0001", "b", TTL) is None  # renewed: still held


async def test_a_replaced_claim_cannot_renew_nor_release(store: Store, other: Store) -> None:
    old = await store.claim_execution("rb-0001", "a", TTL)
    assert old is not None
    await asyncio.sleep(PAST_TTL)
    new = await other.claim_execution("rb-0001", "b", 5.0)
    assert new is not None and new.token > old.token
    assert not await store.renew_execution("rb-0001", "a", old.token, 5.0)
    assert not await store.release_execution("rb-0001", "a", old.token)
    info = await store.execution_claim("rb-0001")
    assert info is not None and info.owner == "b" and info.expires_at > now() + 4


async def test_release_lets_the_next_claim_in_at_once(store: Store, other: Store) -> None:
    claim = await store.claim_execution("rb-0001", "a", 60.0)
    assert claim is not None
    assert await store.release_execution("rb-0001", "a", claim.token)
    assert not await store.release_execution("rb-0001", "a", claim.token)  # not held now
    nxt = await other.claim_execution("rb-0001", "b", 60.0)
    assert nxt is not None and nxt.token == claim.token + 1 and nxt.previous_owner == "a"


async def test_journal_refuses_an_older_token(store: Store, other: Store) -> None:
    await _record(store)
    old = await store.claim_execution("rb-0001", "a", TTL)
    assert old is not None
    await store.journal_append("rb-0001", _step(0), fence=old.token)
    await asyncio.sleep(PAST_TTL)
    new = await other.claim_execution("rb-0001", "b", 5.0)
    assert new is not None
    with pytest.raises(Fenced) as refused:
        await store.journal_append("rb-0001", _step(0, "end"), fence=old.token)
    assert (refused.value.token, refused.value.current) == (old.token, new.token)
    assert refused.value.holder == "b"
    await other.journal_append("rb-0001", _step(0, "end"), fence=new.token)
    events = [(e.step, e.event) for e in await store.journal("rb-0001")]
    assert events == [(0, "start"), (0, "end")]  # the refused write left nothing behind
    # writes without a token (not from an executor) are not fenced
    await store.journal_append("rb-0001", _step(1))


async def test_state_changes_refuse_an_older_token(store: Store, other: Store) -> None:
    await _record(store)
    old = await store.claim_execution("rb-0001", "a", TTL)
    assert old is not None
    moved = await store.update_data("rb-0001", {"step": 1}, fence=old.token)
    assert moved is not None and moved.data["step"] == 1
    await asyncio.sleep(PAST_TTL)
    new = await other.claim_execution("rb-0001", "b", 5.0)
    assert new is not None
    entry = audit_entry("a", "rollback.succeeded", "rb-0001")
    with pytest.raises(Fenced):
        await store.transition("rb-0001", {"running"}, "succeeded", {"x": 1}, entry, fence=1)
    with pytest.raises(Fenced):
        await store.update_data("rb-0001", {"step": 9}, fence=old.token)
    record = await store.get("rb-0001")
    assert record is not None and record.state == "running" and record.data == {"step": 1}
    assert [e.action for e in await store.audit_since(0)] == []  # nor its audit entry
    done = await other.transition(
        "rb-0001", {"running"}, "succeeded", {"x": 2}, entry, fence=new.token
    )
    assert done is not None and done.state == "succeeded" and done.data["x"] == 2
    assert [e.action for e in await store.audit_since(0)] == ["rollback.succeeded"]


async def test_concurrent_claims_hand_out_each_token_once(store: Store, other: Store) -> None:
    tokens = []
    for _ in range(5):
        claims = await asyncio.gather(
            store.claim_execution("rb-0001", "a", 0.05),
            other.claim_execution("rb-0001", "b", 0.05),
        )
        won = [c for c in claims if c is not None]
        assert len(won) == 1  # never two live claims at once
        tokens.append(won[0].token)
        await asyncio.sleep(0.1)
    assert tokens == sorted(set(tokens)) and len(tokens) == 5
