"""A real redis-server on a free loopback port for the whole test session, flushed per test."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.testbed.ports import free_port, stop_process

ATTEMPTS = 5  # another process may take the chosen port before the server binds it
READY_WITHIN = 10.0


def _binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        pytest.fail(
            "redis-server is not installed: the store and replica tests need a real one "
            "(apt-get install redis-server; .ci/run installs it)",
            pytrace=False,
        )
    return found


def _ready(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Wait until our process answers on `port`; False if it exits first (port taken)."""
    deadline = time.monotonic() + READY_WITHIN
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                # the pid check keeps us from using some other server that won the port
                if client.info("server")["process_id"] == proc.pid:
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.01)
        return False
    finally:
        client.close()


def _start(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = _binary()
    log = workdir / "redis.log"
    for _ in range(ATTEMPTS):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    *(binary, "--port", str(port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no"),
                    *("--dir", str(workdir), "--daemonize", "no"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if _ready(proc, port):
            return proc, port
        stop_process(proc)
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"redis-server did not start after {ATTEMPTS} tries; its log:\n{tail}")


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, port = _start(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The session's server, emptied before each test."""
    with redis.Redis.from_url(redis_server_url) as client:
        client.flushall()
    yield redis_server_url
