"""Benchmark: many rollbacks in flight at once across three `rollbot serve` replicas on one
redis-server, status updates every second: updates per second, their lateness, duplicates,
Redis commands per rollback and memory per replica; against the same with one rollback.

Run: python bench/concurrent_incidents.py [--rollbacks 100] [--hold 20]
Each rollback's playbook polls a health endpoint that answers 503 for `--hold` seconds, so the
rollbacks stay in verification together while the status updates pile up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, bot_env, cpu_seconds, memory_kb, serve_argv, start_redis
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, SlackSender, block_action, slash_command

REPLICAS = 3
INTERVAL = 1.0
# One verification step that polls until the service answers 200 (the hold), then succeeds.
PLAYBOOK = """\
name: hold-then-verify
description: waits for the health endpoint, as a rollback's verification does
params:
  health_urls: {type: list, default: []}
steps:
  - {id: verify, type: http.check, attempts: 600, interval: 0.5, timeout: 5}
"""


class Health:
    """503 until `ready_at`, then 200: every rollback's verification ends at the same time."""

    def __init__(self) -> None:
        self.ready_at = float("inf")
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200 if time.time() >= health.ready_at else 503
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"


def catalog(tmp: Path, n: int, health: str) -> str:
    """n targets on the hold playbook (written to `tmp`)."""
    (tmp / "hold.yml").write_text(PLAYBOOK)
    lines = ["approvers: [U0LEAD]", "channel: C0INC", "targets:"]
    for i in range(n):
        lines += [f"  t{i}:", f"    playbook: {tmp / 'hold.yml'}", f"    health_urls: ['{health}']"]
    return "\n".join(lines) + "\n"


def start_replicas(env: dict[str, str], tmp: Path) -> list[tuple[subprocess.Popen[bytes], str]]:
    started = []
    for i in range(REPLICAS):
        port = free_port()
        proc = subprocess.Popen(
            serve_argv(port),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"replica-{i}.log").open("wb"),
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda u=url: urllib.request.urlopen(f"{u}/healthz").status == 200, 30, url)
        started.append((proc, url))
    return started


def run(n: int, hold: float, fake: FakeSlackApi, redis_url: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp())
    health = Health()
    env = bot_env(
        fake,
        catalog(tmp, n, health.url),
        REDIS_URL=redis_url,
        ROLLBOT_STATUS_INTERVAL=str(INTERVAL),
    )
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    fake.reset()
    replicas = start_replicas(env, tmp)
    senders = [SlackSender(url, SIGNING_SECRET) for _, url in replicas]
    idle = [memory_kb(p.pid)[0] for p, _ in replicas]
    r.config_resetstat()  # per-command counts (scripts' inner commands included) from here
    try:
        for i in range(n):  # requests spread over the replicas, as a load balancer would
            request = slash_command(
                "/rollback", f"t{i}", user_id="U0ONCALL", response_url=fake.response_url()
            )
            senders[i % REPLICAS].post(*request)
        approvals = fake.wait_for(
            "chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=n, timeout=300
        )
        wait_until(lambda: ready(fake) >= n, 120, "requests ready for approval")
        approved_at = time.time()
        cpu_before = sum(cpu_seconds(p.pid) for p, _ in replicas)
        health.ready_at = approved_at + hold
        for i, call in enumerate(approvals):
            actions = next(b for b in call.args["blocks"] if b["type"] == "actions")
            value = actions["elements"][0]["value"]
            senders[(i + 1) % REPLICAS].post(
                *block_action(
                    "rollback_approve",
                    value,
                    user_id="U0LEAD",
                    message_ts=call.response["ts"],
                    response_url=fake.response_url(),
                )
            )
        fake.wait_for(
            "chat.postMessage",
            lambda c: "ROLLBACK COMPLETE" in c.args["text"],
            count=n,
            timeout=hold + 300,
        )
        peak = [memory_kb(p.pid) for p, _ in replicas]
        cores = (sum(cpu_seconds(p.pid) for p, _ in replicas) - cpu_before) / (
            time.time() - approved_at
        )
    finally:
        for proc, _ in replicas:
            proc.terminate()
        for proc, _ in replicas:
            proc.wait(60)
    by_command = {k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()}
    commands = sum(by_command.values())
    top = sorted(by_command.items(), key=lambda kv: -kv[1])[:6]
    print(
        f"Redis commands, {n} in flight, per rollback: "
        + ", ".join(f"{name} {calls / n:.0f}" for name, calls in top)
    )
    return {**measure(fake, n, hold, approved_at, commands, idle, peak), "cores": cores}


def ready(fake: FakeSlackApi) -> int:
    return len([r for r in fake.responses if "waiting for approval" in r.get("text", "")])


ROLLBACK_ID = re.compile(r"rb-[0-9a-f]+")
# the status template's headline; the announcement's "Status updates every…" must not count
STATUS_POST = "*Status update —"


def measure(
    fake: FakeSlackApi,
    n: int,
    hold: float,
    approved_at: float,
    commands: int,
    idle: list[int],
    peak: list[tuple[int, int]],
) -> dict[str, float]:
    updates: dict[str, list[float]] = defaultdict(list)
    for call in fake.calls_to("chat.postMessage"):
        text = call.args.get("text", "")
        if STATUS_POST in text and (found := ROLLBACK_ID.search(text)):
            updates[found.group()].append(call.at)
    gaps = [b - a for times in updates.values() for a, b in itertools.pairwise(times)]
    lateness = sorted(max(0.0, g - INTERVAL) for g in gaps)
    duplicates = sum(1 for g in gaps if g < INTERVAL / 2)
    total = sum(len(t) for t in updates.values())
    window = max(max(t) for t in updates.values()) - approved_at if updates else 1.0
    return {
        "rollbacks": n,
        "updates": total,
        "updates_per_s": total / window,
        "expected_per_s": n / INTERVAL,
        "mean_gap": statistics.mean(gaps) if gaps else 0.0,
        "late_p50": pct(lateness, 0.5),
        "late_p99": pct(lateness, 0.99),
        "duplicates": duplicates,
        "redis_per_rollback": commands / n,
        "rss_idle_mb": statistics.mean(idle) / 1024,
        "rss_peak_mb": statistics.mean(hwm for _, hwm in peak) / 1024,
        "hold": hold,
    }


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollbacks", type=int, default=100)
    parser.add_argument("--hold", type=float, default=20.0)
    args = parser.parse_args()
    started = start_redis()
    if started is None:
        sys.exit("this benchmark needs redis-server (apt-get install redis-server)")
    server, redis_url = started
    fake = FakeSlackApi().start()
    try:
        rows = [run(1, args.hold, fake, redis_url), run(args.rollbacks, args.hold, fake, redis_url)]
    finally:
        fake.stop()
        server.terminate()
    print(
        f"\nConcurrent incidents: {REPLICAS} replicas on one Redis, status every {INTERVAL:g}s, "
        f"verification held {args.hold:g}s"
    )
    keys = [
        ("rollbacks", "in flight", "{:.0f}"),
        ("updates", "status posts", "{:.0f}"),
        ("updates_per_s", "posts/s", "{:.1f}"),
        ("expected_per_s", "nominal/s", "{:.1f}"),
        ("mean_gap", "mean gap s", "{:.3f}"),
        ("late_p50", "late p50 s", "{:.3f}"),
        ("late_p99", "late p99 s", "{:.3f}"),
        ("duplicates", "duplicates", "{:.0f}"),
        ("redis_per_rollback", "Redis cmds/rb", "{:.0f}"),
        ("rss_idle_mb", "RSS idle MB", "{:.1f}"),
        ("rss_peak_mb", "RSS peak MB", "{:.1f}"),
        ("cores", "CPU (cores)", "{:.2f}"),
    ]
    print(" ".join(f"{title:>14}" for _, title, _ in keys))
    for row in rows:
        print(" ".join(f"{fmt.format(row[k]):>14}" for k, _, fmt in keys))
    one, many = rows
    if one["late_p99"] > 0:
        print(
            f"lateness p99 ratio, {args.rollbacks} vs 1 in flight: "
            f"{many['late_p99'] / one['late_p99']:.2f}x"
        )
    print(json.dumps({"one": one, "many": many}))


if __name__ == "__main__":
    main()
