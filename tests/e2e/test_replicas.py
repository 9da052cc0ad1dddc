"""Three `rollbot serve` replicas on one redis-server: requests spread over all of them, the
executing replica is killed, a survivor finishes; nothing runs or posts twice."""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections import Counter

from tests.e2e.helpers import (
    CLUSTER,
    LEAD,
    REQUESTER,
    SERVICE,
    ApiTestBed,
    approval_value,
    click,
)
from tests.testbed.aws import service_state
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command


def test_three_replicas_kill_the_executor(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi, redis_url: str
) -> None:
    import redis

    health = api_bed.health
    health.status = 503  # keeps the rollback in verification while we kill its executor
    env = {
        "REDIS_URL": redis_url,
        "ROLLBOT_STATUS_INTERVAL": "1",
        "ROLLBOT_LEASE_SECONDS": "2",
    }
    bots = [api_bed.start_bot(env=env) for _ in range(3)]
    spread = itertools.cycle(bots)

    next(spread).sender.post(*slash_command("/rollback", "api", user_id=REQUESTER))
    value = approval_value(fake_slack)
    for _ in range(3):  # the same click delivered to every replica
        click(next(spread), "rollback_approve", value, LEAD)
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "Status update" in c.args["text"], count=2, timeout=20
    )

    rid = json.loads(value)["id"]
    record = json.loads(redis.Redis.from_url(redis_url).get(f"rollbot:rec:{rid}"))
    executor = record["data"]["executor"]  # "<host>-<pid>-<tag>:<token>"
    pid = int(executor.split(":")[0].split("-")[-2])
    victim = next(b for b in bots if b.proc.pid == pid)
    victim.kill(signal.SIGKILL)
    killed_at = time.time()
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "resumed by replica" in c.args["text"], timeout=20
    )
    health.status = 200
    fake_slack.wait_for(
        "chat.postMessage", lambda c: "ROLLBACK COMPLETE" in c.args["text"], timeout=40
    )
    time.sleep(2.5)  # long enough for any duplicate to show up

    posts = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    statuses = [t for t in posts if "*Status update —" in t]
    assert len([t for t in posts if "ROLLBACK COMPLETE" in t]) == 1
    assert any(
        c.at > killed_at
        for c in fake_slack.calls_to("chat.postMessage")
        if "Status update" in c.args["text"]
    )
    # every status update is a distinct due time: no update was posted twice
    stamps = Counter(t.split("*Next update:* ")[1] for t in statuses)
    assert max(stamps.values()) == 1, stamps
    starts = [
        json.loads(e)["step_id"]
        for e in redis.Redis.from_url(redis_url).lrange(f"rollbot:journal:{rid}", 0, -1)
        if json.loads(e)["event"] == "start"
    ]
    assert starts.count("update") == 1
    assert service_state(api_bed.aws, CLUSTER, SERVICE)["taskDefinition"].endswith(":2")
    assert fake_slack.errors == []
