"""A real PostgreSQL server (Debian's) on a free loopback port for the whole test session; each
test gets a database of its own."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.testbed.ports import free_port, stop_process, wait_until

ATTEMPTS = 5  # another process may take the chosen port before the server binds it
SUPERUSER = "postgres"
_names = itertools.count(1)


def _server_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=_version)
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: the database backup and restore tests need a real "
            "server (apt-get install postgresql; .ci/run installs it)",
            pytrace=False,
        )
    return found[-1].parent


def _version(path: Path) -> int:
    return int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0


def _as_server_user(argv: list[str]) -> list[str]:
    # the server refuses to run as root; Debian's package makes a `postgres` account for it
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresServer:
    bin_dir: Path
    port: int
    host: str = "127.0.0.1"

    def psql(self, database: str, sql: str) -> str:
        """Run SQL as the superuser; rows as `a|b` lines."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *self.connection(database)],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            raise AssertionError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def connection(self, database: str) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database]

    def create_database(self) -> str:
        name = f"app_{os.getpid()}_{next(_names)}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name


def _answers(proc: subprocess.Popen[bytes], server: PostgresServer) -> bool:
    return proc.poll() is None and server.psql("postgres", "SELECT 1") == "1"


def _start(bin_dir: Path, data: Path, sockets: Path) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(ATTEMPTS):
        port = free_port()
        proc = subprocess.Popen(
            _as_server_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",  # a test server: speed over durability
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=(data.parent / "server.log").open("ab"),
        )
        try:
            server = PostgresServer(bin_dir, port)
            wait_until(lambda p=proc, s=server: _answers(p, s), 30, "postgres", 0.1)
            return proc, port
        except TimeoutError:
            proc.kill()
            proc.wait()
    log = (data.parent / "server.log").read_text()[-2000:]
    raise RuntimeError(f"PostgreSQL did not start after {ATTEMPTS} tries:\n{log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _server_bin()
    # not under pytest's tmp dir: that is private to root, and the server runs as `postgres`
    base = Path(tempfile.mkdtemp(prefix="rollbot-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, SUPERUSER)
        shutil.chown(sockets, SUPERUSER)
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    proc, port = _start(bin_dir, data, sockets)
    try:
        yield PostgresServer(bin_dir, port)
    finally:
        stop_process(proc, grace=30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Callable[[], str]:
    """Factory: a new, empty database on the session's server."""
    return postgres_server.create_database
