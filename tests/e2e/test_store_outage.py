"""Rollbot through a state store outage, on real processes: redis-server killed and started
again on its append-only file, an executing replica paused (SIGSTOP) longer than its lease, an
SQLite file locked, read-only or on a full disk. Exactly one executor runs a step at a time, the
change reaches AWS once, the run completes once, and every request meanwhile is told the store
is unreachable."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.helpers import (
    LEAD,
    REQUESTER,
    ApiTestBed,
    approval_value,
    click,
    is_completion,
    record_state,
)
from tests.testbed.aws_gate import AwsGate
from tests.testbed.ports import wait_until
from tests.testbed.redis_restartable import RestartableRedis, restartable_redis  # noqa: F401
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import block_action, slash_command, view_submission

UNREACHABLE = "state store is unreachable: nothing was changed"
ENV = {"ROLLBOT_STATUS_INTERVAL": "1", "ROLLBOT_LEASE_SECONDS": "2"}
OUTAGE = 8.0  # seconds the store is away: four leases
ANSWER_WITHIN = 3.0
COMPONENTS = ("jobs", "execution", "outbox", "delivery_notes", "listeners", "healthz")


# -- reading the store and the processes ---------------------------------------------------------


def _record(r: redis.Redis, rid: str) -> dict[str, Any]:
    return json.loads(r.get(f"rollbot:rec:{rid}"))


def executor_of(r: redis.Redis, rid: str, bots: list[RollbotProcess]) -> RollbotProcess:
    """The replica whose claim runs the rollback now ("<host>-<pid>-<tag>:<token>")."""
    executor = _record(r, rid)["data"]["executor"]
    pid = int(executor.split(":")[0].split("-")[-2])
    return next(b for b in bots if b.pid == pid)


def journal(r: redis.Redis, rid: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in r.lrange(f"rollbot:journal:{rid}", 0, -1)]


def audit_actions(r: redis.Redis) -> list[dict[str, Any]]:
    entries = [json.loads(v) for v in r.hvals("rollbot:audit:log")]
    return sorted(entries, key=lambda e: e["seq"])


def assert_one_executor_at_a_time(entries: list[dict[str, Any]]) -> None:
    """Journal entries in time order: the claims (fencing tokens) never interleave, and within
    one claim a step starts only after the one before it ended."""
    by_time = sorted(entries, key=lambda e: (e["at"], e["seq"]))
    fences = [e["fence"] for e in by_time]
    assert all(f > 0 for f in fences), fences
    assert fences == sorted(fences), [(e["fence"], e["step_id"], e["event"]) for e in by_time]
    for fence in set(fences):
        running: str | None = None
        for e in (x for x in by_time if x["fence"] == fence):
            if e["event"] == "start":
                assert running is None, f"claim {fence} started {e['step_id']} during {running}"
                running = e["step_id"]
            else:
                assert running in (None, e["step_id"])
                running = None


def assert_status_updates_once(fake_slack: FakeSlackApi) -> None:
    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    stamps = Counter(t.split("*Next update:* ")[1] for t in posts if "*Status update —" in t)
    assert stamps and max(stamps.values()) == 1, stamps  # each due time posted once


def store_log_lines(bot: RollbotProcess) -> Counter[str]:
    """Lines about the state store per component, from the bot's log."""
    pattern = re.compile(r" (\w+): state store (unreachable|still unreachable|reachable again)")
    found: Counter[str] = Counter()
    for line in bot.log_text().splitlines():
        if m := pattern.search(line):
            found[m.group(1)] += 1
    return found


def store_answers(fake_slack: FakeSlackApi) -> int:
    return sum(UNREACHABLE in str(r.get("text", "")) for r in list(fake_slack.responses))


def answer_seconds(fake_slack: FakeSlackApi, send: Callable[[], Any]) -> float:
    """Send one request; seconds until its answer said the store is unreachable (in the
    acknowledgement itself, or posted to its response_url)."""
    before = store_answers(fake_slack)
    started = time.monotonic()
    reply = send()
    if UNREACHABLE in reply.text:
        return reply.elapsed
    wait_until(lambda: store_answers(fake_slack) > before, 10, "the store-unreachable answer")
    return time.monotonic() - started


def ask_during_outage(
    bots: list[RollbotProcess], fake_slack: FakeSlackApi, value: str, target: str = "api"
) -> list[float]:
    """A /rollback and an Approve click on every replica; each answer's latency."""
    latencies = []
    for bot in bots:
        latencies.append(
            answer_seconds(
                fake_slack,
                lambda b=bot: b.sender.post(*slash_command("/rollback", target, user_id=REQUESTER)),
            )
        )
        latencies.append(
            answer_seconds(
                fake_slack,
                lambda b=bot: b.sender.post(
                    *block_action("rollback_approve", value, user_id=LEAD, message_ts="1.000001")
                ),
            )
        )
    return latencies


def start_bots(api_bed: ApiTestBed, n: int, url: str, gate: AwsGate) -> list[RollbotProcess]:
    env = {**ENV, "REDIS_URL": url, "AWS_ENDPOINT_URL": gate.url}
    return [api_bed.start_bot(env=env) for _ in range(n)]


def approve(bots: list[RollbotProcess], fake_slack: FakeSlackApi) -> tuple[str, str]:
    bots[0].sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    click(bots[-1], "rollback_approve", value, LEAD)
    return value, json.loads(value)["id"]


def wait_for_step(r: redis.Redis, rid: str, step_id: str, event: str = "start") -> None:
    wait_until(
        lambda: any(e["step_id"] == step_id and e["event"] == event for e in journal(r, rid)),
        30,
        f"the {step_id} step to {event}",
    )


def completions(fake_slack: FakeSlackApi) -> list[str]:
    return [c.args["text"] for c in fake_slack.calls_to("chat.postMessage") if is_completion(c)]


# -- redis-server killed and started again -------------------------------------------------------


@pytest.mark.parametrize("replicas", [2, 3])
def test_redis_killed_during_verification(
    replicas: int,
    api_bed: ApiTestBed,
    aws_gate: AwsGate,
    fake_slack: FakeSlackApi,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    r = redis.Redis.from_url(restartable_redis.url, decode_responses=True)
    api_bed.health.status = 503  # holds the rollback in its health check
    bots = start_bots(api_bed, replicas, restartable_redis.url, aws_gate)
    value, rid = approve(bots, fake_slack)
    fake_slack.wait_for("chat.postMessage", lambda c: "*Status update —" in c.args["text"])
    wait_for_step(r, rid, "health")
    # each of the check's five attempts now takes 4 s: the check outlasts the outage
    api_bed.health.delay = 4.0

    restartable_redis.kill()
    down_at = time.monotonic()
    latencies = ask_during_outage(bots, fake_slack, value)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    for bot in bots:
        status, body = bot.healthz()
        assert status == 503 and body["store"]["ok"] is False
    restartable_redis.start()
    wait_until(lambda: all(b.healthz()[0] == 200 for b in bots), 10, "healthz back to 200")
    api_bed.health.status, api_bed.health.delay = 200, 0.0
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    time.sleep(2.5)  # a second completion or a late duplicate would show up by now

    print(f"answers during the outage (s): {[round(x, 2) for x in latencies]}")
    assert max(latencies) < ANSWER_WITHIN, latencies
    assert len(completions(fake_slack)) == 1
    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    # the executor renewed its claim once the store was back: nobody took over
    assert not [t for t in posts if "resumed by replica" in t]
    assert_status_updates_once(fake_slack)
    assert aws_gate.forwarded["UpdateService"] == 1
    entries = journal(r, rid)
    assert_one_executor_at_a_time(entries)
    assert [e["step_id"] for e in entries if e["event"] == "start"].count("update") == 1
    assert _record(r, rid)["state"] == "succeeded"
    # every refused request is audited once the store is back, once each
    wait_until(
        lambda: sum(a["action"] == "request.refused" for a in audit_actions(r)) >= len(latencies),
        10,
        "the refusals' audit entries",
    )
    refused = [a for a in audit_actions(r) if a["action"] == "request.refused"]
    assert len(refused) == len(latencies)
    assert {a["actor"] for a in refused} == {REQUESTER, LEAD}
    states = [a["action"] for a in audit_actions(r) if a["action"].startswith("rollback.")]
    assert len(states) == len(set(states)), states  # each state once
    for bot in bots:
        lines = store_log_lines(bot)
        print(f"{bot.name} store log lines: {dict(lines)}")
        assert lines["jobs"] >= 2  # it said the store went away, and that it came back
        # one line when it started failing, at most one per 10 s meanwhile, one when it is back
        assert max(lines.values()) <= 3, lines
        assert "Traceback" not in bot.stderr_text()
        assert re.search(r'rollbot_store_errors_total\{component="jobs"\} [1-9]', bot.metrics())
    assert fake_slack.errors == []


@pytest.mark.parametrize("replicas", [2, 3])
def test_redis_killed_inside_a_change(
    replicas: int,
    api_bed: ApiTestBed,
    aws_gate: AwsGate,
    fake_slack: FakeSlackApi,
    restartable_redis: RestartableRedis,  # noqa: F811
) -> None:
    r = redis.Redis.from_url(restartable_redis.url, decode_responses=True)
    bots = start_bots(api_bed, replicas, restartable_redis.url, aws_gate)
    down: list[float] = []
    back: list[float] = []

    def outage() -> None:  # AWS made the change; its answer waits for the store to return
        fake_slack.wait_for("chat.postMessage", lambda c: "*Status update —" in c.args["text"])
        restartable_redis.kill()
        down.append(time.monotonic())
        time.sleep(OUTAGE)
        restartable_redis.start()
        back.append(time.time())

    aws_gate.trap("UpdateService", "after", outage)
    value, rid = approve(bots, fake_slack)
    wait_until(lambda: bool(down), 30, "the store outage")
    latencies = ask_during_outage(bots, fake_slack, value)
    wait_until(lambda: bool(back), 30, "the store to return")
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    time.sleep(2.5)

    print(f"answers during the outage (s): {[round(x, 2) for x in latencies]}")
    assert max(latencies) < ANSWER_WITHIN, latencies
    assert len(completions(fake_slack)) == 1
    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert not [t for t in posts if "resumed by replica" in t]  # the executor kept its claim
    assert aws_gate.forwarded["UpdateService"] == 1
    entries = journal(r, rid)
    assert_one_executor_at_a_time(entries)
    ends = {e["step_id"]: e for e in entries if e["event"] == "end"}
    # the change in flight finished and was journaled once the store was back
    assert ends["update"]["outcome"] == "ok" and ends["update"]["at"] > back[0] - 1
    assert ends["update"]["output"].get("resumed") is not True
    assert len({e["fence"] for e in entries}) == 1
    assert _record(r, rid)["state"] == "succeeded"
    assert_status_updates_once(fake_slack)
    for bot in bots:
        assert max(store_log_lines(bot).values()) <= 3
        assert "Traceback" not in bot.stderr_text()


# -- an executing replica paused longer than its lease -------------------------------------------


def pause_until_done(
    bot: RollbotProcess, fake_slack: FakeSlackApi, resumed: list[float]
) -> Callable[[], None]:
    """SIGSTOP the executor; SIGCONT once a successor completed the rollback."""

    def pause() -> None:
        assert bot.pid is not None
        os.kill(bot.pid, signal.SIGSTOP)
        try:
            fake_slack.wait_for("chat.postMessage", is_completion, timeout=60)
        finally:
            resumed.append(time.time())
            os.kill(bot.pid, signal.SIGCONT)

    return pause


def assert_fenced_and_replaced(
    bot: RollbotProcess, fake_slack: FakeSlackApi, r: redis.Redis, rid: str
) -> None:
    wait_until(lambda: "stopped before the end" in bot.stderr_text(), 20, "the stale executor")
    # its late write was refused by the store, and it said so
    assert re.search(r"stopped before the end: .*(refused|taken over)", bot.stderr_text())
    time.sleep(2.0)
    assert len(completions(fake_slack)) == 1
    takeovers = [
        c.args["text"]
        for c in fake_slack.calls_to("chat.postMessage")
        if "resumed by replica" in c.args["text"]
    ]
    assert len(takeovers) == 1 and f"-{bot.pid}-" in takeovers[0], takeovers
    assert "lease ran out" in takeovers[0]
    audit = [a for a in audit_actions(r) if a["action"] == "execution.takeover"]
    assert len(audit) == 1 and f"-{bot.pid}-" in audit[0]["detail"]["replaced"]
    assert _record(r, rid)["state"] == "succeeded"
    assert_status_updates_once(fake_slack)
    assert "Traceback" not in bot.stderr_text()


@pytest.mark.parametrize("replicas", [2, 3])
def test_executor_paused_inside_a_change(
    replicas: int,
    api_bed: ApiTestBed,
    aws_gate: AwsGate,
    fake_slack: FakeSlackApi,
    redis_url: str,
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bots = start_bots(api_bed, replicas, redis_url, aws_gate)
    resumed: list[float] = []
    found: list[RollbotProcess] = []

    def pause_the_executor() -> None:  # AWS made the change; its answer waits meanwhile
        found.append(executor_of(r, json.loads(value)["id"], bots))
        pause_until_done(found[0], fake_slack, resumed)()

    bots[0].sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    rid = json.loads(value)["id"]
    aws_gate.trap("UpdateService", "after", pause_the_executor)
    click(bots[-1], "rollback_approve", value, LEAD)
    wait_until(lambda: bool(resumed), 90, "the paused executor to continue")
    stale = found[0]
    assert_fenced_and_replaced(stale, fake_slack, r, rid)

    assert aws_gate.forwarded["UpdateService"] == 1  # the change reached AWS once
    # once the stale executor continued, it made no AWS call at all
    assert [op for at, op in aws_gate.operations if at > resumed[0]] == []
    entries = journal(r, rid)
    assert_one_executor_at_a_time(entries)
    ends = {e["step_id"]: e for e in entries if e["event"] == "end"}
    assert ends["update"]["output"]["resumed"] is True  # the successor only looked
    assert ends["update"]["fence"] > min(e["fence"] for e in entries)


@pytest.mark.parametrize("replicas", [2, 3])
def test_executor_paused_during_verification(
    replicas: int,
    api_bed: ApiTestBed,
    aws_gate: AwsGate,
    fake_slack: FakeSlackApi,
    redis_url: str,
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    api_bed.health.status = 503
    bots = start_bots(api_bed, replicas, redis_url, aws_gate)
    _, rid = approve(bots, fake_slack)
    wait_for_step(r, rid, "health")
    stale = executor_of(r, rid, bots)
    assert stale.pid is not None
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        fake_slack.wait_for(
            "chat.postMessage", lambda c: "resumed by replica" in c.args["text"], timeout=30
        )
        api_bed.health.status = 200
        fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    assert_fenced_and_replaced(stale, fake_slack, r, rid)
    assert aws_gate.forwarded["UpdateService"] == 1
    entries = journal(r, rid)
    assert_one_executor_at_a_time(entries)
    starts = [e for e in entries if e["event"] == "start"]
    assert [e["step_id"] for e in starts].count("update") == 1


# -- SQLite: locked, read-only -------------------------------------------------------------------

# A second target on the same service: a request for it must write (its target lock).
WEB_TARGET = """\
  web:
    playbook: ecs-revision
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
    health_urls: ["{health}"]
"""


def sqlite_bot(api_bed: ApiTestBed) -> RollbotProcess:
    return api_bed.start_bot(env=ENV, extra=WEB_TARGET.format(health=api_bed.health.url))


def test_sqlite_locked_gets_the_same_answer(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    bot = sqlite_bot(api_bed)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    holder = sqlite3.connect(api_bed.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        latencies = ask_during_outage([bot], fake_slack, value, "web")
        latencies += ask_during_outage([bot], fake_slack, value, "web")  # once it knows
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    print(f"answers while the SQLite file was locked (s): {[round(x, 2) for x in latencies]}")
    assert max(latencies) < ANSWER_WITHIN, latencies
    wait_until(lambda: _refusals(api_bed.db) >= len(latencies), 15, "the refusals' audit entries")
    assert _refusals(api_bed.db) == len(latencies)
    assert "Traceback" not in bot.stderr_text()
    assert max(store_log_lines(bot).values()) <= 3


def _refusals(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT count(*) FROM audit WHERE action='request.refused'")
        return int(row.fetchone()[0])


def form_values(target: str) -> dict[str, Any]:
    """The rollback form's state as Slack reports it, for `target` to 2 because "r"."""
    return {
        "target": {"value": {"type": "static_select", "selected_option": {"value": target}}},
        "ref": {"value": {"type": "plain_text_input", "value": "2"}},
        "reason": {"value": {"type": "plain_text_input", "value": "r"}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "high"}}},
    }


def _chattr(flag: str, files: list[Path]) -> None:
    done = subprocess.run(["chattr", flag, *map(str, files)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make files immutable here: {done.stderr.decode(errors='replace')}")


def test_sqlite_read_only_gets_the_same_answer(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    bot = sqlite_bot(api_bed)
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    db = api_bed.db
    files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    _chattr("+i", files)  # even root may not write them now: the database is read-only
    try:
        latencies = ask_during_outage([bot], fake_slack, value, "web")
        latencies += ask_during_outage([bot], fake_slack, value, "web")
        form = bot.sender.post(
            *view_submission("rollback_modal", form_values("web"), user_id=REQUESTER)
        )
    finally:
        _chattr("-i", files)
    # the form stays open, the line under its first field
    assert form.json["response_action"] == "errors" and list(form.json["errors"]) == ["target"]
    assert UNREACHABLE in form.json["errors"]["target"] and form.elapsed < ANSWER_WITHIN
    print(f"answers while the SQLite file was read-only (s): {[round(x, 2) for x in latencies]}")
    assert max(latencies) < ANSWER_WITHIN, latencies
    wait_until(lambda: _refusals(db) > len(latencies), 15, "the refusals' audit entries")
    assert _refusals(db) == len(latencies) + 1  # and the form's
    assert "Traceback" not in bot.stderr_text()
    assert max(store_log_lines(bot).values()) <= 3
    # nothing was changed: the rollback still waits for its approver, who can approve it now
    assert record_state(db, json.loads(value)["id"]) == "awaiting_approval"
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)


# -- SQLite: a full disk ---------------------------------------------------------------------------

DISK_SIZE = "2m"  # the file and a whole rollback's write-ahead log take about 0.7 MB
DISK_FULL = "database or disk is full"  # SQLite's words for SQLITE_FULL


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE, mounted before the bots start and unmounted after they stop
    (request it before api_bed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs"]
    try:
        done = subprocess.run([*mount, str(mount_point)], capture_output=True)
    except OSError as exc:  # no mount command at all
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def truncate_write_ahead_log(db: Path) -> None:
    """Checkpoint the write-ahead log into the file and cut it to zero bytes (as a backup or
    an operator's checkpoint does), so the bot's next write needs new blocks on the disk;
    a log that was only reset would take writes into its old blocks on a full disk."""
    deadline = time.monotonic() + 10
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        while True:
            busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0 and frames == 0:
                break
            assert time.monotonic() < deadline, "the write-ahead log could not be truncated"
            time.sleep(0.1)
    assert Path(f"{db}-wal").stat().st_size == 0


def fill(path: Path) -> int:
    """Write `path` until the disk has no byte left (ENOSPC at one byte); returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written, chunk = 0, 1 << 16
    try:
        while chunk:
            try:
                written += os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    assert os.statvfs(path.parent).f_bavail == 0
    return written


def _state(db: Path, rollback_id: str) -> str:
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT state FROM records WHERE id=?", (rollback_id,)).fetchone()
        return str(row[0])


def test_sqlite_disk_full_gets_the_same_answer(
    small_disk: Path, api_bed: ApiTestBed, fake_slack: FakeSlackApi
) -> None:
    db = small_disk / "rollbot.db"
    bot = api_bed.start_bot(
        env={**ENV, "ROLLBOT_DB": str(db)},
        extra=WEB_TARGET.format(health=api_bed.health.url),
    )
    bot.sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    truncate_write_ahead_log(db)
    filler = small_disk / "filler"
    fill(filler)
    try:
        latencies = ask_during_outage([bot], fake_slack, value, "web")
        latencies += ask_during_outage([bot], fake_slack, value, "web")  # once it knows
        form = bot.sender.post(
            *view_submission("rollback_modal", form_values("web"), user_id=REQUESTER)
        )
        # the store really said the disk is full (not locked, not read-only)
        assert DISK_FULL in bot.stderr_text()
    finally:
        filler.unlink()
    assert form.json["response_action"] == "errors" and list(form.json["errors"]) == ["target"]
    assert UNREACHABLE in form.json["errors"]["target"] and form.elapsed < ANSWER_WITHIN
    print(f"answers while the disk was full (s): {[round(x, 2) for x in latencies]}")
    assert max(latencies) < ANSWER_WITHIN, latencies
    # once there is room again, each refusal is audited, once
    wait_until(lambda: _refusals(db) > len(latencies), 15, "the refusals' audit entries")
    assert _refusals(db) == len(latencies) + 1  # and the form's
    assert "Traceback" not in bot.stderr_text()
    assert max(store_log_lines(bot).values()) <= 3
    # nothing was changed: the rollback still waits for its approver, who can approve it now
    rid = json.loads(value)["id"]
    assert _state(db, rid) == "awaiting_approval"
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=40)
    assert _state(db, rid) == "succeeded"
    assert "Traceback" not in bot.stderr_text()
