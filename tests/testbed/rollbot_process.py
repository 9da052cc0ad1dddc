"""Runs `python -m bot serve` (or `python -m bot socket`) as a real subprocess, one or several
replicas, wired to the fake Slack API, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed import slack_requests
from tests.testbed.ports import free_port
from tests.testbed.slack_api import APP_TOKEN, TOKEN, FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, SlackSender

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# Inherited settings that would point the bot at a developer's real services or switch its store.
NOT_INHERITED = ("SLACK_", "ROLLBOT_", "REDIS_", "AWS_", "GITHUB_")
# boto3 in the bot never reads ~/.aws nor waits on an instance metadata lookup; callers override.
AWS_ISOLATION = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class RollbotProcess:
    """One `rollbot serve` replica on a loopback port, or one `rollbot socket` replica with its
    Socket Mode connection to the fake Slack; stdout and stderr go to files (a pipe nobody reads
    would fill up and stall the bot)."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        name: str,
        socket: SocketReadiness | None = None,
    ) -> None:
        self.env = env
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket = socket  # set for `rollbot socket`: how to see it connected
        self.connection = 0  # its current Socket Mode connection's number

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sender(self) -> SlackSender:
        return SlackSender(self.url, self.env["SLACK_SIGNING_SECRET"])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def start(self, timeout: float = READY_TIMEOUT) -> RollbotProcess:
        """Start (on the same port as before, if there was one) and wait for GET /healthz, or
        in Socket Mode for its connection to the fake Slack."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.port = self.port or free_port()
        command = ["socket"] if self.socket else ["serve", "--host", "127.0.0.1"]
        command += [] if self.socket else ["--port", str(self.port)]
        started_at = time.time()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", *command],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # its own process group, so teardown also reaches anything the bot spawned
                start_new_session=True,
            )
        if self.socket:
            self._wait_connected(started_at, timeout)
        else:
            self._wait_healthy(timeout)
        return self

    def _wait_connected(self, since: float, timeout: float) -> None:
        assert self.proc is not None and self.socket is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before connecting"
                    f"\n--- stderr ---\n{self.stderr_text()}"
                )
            if number := self.socket.claim(since):
                self.connection = number
                return
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"{self.name} opened no Socket Mode connection within {timeout:g}s"
            f"\n--- stderr ---\n{self.stderr_text()}"
        )

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before answering /healthz"
                    f"\n--- stderr ---\n{self.stderr_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
                    last = f"status {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"status {exc.code}: {exc.read()[:200]!r}"
            except OSError as exc:  # refused or reset while the server starts
                last = repr(exc)
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"{self.name} did not answer /healthz with 200 within {timeout:g}s ({last})"
            f"\n--- stderr ---\n{self.stderr_text()}"
        )

    def kill(self, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send `sig` to the bot and wait for it to exit; returns its exit code."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL), and whatever it left in its process group."""
        self.kill(signal.SIGTERM)
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is already gone

    def restart(self, sig: int = signal.SIGKILL, timeout: float = READY_TIMEOUT) -> RollbotProcess:
        """Kill with `sig`, then start again with the same environment and port."""
        self.kill(sig)
        with self.stderr_path.open("ab") as err:
            err.write(b"\n----- restarted by the test -----\n")
        return self.start(timeout)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def log_text(self) -> str:
        """stdout then stderr (the bot logs to stderr)."""
        return self.stdout_text() + self.stderr_text()

    def healthz(self) -> tuple[int, Any]:
        return self._get("/healthz")

    def metrics(self) -> str:
        return str(self._get("/metrics", parse=False)[1])

    def _get(self, path: str, parse: bool = True) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        if not parse:
            return status, text
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def __repr__(self) -> str:
        return f"<RollbotProcess {self.name} pid={self.pid} url={self.url}>"


class SocketReadiness:
    """Tells which new Socket Mode connection belongs to which replica as they start, one at a
    time: each claims the first unclaimed connection opened after it was started."""

    def __init__(self, fake_slack: FakeSlackApi) -> None:
        self.fake = fake_slack
        self.claimed: set[int] = set()

    def claim(self, since: float) -> int:
        for connection in self.fake.socket.open_connections():
            if connection.number not in self.claimed and connection.opened_at >= since:
                self.claimed.add(connection.number)
                return connection.number
        return 0


def base_env(fake_slack: FakeSlackApi, config: Path, db: Path) -> dict[str, str]:
    """The environment of a bot wired to the fake Slack API, before the caller's overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env.update(AWS_ISOLATION)
    env.update(
        {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake_slack.url,
            "ROLLBOT_CONFIG": str(config),
            "ROLLBOT_DB": str(db),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def rollbot_server(
    fake_slack: FakeSlackApi, tmp_path: Path
) -> Iterator[Callable[..., RollbotProcess]]:
    """Factory that starts `python -m bot serve` on a free port and waits for /healthz:

        rollbot_server(config=None, *, catalog=None, env=None, timeout=15.0, socket=False)
            -> RollbotProcess

    socket: run `python -m bot socket` instead, with the fake's app-level token and a short
    ping interval, and wait for its Socket Mode connection (envelopes go through
    fake_slack.socket then; proc.connection is its connection's number).

    config: catalog file to use; catalog: YAML text or a mapping written to a file first;
    neither: tmp_path/rollbot.yml, written by the test. env: overrides (REDIS_URL,
    AWS_ENDPOINT_URL, ROLLBOT_STATUS_INTERVAL, ...). Call it again for more replicas; they share
    the SQLite file tmp_path/rollbot.db unless REDIS_URL is given. All stop at teardown.
    """
    started: list[RollbotProcess] = []
    readiness = SocketReadiness(fake_slack)
    slack_requests.RESPONSE_URL = fake_slack.response_url()

    def start(
        config: Path | str | None = None,
        *,
        catalog: str | Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = READY_TIMEOUT,
        socket: bool = False,
    ) -> RollbotProcess:
        n = len(started)
        if catalog is not None:
            text = catalog if isinstance(catalog, str) else yaml.safe_dump(dict(catalog))
            config = tmp_path / f"rollbot-{n}.yml"
            Path(config).write_text(text)
        path = Path(config) if config is not None else tmp_path / "rollbot.yml"
        full = base_env(fake_slack, path, tmp_path / "rollbot.db")
        if socket:
            full.update({"SLACK_APP_TOKEN": APP_TOKEN, "ROLLBOT_SOCKET_PING_SECONDS": "0.5"})
        full.update(env or {})
        proc = RollbotProcess(full, tmp_path, f"rollbot-{n}", readiness if socket else None)
        started.append(proc)  # before start(), so a replica that fails to start is cleaned up
        return proc.start(timeout)

    yield start
    for proc in started:
        proc.stop()
    slack_requests.RESPONSE_URL = ""
