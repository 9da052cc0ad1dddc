"""Fixed-window rate limits in the store, on both backends, shared by every replica."""

from __future__ import annotations

import asyncio

from bot.store.base import Store
from tests.store.conftest import Opener

# the backends under test, and more instances on the same backend (like other replicas)

WINDOW = 0.4


async def test_attempts_up_to_the_limit_are_allowed_then_refused(store: Store) -> None:
    answers = [await store.rate_hit("user:U1", 3, 30.0) for _ in range(5)]
    assert [a.allowed for a in answers] == [True, True, True, False, False]
    assert [a.count for a in answers] == [1, 2, 3, 4, 5]
    assert all(a.retry_after == 0 for a in answers[:3])
    refused = answers[3]
    assert 29.0 < refused.retry_after <= 30.0, refused


async def test_keys_are_counted_apart(store: Store) -> None:
    assert (await store.rate_hit("user:U1", 1, 30.0)).allowed
    assert (await store.rate_hit("user:U2", 1, 30.0)).allowed
    assert not (await store.rate_hit("user:U1", 1, 30.0)).allowed
    assert (await store.rate_hit("target:api", 1, 30.0)).allowed


async def test_a_new_window_starts_after_the_last_one_ended(store: Store) -> None:
    assert (await store.rate_hit("k", 1, WINDOW)).allowed
    refused = await store.rate_hit("k", 1, WINDOW)
    assert not refused.allowed and 0 < refused.retry_after <= WINDOW
    await asyncio.sleep(WINDOW + 0.15)
    again = await store.rate_hit("k", 1, WINDOW)
    assert again.allowed and again.count == 1


async def test_refusals_do_not_stretch_the_window(store: Store) -> None:
    assert (await store.rate_hit("k", 1, WINDOW)).allowed
    for _ in range(5):
        assert not (await store.rate_hit("k", 1, WINDOW)).allowed
        await asyncio.sleep(WINDOW / 8)
    await asyncio.sleep(WINDOW)
    assert (await store.rate_hit("k", 1, WINDOW)).allowed


async def test_replicas_share_one_count(store: Store, open_another: Opener) -> None:
    others = [await open_another() for _ in range(3)]
    replicas = [store, *others]
    answers = await asyncio.gather(
        *(replicas[i % 4].rate_hit("target:api", 10, 30.0) for i in range(40))
    )
    assert sum(a.allowed for a in answers) == 10
    assert sorted(a.count for a in answers) == list(range(1, 41))
