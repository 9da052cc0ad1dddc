"""`rollbot check --online` warns when the Redis server would evict or lose Rollbot's state."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bot import cli
from bot.store.redis_check import check_store_online
from tests.e2e.helpers import catalog
from tests.testbed.ports import free_port
from tests.testbed.redis_restartable import RestartableRedis, restartable_redis  # noqa: F401


async def test_a_server_as_deployed_gets_no_warning(
    restartable_redis: RestartableRedis,  # noqa: F811  (append-only file on, noeviction)
) -> None:
    assert await check_store_online(restartable_redis.url) == []


async def test_persistence_off_is_reported(redis_url: str) -> None:
    # the session's server runs without snapshots and without an append-only file
    (warning,) = await check_store_online(redis_url)
    assert "persistence is off" in warning and "appendonly yes" in warning


async def test_an_evicting_policy_is_reported(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as admin:
        admin.config_set("maxmemory-policy", "volatile-lru")
        try:
            warnings = await check_store_online(redis_url)
        finally:
            admin.config_set("maxmemory-policy", "noeviction")
    assert any("maxmemory-policy is volatile-lru" in w for w in warnings), warnings
    assert any("noeviction" in w for w in warnings)


async def test_an_unreachable_server_is_a_warning_not_a_crash() -> None:
    (warning,) = await check_store_online(f"redis://127.0.0.1:{free_port()}/0")
    assert warning.startswith("Redis at REDIS_URL did not answer")


async def test_no_redis_no_store_warnings() -> None:
    assert await check_store_online(None) == []


def test_the_command_prints_the_warnings(
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ROLLBOT_CONFIG", str(catalog(tmp_path, "http://127.0.0.1:9/health")))
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = cli.main(["check", "--online"])
    out = capsys.readouterr().out
    assert "warning: Redis persistence is off" in out
    # a warning never fails the check: only this test's unreachable Slack and AWS do
    failed = [line.split(":")[0] for line in out.splitlines() if ": FAILED" in line]
    assert set(failed) <= {"slack", "aws"}, out
    assert code == (1 if failed else 0)
    assert cli.main(["check"]) == 0  # offline: the server is not asked
    assert "persistence" not in capsys.readouterr().out
