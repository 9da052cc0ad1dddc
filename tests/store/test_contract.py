"""The Store contract, checked on both backends: an SQLite file and a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from bot.store.base import AuditEntry, Job, JournalEntry, OutboxEntry, Record, Store, now
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.store.conftest import Opener, same_backend
from tests.testbed.ports import free_port

TTL = 0.2  # short lock, lease and key lifetimes; tests sleep past them
PAST_TTL = 0.35


def where(store: Store) -> str:
    """The file or URL a separate process opens to reach the same backend."""
    if isinstance(store, SqliteStore):
        return store.path
    assert isinstance(store, RedisStore)
    return store.url


def rec(record_id: str = "rb-1", state: str = "requested", **data: Any) -> Record:
    t = now()
    return Record(id=record_id, kind="rollback", state=state, data=data, created_at=t, updated_at=t)


def entry(i: int, *, at: float, subject: str = "rb-1") -> AuditEntry:
    return AuditEntry(at=at, actor="U0LEAD", action=f"act-{i}", subject=subject, detail={"i": i})


def job(job_id: str, due_in: float = -1.0, **payload: Any) -> Job:
    return Job(id=job_id, kind="status", due_at=now() + due_in, payload=payload)


# -- lifecycle


async def test_ping_true_when_connected_false_when_closed(store: Store) -> None:
    assert await store.ping()
    await store.close()
    assert await store.ping() is False
    await store.close()  # closing twice is harmless
    never = same_backend(store)
    assert await never.ping() is False


async def test_ping_false_on_unreachable_backend_without_raising(tmp_path: Path) -> None:
    redis_store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", ping_timeout=1.0)
    await redis_store.connect()  # connects lazily: nothing listens there
    started = time.monotonic()
    assert await redis_store.ping() is False
    assert time.monotonic() - started < 3
    await redis_store.close()

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    sqlite_store = SqliteStore(blocked / "rollbot.db")
    with pytest.raises(OSError):
        await sqlite_store.connect()
    assert await sqlite_store.ping() is False


async def test_methods_refuse_to_run_unconnected(store: Store) -> None:
    never = same_backend(store)
    with pytest.raises(RuntimeError, match="not connected"):
        await never.get("rb-1")
    with pytest.raises(RuntimeError, match="not connected"):
        await never.create(rec())


# -- records


async def test_create_then_get_round_trips_exactly(store: Store) -> None:
    data = {
        "empty_list": [],
        "empty_map": {},
        "nested": {"steps": [{"ok": True, "n": None}]},
        "float": 0.1 + 0.2,
        "big": 2**60,
        'odd "key"/\\ ✓': 'value with "quotes", \\ and 🚀\n',
    }
    original = rec(**data)
    assert await store.create(original)
    got = await store.get("rb-1")
    assert got == original
    assert got is not None and got.data["empty_list"] == [] and got.data["empty_map"] == {}
    assert await store.get("rb-missing") is None


async def test_create_refuses_an_existing_id_and_writes_nothing(store: Store) -> None:
    assert await store.create(rec(target="api"))
    assert not await store.create(rec(state="running", target="other"))
    got = await store.get("rb-1")
    assert got is not None and got.state == "requested" and got.data == {"target": "api"}
    assert [r.id for r in await store.list_records("rollback")] == ["rb-1"]


async def test_transition_moves_state_merges_patch_and_bumps_version(store: Store) -> None:
    created = rec(steps=[1], keep="me")
    await store.create(created)
    moved = await store.transition(
        "rb-1", {"requested", "approved"}, "awaiting_approval", {"steps": [], "ts": "1.2"}
    )
    assert moved is not None
    assert moved.state == "awaiting_approval" and moved.version == 2
    # top-level merge: a patched key is replaced whole, the others stay
    assert moved.data == {"steps": [], "keep": "me", "ts": "1.2"}
    assert moved.created_at == created.created_at and moved.updated_at >= created.updated_at
    assert await store.get("rb-1") == moved
    again = await store.transition("rb-1", frozenset({"awaiting_approval"}), "approved")
    assert again is not None and again.version == 3 and again.data == moved.data


async def test_transition_refused_from_another_state_changes_nothing(store: Store) -> None:
    await store.create(rec(state="running"))
    assert await store.transition("rb-1", {"requested"}, "approved", {"x": 1}) is None
    assert await store.transition("rb-1", set(), "approved") is None
    assert await store.transition("rb-missing", {"requested"}, "approved") is None
    got = await store.get("rb-1")
    assert got is not None and (got.state, got.version, got.data) == ("running", 1, {})


def said(action: str, **detail: Any) -> AuditEntry:
    return AuditEntry(at=now(), actor="U1", action=action, subject="rb-1", detail=detail)


async def test_a_change_and_its_audit_entry_are_written_together_or_not_at_all(
    store: Store,
) -> None:
    # the data carries as many pairs as the entry's own args, and text a script could misread
    assert await store.create(rec(a="{x}", b=[]), said("requested", why='"{{ x }}"'))
    assert not await store.create(rec(), said("requested again"))
    moved = await store.transition("rb-1", {"requested"}, "approved", {"c": 1}, said("approved"))
    assert moved is not None and moved.data == {"a": "{x}", "b": [], "c": 1}
    assert await store.transition("rb-1", {"requested"}, "rejected", {}, said("rejected")) is None
    assert await store.transition("rb-9", {"requested"}, "rejected", {}, said("rejected")) is None
    await store.transition("rb-1", {"approved"}, "running")  # without one, the log is left alone
    log = await store.audit_since(subject="rb-1")
    assert [(e.action, e.detail) for e in log] == [
        ("requested", {"why": '"{{ x }}"'}),
        ("approved", {}),
    ]
    got = await store.get("rb-1")  # the entry's args did not leak into the record
    assert got is not None and (got.state, got.version) == ("running", 3)
    assert got.data == {"a": "{x}", "b": [], "c": 1}


async def test_update_data_keeps_state(store: Store) -> None:
    await store.create(rec(state="running", a=1))
    patched = await store.update_data("rb-1", {"b": {"c": []}})
    assert patched is not None
    assert (patched.state, patched.version, patched.data) == (
        "running",
        2,
        {"a": 1, "b": {"c": []}},
    )
    assert await store.get("rb-1") == patched
    assert await store.update_data("rb-missing", {"b": 1}) is None


async def test_concurrent_transitions_on_one_instance_exactly_one_wins(store: Store) -> None:
    await store.create(rec(state="awaiting_approval"))
    results = await asyncio.gather(
        *(
            store.transition("rb-1", {"awaiting_approval"}, "approved", {"by": f"U{i}"})
            for i in range(10)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await store.get("rb-1") == winners[0]
    assert winners[0].version == 2


async def test_concurrent_transitions_across_instances_exactly_one_wins(
    store: Store, open_another: Opener
) -> None:
    replicas = [store, *[await open_another() for _ in range(4)]]
    await store.create(rec(state="awaiting_approval"))
    results = await asyncio.gather(
        *(
            r.transition("rb-1", {"awaiting_approval"}, "approved", {"by": f"U{i}-{n}"})
            for i, r in enumerate(replicas)
            for n in range(3)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    final = await replicas[-1].get("rb-1")
    assert final == winners[0] and final.version == 2


async def test_concurrent_patches_are_never_lost(store: Store, open_another: Opener) -> None:
    replicas = [store, await open_another(), await open_another()]
    await store.create(rec(state="running"))
    await asyncio.gather(*(replicas[i % 3].update_data("rb-1", {f"k{i}": i}) for i in range(30)))
    final = await store.get("rb-1")
    assert final is not None
    assert final.data == {f"k{i}": i for i in range(30)} and final.version == 31


async def test_cancelled_calls_leave_the_store_usable(store: Store) -> None:
    await store.create(rec(state="running"))
    # cancel after growing delays, so some calls are cut off mid-way through their write
    for i in range(30):
        call = asyncio.ensure_future(store.update_data("rb-1", {f"k{i}": i}))
        await asyncio.sleep(i * 0.0001)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    final = await store.update_data("rb-1", {"after": True})
    assert final is not None and final.data["after"] is True
    # each patch was applied whole or not at all: its key and its version bump together
    applied = [k for k in final.data if k.startswith("k")]
    assert final.version == 1 + len(applied) + 1


async def test_list_records_newest_first_with_limit_and_states(store: Store) -> None:
    for i in range(5):
        await store.create(rec(f"rb-{i}", state="running" if i in (0, 3) else "succeeded"))
        await asyncio.sleep(0.005)
    await store.create(
        Record(id="dg-1", kind="diagnosis", state="done", created_at=now(), updated_at=now())
    )
    assert [r.id for r in await store.list_records("rollback")] == [
        f"rb-{i}" for i in (4, 3, 2, 1, 0)
    ]
    assert [r.id for r in await store.list_records("rollback", limit=2)] == ["rb-4", "rb-3"]
    running = await store.list_records("rollback", states={"running"})
    assert [r.id for r in running] == ["rb-3", "rb-0"]
    assert [r.id for r in await store.list_records("rollback", states={"running"}, limit=1)] == [
        "rb-3"
    ]
    assert await store.list_records("rollback", states=set()) == []
    assert [r.id for r in await store.list_records("diagnosis")] == ["dg-1"]
    assert await store.list_records("nothing") == []
    # a listing reflects later transitions
    await store.transition("rb-4", {"succeeded"}, "running")
    newest_running = await store.list_records("rollback", states={"running"}, limit=1)
    assert [r.id for r in newest_running] == ["rb-4"]


async def test_state_filter_finds_old_records_behind_many_newer_ones(store: Store) -> None:
    t = now()
    for i in range(250):
        state = "running" if i < 2 else "succeeded"
        await store.create(
            Record(id=f"rb-{i:03}", kind="rollback", state=state, created_at=t + i, updated_at=t)
        )
    found = await store.list_records("rollback", states={"running"}, limit=5)
    assert [r.id for r in found] == ["rb-001", "rb-000"]


# -- locks


async def test_lock_refused_to_others_until_it_expires(store: Store, open_another: Opener) -> None:
    a, b = store, await open_another()
    assert await a.acquire_lock("target:api", "A", ttl=TTL)
    assert not await b.acquire_lock("target:api", "B", ttl=5)
    info = await b.lock_info("target:api")
    assert info is not None and info.owner == "A" and info.name == "target:api"
    assert info.expires_at > now()
    await asyncio.sleep(PAST_TTL)
    assert await b.lock_info("target:api") is None
    assert await b.acquire_lock("target:api", "B", ttl=5)
    assert not await a.acquire_lock("target:api", "A", ttl=5)
    info = await a.lock_info("target:api")
    assert info is not None and info.owner == "B"


async def test_owner_renews_its_lock(store: Store) -> None:
    assert await store.acquire_lock("L", "A", ttl=TTL)
    first = await store.lock_info("L")
    await asyncio.sleep(TTL / 2)
    assert await store.acquire_lock("L", "A", ttl=TTL)
    renewed = await store.lock_info("L")
    assert first is not None and renewed is not None and renewed.expires_at > first.expires_at
    await asyncio.sleep(TTL * 0.75)  # past the first expiry, within the renewed one
    assert not await store.acquire_lock("L", "B", ttl=TTL)


async def test_release_only_by_the_holder(store: Store, open_another: Opener) -> None:
    b = await open_another()
    assert await store.acquire_lock("L", "A", ttl=5)
    assert not await b.release_lock("L", "B")
    assert (await b.lock_info("L")).owner == "A"  # type: ignore[union-attr]
    assert await store.release_lock("L", "A")
    assert await store.lock_info("L") is None
    assert not await store.release_lock("L", "A")
    assert not await store.release_lock("never-taken", "A")
    assert await b.acquire_lock("L", "B", ttl=5)


async def test_a_lapsed_lock_is_not_released_by_its_old_owner(store: Store) -> None:
    assert await store.acquire_lock("L", "A", ttl=TTL)
    await asyncio.sleep(PAST_TTL)
    assert not await store.release_lock("L", "A")
    assert await store.acquire_lock("L", "B", ttl=5)


async def test_concurrent_lock_attempts_one_winner(store: Store, open_another: Opener) -> None:
    replicas = [store, *[await open_another() for _ in range(3)]]
    results = await asyncio.gather(
        *(r.acquire_lock("L", f"R{i}-{n}", ttl=5) for i, r in enumerate(replicas) for n in range(4))
    )
    assert results.count(True) == 1


# -- audit log


async def test_audit_sequence_increases_and_entries_round_trip(store: Store) -> None:
    t0 = now()
    seqs = [await store.audit(entry(i, at=t0 + i)) for i in range(5)]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    got = await store.audit_since()
    assert [e.seq for e in got] == seqs
    chained = {"seq": seqs[2], "prev": got[1].hash, "hash": got[2].hash}  # links set on append
    assert got[2] == entry(2, at=t0 + 2).model_copy(update=chained)


async def test_audit_since_filters_by_time_and_subject_oldest_first(store: Store) -> None:
    t0 = now()
    for i in range(6):
        await store.audit(entry(i, at=t0 + i, subject="rb-1" if i % 2 else "rb-2"))
    assert [e.action for e in await store.audit_since(t0 + 2)] == [
        "act-2",
        "act-3",
        "act-4",
        "act-5",
    ]
    assert [e.action for e in await store.audit_since(subject="rb-1")] == [
        "act-1",
        "act-3",
        "act-5",
    ]
    assert [e.action for e in await store.audit_since(t0 + 2, subject="rb-2")] == ["act-2", "act-4"]
    assert [e.action for e in await store.audit_since(limit=2)] == ["act-0", "act-1"]
    assert await store.audit_since(t0 + 100) == []
    assert await store.audit_since(subject="rb-none") == []


async def test_audit_order_is_append_order_not_event_time(store: Store) -> None:
    t0 = now()
    late = await store.audit(entry(0, at=t0 + 10))
    early = await store.audit(entry(1, at=t0))
    assert early > late
    assert [e.seq for e in await store.audit_since(t0)] == [late, early]


async def test_concurrent_audit_appends_get_distinct_increasing_seqs(
    store: Store, open_another: Opener
) -> None:
    replicas = [store, await open_another(), await open_another()]
    t0 = now()
    seqs = await asyncio.gather(
        *(replicas[i % 3].audit(entry(i, at=t0, subject=f"s{i}")) for i in range(30))
    )
    assert len(set(seqs)) == 30
    logged = await store.audit_since(t0)
    assert [e.seq for e in logged] == sorted(seqs)
    assert {e.action for e in logged} == {f"act-{i}" for i in range(30)}


def test_the_audit_log_has_no_way_to_change_or_delete_entries() -> None:
    for cls in (Store, SqliteStore, RedisStore):
        names = [n for n in dir(cls) if "audit" in n.lower() and not n.startswith("_")]
        assert sorted(names) == ["audit", "audit_since"], cls


# -- step journal


async def test_journal_keeps_order_per_rollback(store: Store) -> None:
    events = [("start", ""), ("end", "ok"), ("start", "")]
    seqs = []
    for i, (event, outcome) in enumerate(events):
        step = JournalEntry(
            at=now(),
            step=i // 2,
            step_id=f"s{i // 2}",
            event=event,
            outcome=outcome,
            output={"n": i},
        )
        seqs.append(await store.journal_append("rb-1", step))
        await store.journal_append("rb-2", step)
    assert all(a < b for a, b in itertools.pairwise(seqs))
    entries = await store.journal("rb-1")
    assert [(e.event, e.outcome, e.output) for e in entries] == [
        ("start", "", {"n": 0}),
        ("end", "ok", {"n": 1}),
        ("start", "", {"n": 2}),
    ]
    assert [e.seq for e in entries] == seqs
    assert len(await store.journal("rb-2")) == 3
    assert await store.journal("rb-none") == []


# -- outbox


def slack_call(queue: str, i: int) -> OutboxEntry:
    kwargs = {"channel": queue, "text": f"message {i} <!channel> {{{{ x }}}}", "thread_ts": "1.2"}
    return OutboxEntry(at=now(), queue=queue, method="chat_postMessage", kwargs=kwargs)


async def test_outbox_keeps_order_per_queue_and_drops_one_entry(store: Store) -> None:
    seqs = [await store.outbox_put(slack_call("C1", i)) for i in range(3)]
    await store.outbox_put(slack_call("C2", 9))
    assert all(a < b for a, b in itertools.pairwise(seqs))
    head = await store.outbox_peek("C1")
    assert [e.seq for e in head] == seqs
    assert [e.kwargs["text"] for e in head] == [
        f"message {i} <!channel> {{{{ x }}}}" for i in range(3)
    ]
    assert head[0].method == "chat_postMessage" and head[0].queue == "C1"
    assert [e.seq for e in await store.outbox_peek("C1", limit=1)] == seqs[:1]
    assert sorted(await store.outbox_queues()) == ["C1", "C2"]

    assert await store.outbox_drop("C1", seqs[1])
    assert not await store.outbox_drop("C1", seqs[1])  # gone already
    assert not await store.outbox_drop("C2", seqs[0])  # another queue's number
    assert [e.seq for e in await store.outbox_peek("C1")] == [seqs[0], seqs[2]]
    for seq in (seqs[0], seqs[2]):
        assert await store.outbox_drop("C1", seq)
    assert await store.outbox_peek("C1") == []
    assert await store.outbox_queues() == ["C2"]


async def test_an_outbox_entry_and_its_audit_entry_are_written_together(store: Store) -> None:
    before = await store.audit(AuditEntry(at=now(), actor="a", action="x", subject="rb-1"))
    queued = AuditEntry(
        at=now(), actor="rollbot", action="slack.queued", subject="rb-1", detail={"text": "{x}"}
    )
    seq = await store.outbox_put(slack_call("C1", 1), queued)
    assert [e.seq for e in await store.outbox_peek("C1")] == [seq]
    entries = await store.audit_since(subject="rb-1")
    assert [(e.action, e.detail) for e in entries] == [("x", {}), ("slack.queued", {"text": "{x}"})]
    assert entries[0].seq == before and entries[1].seq > before
    await store.outbox_put(slack_call("C1", 2))  # without one, the log is left alone
    assert len(await store.audit_since()) == 2


async def test_outbox_entries_survive_a_reconnect(store: Store, open_another: Opener) -> None:
    seq = await store.outbox_put(slack_call("C1", 1))
    other = await open_another()
    assert [e.seq for e in await other.outbox_peek("C1")] == [seq]


# -- due-jobs


async def test_schedule_get_and_replace(store: Store) -> None:
    due = now() + 60
    await store.schedule(Job(id="j", kind="status", due_at=due, payload={"rb": "rb-1", "e": []}))
    got = await store.get_job("j")
    assert got == Job(id="j", kind="status", due_at=due, payload={"rb": "rb-1", "e": []})
    await store.schedule(job("j", payload_key="new"))
    claimed = await store.claim_due("A", lease=30)
    assert [j.id for j in claimed] == ["j"]
    # scheduling again replaces the job and drops the claim
    await store.schedule(Job(id="j", kind="other", due_at=due))
    got = await store.get_job("j")
    assert got is not None and (got.kind, got.owner, got.attempts) == ("other", None, 0)
    assert await store.get_job("missing") is None


async def test_claim_due_takes_only_due_jobs_and_marks_them(store: Store) -> None:
    await store.schedule(job("due-1", due_in=-2, n=1))
    await store.schedule(job("due-2", due_in=-1, n=2))
    await store.schedule(job("later", due_in=60))
    before = now()
    claimed = await store.claim_due("A", lease=30, limit=10)
    assert [(j.id, j.payload, j.owner, j.attempts) for j in claimed] == [
        ("due-1", {"n": 1}, "A", 1),
        ("due-2", {"n": 2}, "A", 1),
    ]
    for j in claimed:
        assert j.lease_until is not None and before + 30 <= j.lease_until <= now() + 30
        assert await store.get_job(j.id) == j
    assert await store.claim_due("B", lease=30) == []  # leased: nobody else gets them
    later = await store.get_job("later")
    assert later is not None and later.owner is None and later.attempts == 0


async def test_claim_due_respects_limit(store: Store) -> None:
    for i in range(5):
        await store.schedule(job(f"j{i}", due_in=-5 + i * 0.1))
    first = await store.claim_due("A", lease=30, limit=2)
    assert [j.id for j in first] == ["j0", "j1"]
    assert [j.id for j in await store.claim_due("A", lease=30, limit=10)] == ["j2", "j3", "j4"]
    assert await store.claim_due("A", lease=30, limit=0) == []


async def test_each_due_job_claimed_exactly_once_by_concurrent_claimers(
    store: Store, open_another: Opener
) -> None:
    claimers = [store, *[await open_another() for _ in range(4)]]
    for i in range(20):
        await store.schedule(job(f"job-{i:02}", i=i))

    async def claim_until_empty(s: Store, name: str) -> list[str]:
        got: list[str] = []
        while batch := await s.claim_due(name, lease=30, limit=3):
            got += [j.id for j in batch]
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(claim_until_empty(s, f"r{i}") for i, s in enumerate(claimers)))
    claimed = Counter(j for r in results for j in r)
    assert claimed == Counter(f"job-{i:02}" for i in range(20))
    for i, got in enumerate(results):
        for job_id in got:
            assert (await store.get_job(job_id)).owner == f"r{i}"  # type: ignore[union-attr]


async def test_an_expired_lease_makes_the_job_claimable_again(store: Store) -> None:
    await store.schedule(job("j", x=1))
    first = await store.claim_due("A", lease=TTL)
    assert [(j.id, j.attempts) for j in first] == [("j", 1)]
    assert await store.claim_due("B", lease=TTL) == []
    await asyncio.sleep(PAST_TTL)
    second = await store.claim_due("B", lease=30)
    assert [(j.id, j.owner, j.attempts, j.payload) for j in second] == [("j", "B", 2, {"x": 1})]
    assert second[0].due_at == first[0].due_at


async def test_only_the_owner_reschedules_or_completes(store: Store) -> None:
    await store.schedule(job("j"))
    await store.claim_due("A", lease=TTL)
    await asyncio.sleep(PAST_TTL)
    await store.claim_due("B", lease=30)
    # A's lease ran out and B holds the job now
    assert not await store.reschedule("j", "A", now() + 60)
    assert not await store.complete("j", "A")
    assert not await store.reschedule("missing", "B", now())
    assert not await store.complete("missing", "B")
    got = await store.get_job("j")
    assert got is not None and got.owner == "B"

    next_due = now() + 0.2
    assert await store.reschedule("j", "B", next_due)
    got = await store.get_job("j")
    assert got is not None and (got.owner, got.lease_until, got.due_at) == (None, None, next_due)
    assert not await store.complete("j", "B")  # no longer claimed by B
    assert await store.claim_due("C", lease=30) == []  # not due yet
    await asyncio.sleep(0.3)
    third = await store.claim_due("C", lease=30)
    assert [(j.id, j.attempts) for j in third] == [("j", 3)]
    assert not await store.complete("j", "B")
    assert await store.complete("j", "C")
    assert await store.get_job("j") is None
    assert await store.claim_due("C", lease=30) == []


async def test_cancel_job_regardless_of_owner(store: Store) -> None:
    await store.schedule(job("claimed"))
    await store.schedule(job("waiting", due_in=60))
    await store.claim_due("A", lease=30)
    assert await store.cancel_job("claimed")
    assert await store.cancel_job("waiting")
    assert not await store.cancel_job("waiting")
    assert await store.get_job("claimed") is None and await store.get_job("waiting") is None
    assert not await store.complete("claimed", "A")
    assert await store.claim_due("A", lease=30) == []


# -- idempotency keys


async def test_remember_true_once_then_false_until_ttl(store: Store) -> None:
    assert await store.remember("click:1", ttl=TTL)
    assert not await store.remember("click:1", ttl=TTL)
    assert await store.remember("click:2", ttl=5)
    await asyncio.sleep(PAST_TTL)
    assert await store.remember("click:1", ttl=5)
    assert not await store.remember("click:1", ttl=5)
    assert not await store.remember("click:2", ttl=5)


async def test_remember_concurrently_true_for_exactly_one(
    store: Store, open_another: Opener
) -> None:
    replicas = [store, await open_another(), await open_another()]
    results = await asyncio.gather(
        *(replicas[i % 3].remember("delivery:X", ttl=30) for i in range(12))
    )
    assert results.count(True) == 1


async def test_noted_keys_are_seen_by_remember_until_their_ttl(store: Store) -> None:
    assert await store.remember("delivery:old", ttl=5)
    await store.note(["delivery:a", "delivery:b", "delivery:old"], ttl=TTL)
    await store.note(["delivery:a"], ttl=TTL)  # again: harmless
    assert not await store.remember("delivery:a", ttl=5)
    assert not await store.remember("delivery:b", ttl=5)
    assert await store.remember("delivery:c", ttl=5)
    await asyncio.sleep(PAST_TTL)
    assert await store.remember("delivery:b", ttl=5)
    assert not await store.remember("delivery:old", ttl=5), "an older, longer note is kept"
    await store.note([], ttl=5)  # nothing to note: no error


# -- several processes on one backend

CLAIMER = """
import asyncio, json, sys, time
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore

async def main(kind, where, name, start_at):
    store = SqliteStore(where) if kind == "sqlite" else RedisStore(where)
    await store.connect()
    await asyncio.sleep(max(0.0, float(start_at) - time.time()))
    won = await store.transition("rb-1", {"approved"}, "running", {"executor": name})
    claimed = []
    while batch := await store.claim_due(name, lease=60, limit=2):
        claimed += [j.id for j in batch]
    await store.close()
    print(json.dumps({"won": won is not None, "claimed": claimed}))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_several_processes_share_one_backend(store: Store) -> None:
    await store.create(rec(state="approved"))
    for i in range(40):
        await store.schedule(job(f"job-{i:02}"))
    kind = "sqlite" if isinstance(store, SqliteStore) else "redis"
    start_at = str(time.time() + 1.5)  # after every process has imported and connected
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLAIMER,
            kind,
            where(store),
            f"p{i}",
            start_at,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(4)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    results = [json.loads(out) for out, _ in outputs]
    assert [r["won"] for r in results].count(True) == 1
    claimed = Counter(j for r in results for j in r["claimed"])
    assert claimed == Counter(f"job-{i:02}" for i in range(40))
    final = await store.get("rb-1")
    winner = next(f"p{i}" for i, r in enumerate(results) if r["won"])
    assert final is not None and final.state == "running" and final.data["executor"] == winner


# -- Redis only: what the other backend has no counterpart for


class ReplyDropper:
    """A TCP relay to redis that, when armed, passes one script call to the server but cuts
    the client's connection before the answer arrives, as a network fault would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        script_sent = False

        async def to_server() -> None:
            nonlocal script_sent
            while data := await reader.read(65536):
                script_sent = script_sent or (self.armed and b"EVALSHA" in data.upper())
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            nonlocal script_sent
            while data := await up_reader.read(65536):
                # NOSCRIPT: the client loads the script and calls again; wait for that call
                if script_sent and not data.startswith(b"-NOSCRIPT"):
                    self.armed, self.dropped = False, self.dropped + 1
                    return
                script_sent = False
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(to_server()), asyncio.create_task(to_client())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            writer.close()
            up_writer.close()


@pytest.fixture
async def flaky_redis(redis_url: str) -> AsyncIterator[tuple[RedisStore, ReplyDropper]]:
    relay = ReplyDropper(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    store = RedisStore(await relay.start())
    await store.connect()
    yield store, relay
    await store.close()
    await relay.stop()


async def test_redis_resent_calls_answer_as_the_first_send(
    flaky_redis: tuple[RedisStore, ReplyDropper],
) -> None:
    store, relay = flaky_redis

    async def lost_answer(call: Awaitable[Any]) -> Any:
        relay.armed = True
        dropped = relay.dropped
        result = await call
        assert relay.dropped == dropped + 1, "the relay did not cut the answer"
        return result

    assert await lost_answer(store.create(rec(state="awaiting_approval")))
    moved = await lost_answer(store.transition("rb-1", {"awaiting_approval"}, "approved"))
    assert moved is not None and moved.version == 2  # we won, and it was applied once
    assert (await store.get("rb-1")) == moved

    seq = await lost_answer(store.audit(entry(1, at=now())))
    assert [e.seq for e in await store.audit_since()] == [seq]

    assert await lost_answer(store.remember("delivery:1", ttl=30))
    assert not await store.remember("delivery:1", ttl=30)

    await store.schedule(job("j"))
    claimed = await lost_answer(store.claim_due("A", lease=30))
    assert [(j.id, j.attempts) for j in claimed] == [("j", 1)]
    assert await lost_answer(store.complete("j", "A"))

    assert await lost_answer(store.acquire_lock("L", "A", ttl=30))
    assert await lost_answer(store.release_lock("L", "A"))


async def test_redis_prefixes_keep_two_deployments_apart(redis_url: str) -> None:
    blue, green = RedisStore(redis_url, prefix="blue:"), RedisStore(redis_url, prefix="green:")
    await blue.connect()
    await green.connect()
    try:
        assert await blue.create(rec())
        assert await green.create(rec(state="running"))
        assert (await blue.get("rb-1")).state == "requested"  # type: ignore[union-attr]
        assert await blue.acquire_lock("L", "A", ttl=30)
        assert await green.acquire_lock("L", "B", ttl=30)
        await blue.schedule(job("j"))
        assert await green.claim_due("B", lease=30) == []
        assert await blue.remember("k", ttl=30) and await green.remember("k", ttl=30)
    finally:
        await blue.close()
        await green.close()
