"""The Redis store's rate-limit counters and retention pass (a mixin of RedisStore).

Retention runs as plain reads and deletes, not one script: removing an old diagnosis, journal
or outbox entry twice is harmless, and a pass over many keys must not block the server."""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from bot.store.base import OutboxEntry, Pruned, RateLimit

RATE_HIT = (resources.files("bot.store") / "lua" / "rate_hit.lua").read_text(encoding="utf-8")
BATCH = 500  # keys deleted per round trip
# a queue leaves the set of queues only when empty at that instant (an entry may just arrive)
FORGET_EMPTY = """
if redis.call('ZCARD', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""


class RedisUpkeep:
    """Needs the store's `_r` client and `_key()` naming."""

    _r: aioredis.Redis

    def _key(self, *parts: str) -> str:
        raise NotImplementedError

    async def rate_hit(self, key: str, limit: int, window: float) -> RateLimit:
        window_ms = max(1, math.ceil(window * 1000))
        keys, args = [self._key("rate", key)], [limit, window_ms]
        count, left_ms = await self._r.eval(RATE_HIT, len(keys), *keys, *args)
        count = int(count)
        if count <= limit:
            return RateLimit(allowed=True, count=count)
        return RateLimit(allowed=False, count=count, retry_after=max(int(left_ms), 0) / 1000)

    async def prune(self, before: float) -> Pruned:
        return Pruned(
            diagnoses=await self._prune_diagnoses(before),
            journals=await self._prune_journals(before),
            outbox=await self._prune_outbox(before),
        )

    async def _old(self, kind: str, before: float) -> list[str]:
        # "(" makes the bound exclusive: created exactly at `before` is kept
        return list(await self._r.zrangebyscore(self._key("kind", kind), "-inf", f"({before!r}"))

    async def _prune_diagnoses(self, before: float) -> int:
        ids = await self._old("diagnosis", before)
        for chunk in _chunks(ids):
            async with self._r.pipeline(transaction=True) as tx:
                for record_id in chunk:
                    tx.unlink(self._key("rec", record_id), self._key("rec-parts", record_id))
                tx.zrem(self._key("kind", "diagnosis"), *chunk)
                await tx.execute()
        return len(ids)

    async def _prune_journals(self, before: float) -> int:
        removed = 0
        for chunk in _chunks(await self._old("rollback", before)):
            async with self._r.pipeline(transaction=False) as pipe:
                for record_id in chunk:
                    pipe.unlink(self._key("journal", record_id))
                removed += sum(int(n) for n in await pipe.execute())
        return removed

    async def _prune_outbox(self, before: float) -> int:
        removed = 0
        for queue in await self._r.smembers(self._key("outbox-queues")):
            key = self._key("outbox", queue)
            texts = await self._r.zrange(key, 0, -1)
            stale = [t for t in texts if OutboxEntry.model_validate_json(t).at < before]
            if stale:
                removed += int(await self._r.zrem(key, *stale))
                queues = self._key("outbox-queues")
                await self._r.eval(FORGET_EMPTY, 2, key, queues, queue)
        return removed


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
