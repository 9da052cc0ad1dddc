"""Retention: old diagnoses, step journals and outbox leftovers go; the audit log stays."""

from __future__ import annotations

from bot.store.base import AuditEntry, JournalEntry, OutboxEntry, Record, Store, now

DAY = 86_400.0


def record(record_id: str, kind: str, age_days: float) -> Record:
    t = now() - age_days * DAY
    return Record(id=record_id, kind=kind, state="done", created_at=t, updated_at=t)


def step(at: float) -> JournalEntry:
    return JournalEntry(at=at, step=1, step_id="deploy", event="start")


async def seed(store: Store) -> None:
    for rid, kind, age in [
        ("dg-old1", "diagnosis", 120),
        ("dg-old2", "diagnosis", 91),
        ("dg-new", "diagnosis", 10),
        ("rb-old", "rollback", 100),
        ("rb-new", "rollback", 1),
    ]:
        assert await store.create(record(rid, kind, age))
    for rid, age in [("rb-old", 100), ("rb-new", 1)]:
        await store.journal_append(rid, step(now() - age * DAY))
        await store.journal_append(rid, step(now() - age * DAY + 5))
    for queue, age in [("C1", 95), ("C1", 93), ("C1", 2), ("C2", 100)]:
        await store.outbox_put(
            OutboxEntry(at=now() - age * DAY, queue=queue, method="chat_postMessage")
        )
    await store.audit(AuditEntry(at=now() - 200 * DAY, actor="U1", action="old", subject="rb-old"))


async def test_prune_removes_only_what_is_older_than_the_cut(store: Store) -> None:
    await seed(store)
    pruned = await store.prune(now() - 90 * DAY)
    assert (pruned.diagnoses, pruned.journals, pruned.outbox) == (2, 1, 3)
    assert await store.get("dg-old1") is None and await store.get("dg-old2") is None
    assert await store.get("dg-new") is not None
    assert [r.id for r in await store.list_records("diagnosis")] == ["dg-new"]
    # the rollback itself is history and stays; only its step journal goes
    assert await store.get("rb-old") is not None
    assert await store.journal("rb-old") == []
    assert len(await store.journal("rb-new")) == 2
    assert await store.outbox_queues() == ["C1"]
    left = await store.outbox_peek("C1")
    assert len(left) == 1 and left[0].at > now() - 3 * DAY
    audit = await store.audit_since(0)
    assert [a.action for a in audit] == ["old"]


async def test_prune_twice_removes_nothing_more(store: Store) -> None:
    await seed(store)
    await store.prune(now() - 90 * DAY)
    again = await store.prune(now() - 90 * DAY)
    assert (again.diagnoses, again.journals, again.outbox) == (0, 0, 0)
    assert await store.get("dg-new") is not None


async def test_a_queue_keeps_its_order_and_takes_new_entries_after_a_prune(store: Store) -> None:
    await seed(store)
    await store.prune(now() - 90 * DAY)
    await store.outbox_put(OutboxEntry(at=now(), queue="C2", method="chat_update"))
    assert await store.outbox_queues() == ["C1", "C2"]
    assert [e.method for e in await store.outbox_peek("C2")] == ["chat_update"]
