"""A redis-server of one test that can be killed and started again on the same port and data
(append-only file on, fsync on every write), to test Rollbot through a store outage."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.ports import free_port, stop_process
from tests.testbed.redis_server import READY_WITHIN, _binary, _ready


class RestartableRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RestartableRedis:
        """Start (on the port it had before, if any) and wait until it answers."""
        self.port = self.port or free_port()
        with (self.workdir / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(_binary(), "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                    *("--maxmemory-policy", "noeviction"),
                    *("--dir", str(self.workdir), "--daemonize", "no"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if not _ready(self.proc, self.port):
            log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server did not answer within {READY_WITHIN}s:\n{log}")
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more than the append-only file has."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RestartableRedis(workdir).start()
    yield server
    server.stop()
