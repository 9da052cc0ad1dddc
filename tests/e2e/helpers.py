"""What the end-to-end tests share: the people, the `api` catalog, signed clicks, waiting for
the approval request and the posts that end a rollback, and reading the bot's SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.base import JournalEntry
from bot.store.sqlite import SqliteStore
from tests.testbed.aws import Aws
from tests.testbed.http_backend import Backend
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import Call, FakeSlackApi
from tests.testbed.slack_requests import block_action, slash_command

LEAD, REQUESTER, STRANGER = "U0LEAD", "U0REQUESTER", "U0STRANGER"
CLUSTER, SERVICE = "sandbox-broker-cluster", "sandbox-broker"


def catalog(tmp_path: Path, health_url: str, extra: str = "") -> Path:
    """rollbot.yml with the `api` target (ECS service sandbox-broker) and `extra` targets."""
    path = tmp_path / "rollbot.yml"
    path.write_text(f"""\
approvers: [{LEAD}, S0SRE]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    description: all API traffic
    cluster: {CLUSTER}
    service: {SERVICE}
    region: eu-central-1
    health_urls: ["{health_url}"]
    log_groups: [/ecs/sandbox-broker]
    poll_delay: 0.2
    poll_timeout: 20
{extra}""")
    return path


@dataclass
class ApiTestBed:
    """The ECS service sandbox-broker on moto (revisions 1..3, running 3), the health endpoint
    the `api` target checks, and a starter of bots on the catalog naming them."""

    aws: Aws
    health: Backend
    arns: list[str]
    tmp_path: Path
    rollbot_server: Callable[..., RollbotProcess]

    @property
    def db(self) -> Path:
        """The SQLite file the bots share (unless they are given REDIS_URL)."""
        return self.tmp_path / "rollbot.db"

    def start_bot(self, env: dict[str, str] | None = None, extra: str = "") -> RollbotProcess:
        """A `rollbot serve` replica on the `api` catalog (plus `extra` targets), talking to
        moto; `env` overrides its environment."""
        config = catalog(self.tmp_path, self.health.url, extra)
        return self.rollbot_server(config=config, env={**self.aws.env, **(env or {})})


MESSAGE_OF: dict[str, str] = {}  # button value -> ts of the message that carries it


def approval_value(fake: FakeSlackApi, nth: int = 0) -> str:
    """The Approve button's value of the nth approval request, remembering its message."""
    calls = fake.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=nth + 1
    )
    call = calls[nth]
    actions = next(b for b in call.args["blocks"] if b["type"] == "actions")
    texts = [e["text"]["text"] for e in actions["elements"]]
    assert texts == ["Approve", "Reject"]
    value = actions["elements"][0]["value"]
    MESSAGE_OF[value] = call.response["ts"]
    # the requester is told once the request is ready for a decision; a click before then
    # (faster than a person) would find the rollback still being prepared
    deadline = time.monotonic() + 15
    while len([r for r in fake.responses if "waiting for approval" in r.get("text", "")]) <= nth:
        assert time.monotonic() < deadline, "the rollback never became ready for approval"
        time.sleep(0.05)
    return value


def request_rollback(bot: Any, fake: FakeSlackApi, text: str, nth: int = 0) -> str:
    """`/rollback TEXT` from the requester; the Approve value of the (nth) approval request."""
    bot.sender.post(*slash_command("/rollback", text, user_id=REQUESTER))
    return approval_value(fake, nth)


def click(
    bot: Any, action: str, value: str, user: str, message_ts: str | None = None
) -> tuple[int, float]:
    """A signed click on the button of the message that carries `value`."""
    started = time.monotonic()
    ts = message_ts or MESSAGE_OF.get(value, "1.000001")
    status, _ = bot.sender.post(*block_action(action, value, user_id=user, message_ts=ts))
    return status, time.monotonic() - started


def is_completion(call: Call) -> bool:
    return "ROLLBACK COMPLETE" in call.args.get("text", "")


def has_ended(call: Call) -> bool:
    """The announcement that a rollback completed or failed."""
    text = call.args.get("text", "")
    return "ROLLBACK COMPLETE" in text or "ROLLBACK FAILED" in text


def read_journal(db: Path) -> list[JournalEntry]:
    """The step journal of the only rollback in the bot's SQLite file."""

    async def read() -> list[JournalEntry]:
        store = SqliteStore(db)
        await store.connect()
        try:
            (record,) = await store.list_records("rollback")
            return await store.journal(record.id)
        finally:
            await store.close()

    return asyncio.run(read())


def audit_actions(db: Path) -> list[tuple[str, str]]:
    rows = sqlite3.connect(db).execute("SELECT actor, action FROM audit ORDER BY seq")
    return [(a, b) for a, b in rows]


def record_state(db: Path, rollback_id: str) -> str:
    row = sqlite3.connect(db).execute("SELECT state FROM records WHERE id=?", (rollback_id,))
    return row.fetchone()[0]
