"""First deliveries are noted in the store in batches; a redelivery is known at once."""

from __future__ import annotations

import asyncio

from bot.slack.dedupe import SEEN_FOR, DeliveryNotes
from bot.store.base import Store


async def test_a_burst_is_noted_in_one_batch_and_known_before_it_is_written(
    store: Store,
) -> None:
    notes = DeliveryNotes(store, every=0.05)
    for i in range(20):
        notes.add(f"delivery:{i}")
    # not in the store yet, but this replica already knows them
    assert notes.pending == {f"delivery:{i}" for i in range(20)}
    assert all(notes.knows(f"delivery:{i}") for i in range(20))
    assert await store.remember("delivery:probe", SEEN_FOR)
    await asyncio.sleep(0.2)
    assert notes.pending == set() and not notes.knows("delivery:0")
    for i in range(20):
        assert not await store.remember(f"delivery:{i}", SEEN_FOR), "noted as seen"
    notes.add("delivery:later")  # a new batch after the first was written
    await asyncio.sleep(0.2)
    assert not await store.remember("delivery:later", SEEN_FOR)


async def test_deliveries_being_written_are_still_known(store: Store) -> None:
    writing, release = asyncio.Event(), asyncio.Event()
    note = store.note

    async def slow_note(keys: list[str], ttl: float) -> None:
        writing.set()
        await release.wait()  # the store's round trip, held open
        await note(keys, ttl)

    store.note = slow_note  # type: ignore[method-assign]
    notes = DeliveryNotes(store, every=0.01)
    notes.add("delivery:a")
    await asyncio.wait_for(writing.wait(), 5)
    assert notes.pending == set() and notes.knows("delivery:a")
    release.set()
    await asyncio.sleep(0.05)
    assert not notes.knows("delivery:a")
    assert not await store.remember("delivery:a", SEEN_FOR)
