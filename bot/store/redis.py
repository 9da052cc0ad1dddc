"""Redis store for several replicas: every read-modify-write is one Lua script.

The scripts are package files in bot/store/lua/ (their comments say which KEYS and ARGV each
takes and how records, jobs, audit and outbox are laid out in Redis). Times are computed in
Python with `now()` and passed to the scripts, so both backends agree.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from pydantic_core import to_json
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from bot.store.audit_chain import body, digest
from bot.store.base import (
    AuditEntry,
    ExecutionClaim,
    Fenced,
    Job,
    JournalEntry,
    LockInfo,
    OutboxEntry,
    Record,
    Store,
    now,
)
from bot.store.redis_upkeep import RedisUpkeep

# The scripts live in bot/store/lua/, read once when this module is imported. Each script's
# body runs inside `run()` of once.lua, after the helper preludes it names.
LUA = resources.files("bot.store") / "lua"
SCRIPTS: dict[str, tuple[str, ...]] = {  # script -> the preludes it needs
    "create": ("render", "sha256", "append_audit"),
    "change": ("render", "sha256", "append_audit", "fence"),
    "acquire": (),
    "release": (),
    "audit": ("sha256", "append_audit"),
    "journal": ("fence",),
    "claim_exec": (),
    "renew_exec": (),
    "release_exec": (),
    "claim": (),
    "reschedule": (),
    "drop": (),
    "remember": (),
    "outbox_put": ("sha256", "append_audit"),
    "outbox_drop": (),
}


def _lua(name: str) -> str:
    return (LUA / f"{name}.lua").read_text(encoding="utf-8")


def _once(body: str, *preludes: str) -> str:
    """A script whose answer is memoised under its last key, so a resend never runs it twice."""
    return "".join(preludes) + "local function run()\n" + body + "end\n" + _lua("once")


def _load_scripts() -> dict[str, str]:
    return {
        name: _once(_lua(name), *(_lua(p) for p in preludes)) for name, preludes in SCRIPTS.items()
    }


SCRIPT_TEXTS = _load_scripts()

JOB_FIELDS = ("ready", "spec", "due", "owner", "lease", "attempts")
PAGE = 100  # records read per round trip while filtering a listing by state


def _text(value: Any) -> str:
    # pydantic's encoder, so both backends store datetimes, enums, ... the same way
    return to_json(value).decode()


def _num(value: float) -> str:
    return repr(float(value))  # shortest text that reads back as the same float


def _data_args(data: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in data.items():
        args += [json.dumps(str(key)), _text(value)]
    return args


def _job(
    job_id: str, spec: str, due: str, owner: str | None, lease: str | None, attempts: str | None
) -> Job:
    fields = json.loads(spec)
    return Job(
        id=job_id,
        kind=fields["kind"],
        payload=fields["payload"],
        due_at=float(due),
        owner=owner,
        lease_until=None if lease is None else float(lease),
        attempts=int(attempts or 0),
    )


def _token(fence: int | None) -> str:
    return "" if fence is None else str(int(fence))


def _refused(record_id: str, fence: int | None, answer: Any) -> None:
    """Raise Fenced when a script answered 'fenced:<token>:<owner>'."""
    if isinstance(answer, str) and answer.startswith("fenced:"):
        _, current, holder = answer.split(":", 2)
        raise Fenced(record_id, int(fence or 0), int(current), holder)


def _without_brace(text: str) -> str:
    """The JSON of a model with its opening brace cut off, for a script to put seq in front."""
    return text[1:]


MAX_CONNECTIONS = 50


class RedisStore(RedisUpkeep, Store):
    backend = "redis"

    def __init__(self, url: str, prefix: str = "rollbot:", *, ping_timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.ping_timeout = ping_timeout
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    # -- lifecycle
    async def connect(self) -> None:
        if self._client is not None:
            return
        # A bounded pool that makes a burst wait for a free connection instead of failing:
        # 200 requests at once otherwise exhaust the default pool (MaxConnectionsError).
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=10,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=10,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        )
        client = aioredis.Redis(connection_pool=pool)
        self._scripts = {name: client.register_script(text) for name, text in SCRIPT_TEXTS.items()}
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(self.ping_timeout):
                return bool(await self._client.ping())
        except Exception:
            return False

    @property
    def _r(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("store is not connected")
        return self._client

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self._r
        once = self._key("op", uuid.uuid4().hex)
        return await self._scripts[script](keys=[*keys, once], args=list(args), client=client)

    # -- records
    def _record_keys(self, record_id: str) -> list[str]:
        return [self._key("rec", record_id), self._key("rec-parts", record_id)]

    async def create(self, record: Record, audit: AuditEntry | None = None) -> bool:
        head = (
            f'{{"id":{json.dumps(record.id)},"kind":{json.dumps(record.kind)},'
            f'"created_at":{_num(record.created_at)}'
        )
        args = [
            head,
            json.dumps(record.state),
            str(record.version),
            _num(record.updated_at),
            _num(record.created_at),
            record.id,
            *_data_args(record.data),
        ]
        keys = [*self._record_keys(record.id), self._key("kind", record.kind)]
        return bool(await self._run("create", *self._carrying(audit, keys, args)))

    async def get(self, record_id: str) -> Record | None:
        text = await self._r.get(self._key("rec", record_id))
        return Record.model_validate_json(text) if text else None

    async def _change(
        self,
        record_id: str,
        from_states: set[str] | frozenset[str] | None,
        to_state: str | None,
        patch: dict[str, Any],
        audit: AuditEntry | None,
        fence: int | None = None,
    ) -> Record | None:
        allowed = [] if from_states is None else [json.dumps(s) for s in from_states]
        args = [
            "" if to_state is None else json.dumps(to_state),
            _num(now()),
            -1 if from_states is None else len(allowed),
            *allowed,
            _token(fence),
            *_data_args(patch),
        ]
        keys = [*self._record_keys(record_id), self._key("fence", record_id)]
        text = await self._run("change", *self._carrying(audit, keys, args))
        _refused(record_id, fence, text)
        return Record.model_validate_json(text) if text else None

    async def _records(self, ids: list[str]) -> list[Record]:
        if not ids:
            return []
        texts = await self._r.mget([self._key("rec", i) for i in ids])
        return [Record.model_validate_json(t) for t in texts if t]

    async def list_records(
        self, kind: str, *, states: set[str] | None = None, limit: int = 50
    ) -> list[Record]:
        if limit <= 0 or (states is not None and not states):
            return []
        index = self._key("kind", kind)
        if states is None:
            return await self._records(await self._r.zrevrange(index, 0, limit - 1))
        found: list[Record] = []
        start = 0
        while len(found) < limit:
            ids = await self._r.zrevrange(index, start, start + PAGE - 1)
            found += [r for r in await self._records(ids) if r.state in states]
            if len(ids) < PAGE:
                break
            start += PAGE
        return found[:limit]

    # -- locks
    async def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        t = now()
        # Redis drops the key a minute after it lapses, only to keep memory tidy; whether the
        # lock is held is decided by expires_at, so clocks need not agree with the server.
        keep_ms = math.ceil(ttl * 1000) + 60_000
        args = [owner, _num(t), _num(t + ttl), keep_ms]
        return bool(await self._run("acquire", [self._key("lock", name)], args))

    async def release_lock(self, name: str, owner: str) -> bool:
        return bool(await self._run("release", [self._key("lock", name)], [owner, _num(now())]))

    async def lock_info(self, name: str) -> LockInfo | None:
        owner, expires_at = await self._r.hmget(self._key("lock", name), ["owner", "expires_at"])
        if owner is None or expires_at is None or float(expires_at) <= now():
            return None
        return LockInfo(name=name, owner=owner, expires_at=float(expires_at))

    # -- audit: a counter, a hash seq -> entry, two time indexes (all, per subject) and the
    # chain's head hash; append_audit.lua links each entry to the head as it appends it
    def _audit_keys_args(self, entry: AuditEntry) -> tuple[list[str], list[str]]:
        keys = [
            self._key("seq", "audit"),
            self._key("audit", "log"),
            self._key("audit", "by-time"),
            self._key("audit-subject", entry.subject),
            self._key("audit", "head"),
        ]
        text = body(entry)
        return keys, [text, digest(text), _num(entry.at)]

    async def audit(self, entry: AuditEntry) -> int:
        return int(await self._run("audit", *self._audit_keys_args(entry)))

    def _carrying(
        self, audit: AuditEntry | None, keys: list[str], args: list[Any]
    ) -> tuple[list[str], list[Any]]:
        """A script's keys and args with an audit entry appended for it to write too."""
        if audit is None:
            return keys, args
        audit_keys, audit_args = self._audit_keys_args(audit)
        return keys + audit_keys, args + audit_args

    async def audit_since(
        self, since: float = 0.0, subject: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        index = (
            self._key("audit", "by-time")
            if subject is None
            else self._key("audit-subject", subject)
        )
        seqs = sorted(int(s) for s in await self._r.zrangebyscore(index, _num(since), "+inf"))
        if not seqs:
            return []
        texts = await self._r.hmget(self._key("audit", "log"), seqs[:limit])
        return [AuditEntry.model_validate_json(t) for t in texts if t]

    # -- step journal: one list per rollback, sequence numbers from one counter
    async def journal_append(
        self, rollback_id: str, entry: JournalEntry, *, fence: int | None = None
    ) -> int:
        keys = [
            self._key("seq", "journal"),
            self._key("journal", rollback_id),
            self._key("fence", rollback_id),
        ]
        text = _without_brace(entry.model_dump_json(exclude={"seq"}))
        answer = await self._run("journal", keys, [text, _token(fence)])
        _refused(rollback_id, fence, answer)
        return int(answer)

    # -- execution claims: one hash per record, fence:<id> {token, owner, expires_at}
    async def claim_execution(
        self, record_id: str, owner: str, ttl: float
    ) -> ExecutionClaim | None:
        t = now()
        args = [owner, _num(t), _num(t + ttl)]
        answer = await self._run("claim_exec", [self._key("fence", record_id)], args)
        if not answer:
            return None
        token, previous, expires_at = answer
        return ExecutionClaim(
            token=int(token),
            previous_owner=previous,
            previous_expires_at=float(expires_at) if expires_at else None,
        )

    async def renew_execution(self, record_id: str, owner: str, token: int, ttl: float) -> bool:
        args = [owner, str(token), _num(now() + ttl)]
        return bool(await self._run("renew_exec", [self._key("fence", record_id)], args))

    async def release_execution(self, record_id: str, owner: str, token: int) -> bool:
        args = [owner, str(token), _num(now())]
        return bool(await self._run("release_exec", [self._key("fence", record_id)], args))

    async def execution_claim(self, record_id: str) -> LockInfo | None:
        token, owner, expires_at = await self._r.hmget(
            self._key("fence", record_id), ["token", "owner", "expires_at"]
        )
        if token is None:
            return None
        return LockInfo(
            name=record_id, owner=owner or "", expires_at=float(expires_at), token=int(token)
        )

    async def journal(self, rollback_id: str) -> list[JournalEntry]:
        texts = await self._r.lrange(self._key("journal", rollback_id), 0, -1)
        return [JournalEntry.model_validate_json(t) for t in texts]

    # -- due-jobs
    def _job_keys(self, *fields: str) -> list[str]:
        return [self._key("jobs", f) for f in fields]

    async def schedule(self, job: Job) -> None:
        ready, spec, due, owner, lease, attempts = self._job_keys(*JOB_FIELDS)
        async with self._r.pipeline(transaction=True) as tx:
            tx.hset(spec, job.id, job.model_dump_json(include={"kind", "payload"}))
            tx.hset(due, job.id, _num(job.due_at))
            tx.hdel(owner, job.id)
            tx.hdel(lease, job.id)
            tx.hdel(attempts, job.id)
            tx.zadd(ready, {job.id: job.due_at})
            await tx.execute()

    async def claim_due(self, owner: str, lease: float, limit: int = 10) -> list[Job]:
        if limit <= 0:
            return []
        t = now()
        keys = self._job_keys(*JOB_FIELDS)
        # Every replica polls twice a second: a plain read finds most polls empty for one
        # command, where the claim script (with its resend memo) costs four.
        if not await self._r.zrangebyscore(keys[0], "-inf", _num(t), start=0, num=1):
            return []
        lease_until = _num(t + lease)
        args = [owner, _num(t), lease_until, limit]
        flat = await self._run("claim", keys, args)
        jobs = []
        for i in range(0, len(flat), 4):  # the script answers id, spec, due, attempts per job
            job_id, spec, due, attempts = flat[i : i + 4]
            jobs.append(_job(job_id, spec, due, owner, lease_until, attempts))
        return sorted(jobs, key=lambda j: j.due_at)

    async def reschedule(self, job_id: str, owner: str, due_at: float) -> bool:
        keys = self._job_keys("ready", "due", "owner", "lease")
        return bool(await self._run("reschedule", keys, [job_id, owner, _num(due_at)]))

    async def complete(self, job_id: str, owner: str) -> bool:
        return bool(await self._run("drop", self._job_keys(*JOB_FIELDS), [job_id, owner]))

    async def cancel_job(self, job_id: str) -> bool:
        return bool(await self._run("drop", self._job_keys(*JOB_FIELDS), [job_id, ""]))

    async def get_job(self, job_id: str) -> Job | None:
        _, *hashes = self._job_keys(*JOB_FIELDS)
        async with self._r.pipeline(transaction=True) as tx:
            for key in hashes:
                tx.hget(key, job_id)
            spec, due, owner, lease, attempts = await tx.execute()
        return None if spec is None else _job(job_id, spec, due, owner, lease, attempts)

    # -- outbox
    async def outbox_put(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> int:
        keys = [
            self._key("seq", "outbox"),
            self._key("outbox", entry.queue),
            self._key("outbox-queues"),
        ]
        args = [_without_brace(entry.model_dump_json(exclude={"seq"})), entry.queue]
        return int(await self._run("outbox_put", *self._carrying(audit, keys, args)))

    async def outbox_peek(self, queue: str, limit: int = 20) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        texts = await self._r.zrange(self._key("outbox", queue), 0, limit - 1)
        return [OutboxEntry.model_validate_json(t) for t in texts]

    async def outbox_drop(self, queue: str, seq: int) -> bool:
        keys = [self._key("outbox", queue), self._key("outbox-queues")]
        return bool(await self._run("outbox_drop", keys, [seq, queue]))

    async def outbox_queues(self) -> list[str]:
        return sorted(await self._r.smembers(self._key("outbox-queues")))

    # -- idempotency keys
    async def note(self, keys: list[str], ttl: float) -> None:
        ttl_ms = max(1, round(ttl * 1000))
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self._key("seen", key), "1", nx=True, px=ttl_ms)
            await pipe.execute()

    async def remember(self, key: str, ttl: float) -> bool:
        ttl_ms = max(1, round(ttl * 1000))
        return bool(await self._run("remember", [self._key("seen", key)], [ttl_ms]))
