"""`rollbot check --online` for the state store: is the Redis server set up so that it keeps
what Rollbot writes (persistence on, no eviction, a primary that accepts writes)?"""

from __future__ import annotations

from typing import Any

KEEPS_KEYS = "noeviction"


async def _config(client: Any, name: str) -> str | None:
    """A CONFIG value, or None where CONFIG is not allowed (ElastiCache renames it away)."""
    try:
        answer = await client.config_get(name)
    except Exception:
        return None
    return answer.get(name)


async def redis_warnings(client: Any) -> list[str]:
    """What in the server's settings could lose or refuse Rollbot's state; [] when none."""
    warnings: list[str] = []
    memory = await client.info("memory")
    policy = await _config(client, "maxmemory-policy") or memory.get("maxmemory_policy")
    if policy and policy != KEEPS_KEYS:
        warnings.append(
            f"Redis maxmemory-policy is {policy}: when memory fills up the server evicts keys "
            "(locks, claims, delivery notes, the audit log); set maxmemory-policy noeviction"
        )
    persistence = await client.info("persistence")
    save = await _config(client, "save")
    aof = str(persistence.get("aof_enabled", "0")) == "1"
    if not aof and save == "":
        warnings.append(
            "Redis persistence is off (no append-only file, no snapshots): a restart loses "
            "every rollback, lock and audit entry; set appendonly yes"
        )
    elif not aof and save is None:
        warnings.append(
            "Redis has no append-only file and its snapshot setting cannot be read: make sure "
            "the service keeps backups (a restart may otherwise lose recent state)"
        )
    replication = await client.info("replication")
    if replication.get("role") not in (None, "master"):
        warnings.append(
            "REDIS_URL points at a replica, which refuses writes: point it at the primary "
            "endpoint (or Sentinel's master), which follows a failover"
        )
    return warnings


async def check_store_online(redis_url: str | None) -> list[str]:
    """The warnings for the configured store (none for an SQLite file); connection failures
    are warnings too, so that the other checks still run."""
    if not redis_url:
        return []
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        return await redis_warnings(client)
    except Exception as exc:
        return [f"Redis at REDIS_URL did not answer: {type(exc).__name__}: {exc}"]
    finally:
        await client.aclose()
