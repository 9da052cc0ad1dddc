"""The log line of a refused request says how the store failed: a full disk, a locked or
read-only file and a lost connection need different fixes."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from bot.store.outage import HEALTH, FailureLog, StoreHealth, StoreWasUnreachable


def test_a_refusal_carries_the_last_cause() -> None:
    health = StoreHealth()
    assert str(StoreWasUnreachable(health.cause)) == (
        "the state store was unreachable a moment ago"
    )
    health.failed(sqlite3.OperationalError("database or disk is full"))
    refusal = StoreWasUnreachable(health.cause)
    assert str(refusal).endswith("a moment ago: OperationalError: database or disk is full")
    # noting the refusal does not replace the cause with itself
    health.failed(refusal)
    assert health.cause == "OperationalError: database or disk is full"
    health.failed(sqlite3.OperationalError("database is locked"))
    assert health.cause == "OperationalError: database is locked"


def test_the_listeners_line_names_the_disk_full(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog("listeners")
    HEALTH.failed(sqlite3.OperationalError("database or disk is full"))
    with caplog.at_level(logging.WARNING, logger="bot.store.outage"):
        failures.failed(StoreWasUnreachable(HEALTH.cause))
    assert "listeners: state store unreachable" in caplog.text
    assert "OperationalError: database or disk is full" in caplog.text
    HEALTH.succeeded()
