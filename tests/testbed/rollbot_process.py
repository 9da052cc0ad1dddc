"""Starts `rollbot serve` as a real subprocess (one or several replicas) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed import slack_requests
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, SlackSender

ROOT = Path(__file__).resolve().parents[2]


class RollbotProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sender(self) -> SlackSender:
        return SlackSender(self.url)

    def start(self) -> RollbotProcess:
        self.port = free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(self.port), "--host", "127.0.0.1"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._healthy, 20, "rollbot serve", interval=0.05)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"rollbot serve did not start:\n{self.log_text()}") from None
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"rollbot serve exited {self.proc.returncode}:\n{self.log_text()}")
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
            return resp.status == 200

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def restart(self) -> RollbotProcess:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def rollbot_server(
    fake_slack: FakeSlackApi, tmp_path: Path
) -> Iterator[Callable[..., RollbotProcess]]:
    """rollbot_server(config=Path, env={...}) -> a started RollbotProcess; call it again for
    more replicas. Each shares the SQLite file unless REDIS_URL is given."""
    started: list[RollbotProcess] = []
    slack_requests.RESPONSE_URL = fake_slack.response_url()

    def start(config: Path, env: dict[str, str] | None = None, **_: Any) -> RollbotProcess:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLBOT_", "SLACK_"))}
        full.update(
            {
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": fake_slack.url,
                "ROLLBOT_CONFIG": str(config),
                "ROLLBOT_DB": str(tmp_path / "rollbot.db"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        full.update(env or {})
        proc = RollbotProcess(full, tmp_path / f"rollbot-{len(started)}.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill(signal.SIGTERM)
    slack_requests.RESPONSE_URL = ""
