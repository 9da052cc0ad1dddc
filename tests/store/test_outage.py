"""Telling a store outage from other errors, retrying through one, and logging it once per
interval with a count, on real servers and files."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot import metrics
from bot.store.base import AuditEntry, now
from bot.store.outage import HEALTH, FailureLog, StoreHealth, is_unavailable, retrying
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.testbed.ports import free_port


async def test_a_redis_server_that_is_gone_is_an_outage() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    await store.connect()
    try:
        with pytest.raises(Exception) as raised:
            await store.get("rb-0001")
    finally:
        await store.close()
    assert is_unavailable(raised.value)


async def test_a_locked_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "rollbot.db", busy_timeout=0.1)
    await store.connect()
    holder = sqlite3.connect(tmp_path / "rollbot.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            await store.acquire_lock("target:api", "rb-0001", 5.0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await store.close()
    assert "locked" in str(raised.value) and is_unavailable(raised.value)


async def test_a_full_redis_under_noeviction_is_an_outage(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.config_set("maxmemory", "1")
    try:
        with pytest.raises(ResponseError) as raised:
            await client.set("k", "v")
    finally:
        await client.config_set("maxmemory", "0")
        await client.aclose()
    assert "maxmemory" in str(raised.value) and is_unavailable(raised.value)


def test_other_errors_are_not_outages() -> None:
    assert not is_unavailable(ValueError("bad"))
    assert not is_unavailable(ResponseError("WRONGTYPE Operation against a key"))
    assert not is_unavailable(sqlite3.OperationalError("no such table: records"))
    assert not is_unavailable(ConnectionError("Slack is down"))  # not the store's


def _store_lines(caplog: pytest.LogCaptureFixture, component: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"{component}: state store")
    ]


def test_one_line_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.store.outage")
    failures = FailureLog("outbox", every=0.2)
    before = metrics.store_errors.labels(component="outbox")._value.get()
    started = time.monotonic()
    for _ in range(60):  # a poll every 10 ms for 0.6 s
        failures.failed(ConnectionError("refused"))
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    failures.succeeded()
    lines = _store_lines(caplog, "outbox")
    assert lines[0].startswith("outbox: state store unreachable (ConnectionError: refused)")
    assert "reachable again after 60 failure(s)" in lines[-1]
    middle = lines[1:-1]
    assert 1 <= len(middle) <= int(elapsed / 0.2) + 1, lines
    assert all("still unreachable" in line for line in middle)
    assert metrics.store_errors.labels(component="outbox")._value.get() - before == 60
    assert not HEALTH.down


async def test_retrying_outlasts_a_short_outage_and_gives_up_when_told() -> None:
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise ResponseError("LOADING Redis is loading the dataset in memory")
        return "done"

    failures = FailureLog("jobs")
    assert await retrying(flaky, failures, first_delay=0.01) == "done"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == sorted(gaps)  # backing off

    async def down() -> None:
        raise ResponseError("READONLY You can't write against a read only replica.")

    deadline = time.monotonic() + 0.2
    with pytest.raises(ResponseError):
        await retrying(down, failures, while_=lambda: time.monotonic() < deadline)

    async def wrong() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await retrying(wrong, failures)


async def test_refusals_are_audited_once_the_store_is_back(tmp_path: Path) -> None:
    health = StoreHealth()
    health.failed()
    assert health.down and health.recovered_within(60)
    entry = AuditEntry(at=now(), actor="U1", action="request.refused", subject="")
    health.defer(entry)
    health.defer(entry.model_copy(update={"actor": "U2"}))
    health.succeeded()
    assert not health.down and health.recovered_within(60)
    await asyncio.sleep(0.05)
    assert not health.recovered_within(0.01)
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        assert await health.flush(store) == 2
        assert await health.flush(store) == 0  # each once
        assert [e.actor for e in await store.audit_since(0)] == ["U1", "U2"]
    finally:
        await store.close()
