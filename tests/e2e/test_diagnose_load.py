"""Load on loopback: 200 concurrent /diagnose from 20 users against `rollbot serve` on moto.
The per-user and per-target limits hold, every user is answered within Slack's 3 s, one
capture serves a burst for one target, and the AWS calls stay under the configured pace."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
from collections import Counter
from typing import Any

import aiohttp

from playbooks.pacing import burst
from tests.e2e.helpers import CLUSTER, SERVICE, ApiTestBed
from tests.testbed.aws_gate import AwsGate
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command

USERS, EACH = 20, 10  # 200 requests
ACK_LIMIT = 3.0
ECS_OPS = {"DescribeServices", "ListTasks", "DescribeTasks", "ListTaskDefinitions"}


async def diagnose_all(bot: RollbotProcess, fake: FakeSlackApi, targets: list[str]) -> list[Any]:
    """Every user asks EACH times at once; (user, target, status, ack text, seconds) each."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(n: int) -> tuple[str, str, int, str, float]:
            user, target = f"U{n % USERS:03d}", targets[n % len(targets)]
            body, headers = slash_command(
                "/diagnose",
                target,
                user_id=user,
                channel_id="C0INCIDENTS",
                response_url=fake.response_url(f"{user}-{n}"),
            )
            started = time.monotonic()
            async with session.post(f"{bot.url}/slack/events", data=body, headers=headers) as r:
                raw = await r.read()
                seconds = time.monotonic() - started
                text = json.loads(raw).get("text", "") if raw else ""
                return user, target, r.status, text, seconds

        return await asyncio.gather(*(one(n) for n in range(USERS * EACH)))


def audit_count(db: Any, action: str) -> int:
    row = sqlite3.connect(db).execute("SELECT COUNT(*) FROM audit WHERE action=?", (action,))
    return int(row.fetchone()[0])


def busiest_window(times: list[float], width: float = 1.0) -> int:
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def ack_histogram(bot: RollbotProcess) -> str:
    """The bot's own count of /diagnose acks per latency bucket (from /metrics)."""
    with urllib.request.urlopen(f"{bot.url}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    prefix = 'rollbot_slack_request_seconds_bucket{kind="command",le='
    return ", ".join(
        f"<={line[len(prefix) + 1 : line.index('}') - 1]}s: {line.split()[-1]}"
        for line in lines
        if line.startswith(prefix)
    )


def summary(answers: list[Any]) -> str:
    seconds = sorted(a[4] for a in answers)
    return (
        f"acks: max {seconds[-1]:.2f}s, median {seconds[len(seconds) // 2]:.2f}s, "
        f"p95 {seconds[int(len(seconds) * 0.95)]:.2f}s"
    )


def test_two_hundred_diagnoses_from_twenty_users_keep_to_the_limits(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    bot = api_bed.start_bot(env={"AWS_ENDPOINT_URL": aws_gate.url})
    answers = asyncio.run(diagnose_all(bot, fake_slack, ["api"]))
    started = [a for a in answers if a[3].startswith("Diagnosing")]
    refused = [a for a in answers if "try again in" in a[3]]
    print(
        f"\n200 /diagnose api: {len(started)} started, {len(refused)} refused; {summary(answers)}"
    )
    assert all(a[2] == 200 for a in answers)
    assert len(started) + len(refused) == USERS * EACH  # everyone got one of the two answers
    assert max(a[4] for a in answers) < ACK_LIMIT
    # defaults: 5 per user and 10 per target a minute; the target's limit binds first
    assert len(started) == 10
    per_user = Counter(a[0] for a in started)
    assert max(per_user.values()) <= 5
    # each user's first 5 pass their own limit (100 in all), 10 of those the target's; the
    # other 5 of each user are refused for the user's own limit
    assert sum("from you" in a[3] for a in refused) == USERS * (EACH - 5)
    assert sum("for `api`" in a[3] for a in refused) == USERS * 5 - 10
    # one capture, posted once; the other admitted requests get it back only to themselves
    posts = fake_slack.wait_for("chat.postMessage", lambda c: "Diagnosis of" in c.text, 1, 30)
    fake_slack.wait_for_response(lambda r: "reused rather than collected" in json.dumps(r), 30)
    deadline = time.monotonic() + 30
    while audit_count(api_bed.db, "diagnosis.reused") < 9 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert audit_count(api_bed.db, "diagnosis.captured") == 1
    assert audit_count(api_bed.db, "diagnosis.reused") == 9
    assert len(fake_slack.calls_to("chat.postMessage")) == len(posts) == 1
    assert audit_count(api_bed.db, "diagnose.rate_limited") == len(refused)
    print("bot-side ack times:", ack_histogram(bot))
    calls = sum(aws_gate.forwarded.values())
    print(f"AWS calls for the whole burst: {calls} {dict(aws_gate.forwarded)}")
    # one capture's calls: each source once (the service is read by two of them)
    assert aws_gate.forwarded["FilterLogEvents"] == 1 and aws_gate.forwarded["ListTasks"] == 1
    assert calls <= 12
    assert bot.alive


def test_captures_of_many_targets_at_once_stay_under_the_aws_pace(
    api_bed: ApiTestBed, aws_gate: AwsGate, fake_slack: FakeSlackApi
) -> None:
    targets = [f"api{i}" for i in range(6)]
    extra = "".join(
        f"  {name}:\n    playbook: ecs-revision\n    cluster: {CLUSTER}\n"
        f"    service: {SERVICE}\n    region: eu-central-1\n"
        f"    log_groups: [/ecs/sandbox-broker]\n"
        for name in targets
    )
    pace = {"ecs": 4.0, "logs": 2.0, "monitoring": 4.0}
    env = {
        "AWS_ENDPOINT_URL": aws_gate.url,
        "ROLLBOT_AWS_PACE": json.dumps(pace),
        "ROLLBOT_MAX_CAPTURES": "4",
        "ROLLBOT_DIAGNOSE_PER_USER": "100",
        "ROLLBOT_DIAGNOSE_PER_TARGET": "100",
    }
    bot = api_bed.start_bot(env=env, extra=extra)
    first = time.monotonic()
    answers = asyncio.run(diagnose_all(bot, fake_slack, targets))
    print(f"\n200 /diagnose over 6 targets: {summary(answers)}")
    assert all(a[2] == 200 and a[3].startswith("Diagnosing") for a in answers)
    assert max(a[4] for a in answers) < ACK_LIMIT
    # four captures at most at once: the targets beyond are told to try again
    busy = fake_slack.wait_for_response(lambda r: "already collecting" in r["text"], 30)
    assert "try again in" in busy["text"]
    fake_slack.wait_for("chat.postMessage", lambda c: "Diagnosis of" in c.text, 4, 60)
    time.sleep(1.0)
    assert len(fake_slack.calls_to("chat.postMessage")) == 4
    assert audit_count(api_bed.db, "diagnosis.captured") == 4
    assert audit_count(api_bed.db, "diagnosis.busy") >= 1
    elapsed = time.monotonic() - first
    for service, ops in {
        "ecs": ECS_OPS | {"DescribeTaskDefinition"},
        "logs": {"FilterLogEvents"},
    }.items():
        seen = [t for t, op in aws_gate.arrivals if op in ops]
        rate = pace[service]
        worst = busiest_window(seen)
        span = max(seen) - min(seen) if len(seen) > 1 else 0.0
        print(
            f"{service}: {len(seen)} calls over {span:.1f}s (run {elapsed:.1f}s), "
            f"busiest second {worst}, pace {rate:g}/s + burst {burst(rate)}"
        )
        assert worst <= rate + burst(rate), (service, worst)
        # on average no faster than the pace once the first burst is spent
        assert len(seen) - burst(rate) <= rate * span + 1
