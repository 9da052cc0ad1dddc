"""`rollbot audit --since` exports the append-only audit log as JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store.base import AuditEntry
from bot.store.sqlite import SqliteStore


async def _seed(db: Path) -> None:
    store = SqliteStore(db)
    await store.connect()
    await store.audit(
        AuditEntry(at=1_700_000_000.0, actor="U0OLD", action="rollback.requested", subject="rb-old")
    )
    await store.audit(
        AuditEntry(
            at=1_800_000_000.0,
            actor="U0NEW",
            action="rollback.approved",
            subject="rb-new",
            detail={"approver": "U0NEW"},
        )
    )
    await store.close()


def test_audit_export_since(tmp_path: Path) -> None:
    db = tmp_path / "rollbot.db"
    asyncio.run(_seed(db))
    env = {**os.environ, "ROLLBOT_DB": str(db)}
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "--since", "2024-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(e["actor"], e["action"]) for e in lines] == [("U0NEW", "rollback.approved")]
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "--since", "yesterday"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "not an ISO date" in bad.stderr


def test_audit_rows_cannot_be_rewritten(tmp_path: Path) -> None:
    db = tmp_path / "rollbot.db"
    asyncio.run(_seed(db))
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor='U0EVIL'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
