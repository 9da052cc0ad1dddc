"""`rollbot audit --verify`, run as the real command on the store a `rollbot serve` wrote during
a whole rollback (SQLite file and redis-server): intact, it prints the count and head hash;
an edited, deleted or reordered entry, or a tail cut behind a recorded head, makes it fail
naming the entry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bot.store.base import AuditEntry
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from tests.e2e.helpers import LEAD, STRANGER, ApiTestBed, click, is_completion, request_rollback
from tests.store.audit_tamper import RedisTamperer, SqliteTamperer, Tamperer
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]


def rollbot_audit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


class StoreCopies:
    """Copies of the store the bot wrote, one per tampering, each with the env that points
    `rollbot audit` at it."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env, self.tmp_path, self.made = env, tmp_path, 0
        self.redis_url = env.get("REDIS_URL")

    def log(self) -> list[AuditEntry]:
        store = (
            RedisStore(self.redis_url) if self.redis_url else SqliteStore(self.env["ROLLBOT_DB"])
        )

        async def read() -> list[AuditEntry]:
            await store.connect()
            try:
                return await store.audit_since(float("-inf"), limit=1_000_000)
            finally:
                await store.close()

        return asyncio.run(read())

    @contextmanager
    def copy(self) -> Iterator[tuple[Tamperer, dict[str, str]]]:
        self.made += 1
        if self.redis_url:
            url = self.redis_url.rsplit("/", 1)[0] + f"/{self.made}"
            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter("rollbot:*"):
                client.copy(key, key, destination_db=self.made, replace=True)
            client.close()
            tamperer: Tamperer = RedisTamperer(url)
            env = {**self.env, "REDIS_URL": url}
        else:
            path = self.tmp_path / f"copy-{self.made}.db"
            with sqlite3.connect(self.env["ROLLBOT_DB"]) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
            tamperer = SqliteTamperer(path)
            env = {**self.env, "ROLLBOT_DB": str(path)}
        try:
            yield tamperer, env
        finally:
            tamperer.close()


@pytest.fixture(params=["sqlite", "redis"])
def finished_rollback(
    request: pytest.FixtureRequest, api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> RollbotProcess:
    """A bot that ran one approved rollback (with a stranger's click refused) and stopped."""
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    bot = api_bed.start_bot(env=env)
    value = request_rollback(bot, fake_slack, "api")
    click(bot, "rollback_approve", value, STRANGER)
    fake_slack.wait_for_response(lambda r: "Only the approvers" in r.get("text", ""))
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)
    fake_slack.wait_for("files.completeUploadExternal", count=2, timeout=30)  # the report
    bot.stop()
    return bot


def seq_of(log: list[AuditEntry], actor: str, action: str) -> int:
    return next(e.seq for e in log if e.actor == actor and e.action == action)


def rewrite_the_approver(t: Tamperer, log: list[AuditEntry]) -> int:
    seq = seq_of(log, LEAD, "rollback.approved")
    t.edit(seq, actor=STRANGER)
    return seq


def delete_the_refusal(t: Tamperer, log: list[AuditEntry]) -> int:
    seq = seq_of(log, STRANGER, "rollback.decision_refused")
    t.delete(seq)
    return seq


def move_the_approval_earlier(t: Tamperer, log: list[AuditEntry]) -> int:
    seq = seq_of(log, LEAD, "rollback.approved")
    t.swap(seq - 1, seq)
    return seq - 1


# each does its tampering and returns the entry `--verify` has to name, with the word it uses
TAMPERINGS: dict[str, tuple[Callable[[Tamperer, list[AuditEntry]], int], str]] = {
    "the approver rewritten": (rewrite_the_approver, "changed"),
    "the refusal deleted": (delete_the_refusal, "removed"),
    "the approval moved earlier": (move_the_approval_earlier, "reordered"),
}


def test_audit_verify_on_what_the_bot_wrote(
    finished_rollback: RollbotProcess, tmp_path: Path
) -> None:
    stores = StoreCopies(finished_rollback.env, tmp_path)
    log = stores.log()
    assert len(log) >= 5 and seq_of(log, LEAD, "rollback.approved")

    intact = rollbot_audit(stores.env, "--verify")
    assert intact.returncode == 0, intact.stderr
    (summary,) = intact.stdout.splitlines()
    assert summary == (
        f"audit log intact: {len(log)} entries, head entry {log[-1].seq} sha256:{log[-1].hash}"
    )
    assert rollbot_audit(stores.env, "--verify", "--expect-head", log[-1].hash).returncode == 0

    for name, (tamper, word) in TAMPERINGS.items():
        with stores.copy() as (tamperer, env):
            named = tamper(tamperer, log)
            found = rollbot_audit(env, "--verify")
        assert found.returncode == 1, (name, found.stdout, found.stderr)
        assert f"TAMPERED at entry {named}: {word}" in found.stderr, (name, found.stderr)
        assert "Traceback" not in found.stderr

    # a cut tail passes alone and fails against the head recorded before
    with stores.copy() as (tamperer, env):
        tamperer.cut_tail(2)
        alone = rollbot_audit(env, "--verify")
        anchored = rollbot_audit(env, "--verify", "--expect-head", f"sha256:{log[-1].hash}")
    assert alone.returncode == 0 and f"{len(log) - 2} entries" in alone.stdout
    assert anchored.returncode == 1 and "cut off the end" in anchored.stderr
    # the original store was never touched
    assert rollbot_audit(stores.env, "--verify").stdout.strip() == summary


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_replicas_auditing_at_once_extend_one_chain(
    backend: str, api_bed: ApiTestBed, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    bots = [api_bed.start_bot(env=env) for _ in range(3)]
    clicks = 30  # each an audited refusal, written by whichever replica it reaches

    def forged(n: int) -> int:
        value = json.dumps({"id": f"rb-{n:08d}"})
        return click(bots[n % len(bots)], "rollback_approve", value, LEAD)[0]

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(forged, range(clicks))) == {200}
    stores = StoreCopies(bots[0].env, tmp_path)
    deadline = time.monotonic() + 20
    while sum(e.action == "rollback.forged_click" for e in stores.log()) < clicks:
        assert time.monotonic() < deadline, "not every click was audited"
        time.sleep(0.2)
    for bot in bots:
        bot.stop()
    log = stores.log()
    out = rollbot_audit(stores.env, "--verify")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"audit log intact: {len(log)} entries, head entry {log[-1].seq}")


def test_expect_head_needs_verify(tmp_path: Path) -> None:
    out = rollbot_audit({"ROLLBOT_DB": str(tmp_path / "x.db"), "PATH": ""}, "--expect-head", "ab")
    assert out.returncode == 2 and "--expect-head needs --verify" in out.stderr
