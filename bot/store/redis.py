"""Redis store for several replicas: every read-modify-write is one Lua script."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from bot.store.base import AuditEntry, Job, JournalEntry, LockInfo, Record, Store, now

# KEYS[1]=lock  ARGV: owner, now, ttl
ACQUIRE = """
local cur = redis.call('HGETALL', KEYS[1])
if #cur > 0 then
  local h = {}
  for i = 1, #cur, 2 do h[cur[i]] = cur[i + 1] end
  if h.owner ~= ARGV[1] and tonumber(h.expires_at) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'expires_at', tonumber(ARGV[2]) + tonumber(ARGV[3]))
return 1
"""
RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
# Job state lives in plain hashes (no JSON decoding in Lua, which loses empty objects).
# KEYS: due zset, owner hash, lease hash, attempts hash   ARGV: owner, now, lease, limit
CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local lease_until = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, id in ipairs(ids) do
  redis.call('HSET', KEYS[2], id, ARGV[1])
  redis.call('HSET', KEYS[3], id, lease_until)
  redis.call('HINCRBY', KEYS[4], id, 1)
  -- while claimed, the job comes due again only when its lease runs out
  redis.call('ZADD', KEYS[1], lease_until, id)
end
return ids
"""
# KEYS: due zset, owner hash, lease hash, attempts hash, spec hash  ARGV: id, owner, due|""
SETTLE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
else
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
end
return 1
"""


class RedisStore(Store):
    backend = "redis"

    def __init__(self, url: str, prefix: str = "rollbot:") -> None:
        self.url = url
        self.p = prefix
        self.r: aioredis.Redis | None = None

    async def connect(self) -> None:
        self.r = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=10,
            health_check_interval=30,
        )
        self._acquire = self.r.register_script(ACQUIRE)
        self._release = self.r.register_script(RELEASE)
        self._claim = self.r.register_script(CLAIM)
        self._settle = self.r.register_script(SETTLE)

    async def close(self) -> None:
        if self.r is not None:
            await self.r.aclose()
            self.r = None

    @property
    def _r(self) -> aioredis.Redis:
        if self.r is None:
            raise RuntimeError("store is not connected")
        return self.r

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except Exception:
            return False

    # -- records: JSON per record, plus a per-kind index by creation time
    def _rec(self, record_id: str) -> str:
        return f"{self.p}rec:{record_id}"

    async def create(self, record: Record) -> bool:
        created = await self._r.set(self._rec(record.id), record.model_dump_json(), nx=True)
        if created:
            await self._r.zadd(f"{self.p}kind:{record.kind}", {record.id: record.created_at})
        return bool(created)

    async def get(self, record_id: str) -> Record | None:
        raw = await self._r.get(self._rec(record_id))
        return Record.model_validate_json(raw) if raw else None

    async def _apply(
        self, record_id: str, states: Any, to: str, patch: dict[str, Any]
    ) -> Record | None:
        """Optimistic compare-and-set: WATCH the record, write in MULTI, retry on a race."""
        key = self._rec(record_id)
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    record = Record.model_validate_json(raw)
                    if states is not None and record.state not in states:
                        return None
                    record.data.update(patch)
                    record.state = to or record.state
                    record.version += 1
                    record.updated_at = now()
                    pipe.multi()
                    pipe.set(key, record.model_dump_json())
                    await pipe.execute()
                    return record
                except WatchError:
                    continue

    async def transition(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str],
        to_state: str,
        patch: dict[str, Any] | None = None,
    ) -> Record | None:
        return await self._apply(record_id, from_states, to_state, patch or {})

    async def update_data(self, record_id: str, patch: dict[str, Any]) -> Record | None:
        return await self._apply(record_id, None, "", patch)

    async def list_records(
        self, kind: str, *, states: set[str] | None = None, limit: int = 50
    ) -> list[Record]:
        ids = await self._r.zrevrange(f"{self.p}kind:{kind}", 0, -1 if states else limit - 1)
        if not ids:
            return []
        raws = await self._r.mget([self._rec(i) for i in ids])
        records = [Record.model_validate_json(r) for r in raws if r]
        if states is not None:
            records = [r for r in records if r.state in states]
        return records[:limit]

    # -- locks
    async def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        return bool(await self._acquire(keys=[f"{self.p}lock:{name}"], args=[owner, now(), ttl]))

    async def release_lock(self, name: str, owner: str) -> bool:
        return bool(await self._release(keys=[f"{self.p}lock:{name}"], args=[owner]))

    async def lock_info(self, name: str) -> LockInfo | None:
        h = await self._r.hgetall(f"{self.p}lock:{name}")
        if not h or float(h["expires_at"]) <= now():
            return None
        return LockInfo(name=name, owner=h["owner"], expires_at=float(h["expires_at"]))

    # -- audit: a counter for the sequence and a list nobody rewrites
    async def audit(self, entry: AuditEntry) -> int:
        seq = int(await self._r.incr(f"{self.p}audit:seq"))
        await self._r.rpush(
            f"{self.p}audit", entry.model_copy(update={"seq": seq}).model_dump_json()
        )
        return seq

    async def audit_since(
        self, since: float = 0.0, subject: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        entries = [
            AuditEntry.model_validate_json(r) for r in await self._r.lrange(f"{self.p}audit", 0, -1)
        ]
        entries = [e for e in entries if e.at >= since and subject in (None, e.subject)]
        return sorted(entries, key=lambda e: e.seq)[:limit]

    # -- journal
    async def journal_append(self, rollback_id: str, entry: JournalEntry) -> int:
        key = f"{self.p}journal:{rollback_id}"
        seq = int(await self._r.incr(f"{key}:seq"))
        await self._r.rpush(key, entry.model_copy(update={"seq": seq}).model_dump_json())
        return seq

    async def journal(self, rollback_id: str) -> list[JournalEntry]:
        raws = await self._r.lrange(f"{self.p}journal:{rollback_id}", 0, -1)
        return sorted((JournalEntry.model_validate_json(r) for r in raws), key=lambda e: e.seq)

    # -- jobs
    def _k(self, name: str) -> str:
        return f"{self.p}jobs:{name}"

    @property
    def _state_keys(self) -> list[str]:
        return [self._k("due"), self._k("owner"), self._k("lease"), self._k("attempts")]

    async def schedule(self, job: Job) -> None:
        spec = json.dumps({"kind": job.kind, "payload": job.payload})
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._k("spec"), job.id, spec)
        pipe.zadd(self._k("due"), {job.id: job.due_at})
        for name in ("owner", "lease", "attempts"):
            pipe.hdel(self._k(name), job.id)
        await pipe.execute()

    async def _load_jobs(self, ids: list[str]) -> list[Job]:
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self._k("spec"), ids)
        pipe.zmscore(self._k("due"), ids)
        for name in ("owner", "lease", "attempts"):
            pipe.hmget(self._k(name), ids)
        specs, dues, owners, leases, attempts = await pipe.execute()
        jobs = []
        for i, job_id in enumerate(ids):
            if specs[i] is None:
                continue
            spec = json.loads(specs[i])
            lease = float(leases[i]) if leases[i] is not None else None
            jobs.append(
                Job(
                    id=job_id,
                    kind=spec["kind"],
                    payload=spec["payload"],
                    due_at=float(dues[i] or 0),
                    owner=owners[i],
                    lease_until=lease,
                    attempts=int(attempts[i] or 0),
                )
            )
        return jobs

    async def claim_due(self, owner: str, lease: float, limit: int = 10) -> list[Job]:
        ids = await self._claim(keys=self._state_keys, args=[owner, now(), lease, limit])
        return await self._load_jobs(list(ids))

    async def reschedule(self, job_id: str, owner: str, due_at: float) -> bool:
        keys = [*self._state_keys, self._k("spec")]
        return bool(await self._settle(keys=keys, args=[job_id, owner, due_at]))

    async def complete(self, job_id: str, owner: str) -> bool:
        keys = [*self._state_keys, self._k("spec")]
        return bool(await self._settle(keys=keys, args=[job_id, owner, ""]))

    async def cancel_job(self, job_id: str) -> bool:
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(self._k("spec"), job_id)
        for key in self._state_keys:
            pipe.zrem(key, job_id) if key.endswith("due") else pipe.hdel(key, job_id)
        results = await pipe.execute()
        return bool(results[0])

    async def get_job(self, job_id: str) -> Job | None:
        jobs = await self._load_jobs([job_id])
        return jobs[0] if jobs else None

    # -- idempotency
    async def remember(self, key: str, ttl: float) -> bool:
        return bool(
            await self._r.set(f"{self.p}seen:{key}", "1", nx=True, px=max(1, int(ttl * 1000)))
        )
