"""Benchmark: how fast `rollbot serve` acks signed Slack requests (`/rollback help` and Reject
clicks) at rising concurrency, against a bare Bolt app that only acks (the floor), on the
embedded store and on Redis.

Run: python bench/ack_latency.py [--requests 400] [--levels 10,50,200] [--rounds 3]
Starts its own fake Slack API, redis-server (if installed) and bot processes on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, bare_app_argv, bot_env, serve_argv, start_redis
from tests.testbed import slack_requests
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import Signed, block_action, slash_command

CATALOG = """\
approvers: [U0LEAD]
channel: C0INC
targets:
  api: {playbook: ecs-scale, cluster: c, service: s}
"""

# A Reject click on a rollback the bot does not know: acked first, then refused in the thread.
CLICK_VALUE = '{"id": "rb-00000bench"}'
REQUESTS: dict[str, Callable[[], Signed]] = {
    "/rollback help": lambda: slash_command("/rollback", "help"),
    "Reject click": lambda: block_action("rollback_reject", CLICK_VALUE, user_id="U0LEAD"),
}


def start(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    import urllib.request

    wait_until(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").status == 200,
        30,
        " ".join(argv[:3]),
    )
    return proc


async def load(
    url: str, request: Callable[[], Signed], total: int, in_flight: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as s:

        async def one() -> None:
            nonlocal errors
            body, headers = request()
            async with gate:
                started = time.perf_counter()
                try:
                    async with s.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                            statuses[resp.status] = statuses.get(resp.status, 0) + 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one() for _ in range(total)))
    if statuses:
        print(f"  non-200 answers at {in_flight} in flight: {statuses}", file=sys.stderr)
    return latencies, errors


def settle(fake: FakeSlackApi, quiet: float = 0.3, limit: float = 30.0) -> None:
    """Wait until the bots' answers after their acks (posts to the fake, which shares this
    process with the load generator) have stopped, so they do not slow the next server down."""
    deadline = time.monotonic() + limit
    seen = -1
    while time.monotonic() < deadline and len(fake.responses) != seen:
        seen = len(fake.responses)
        time.sleep(quiet)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--levels", default="10,50,200")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    fake = FakeSlackApi()
    fake.start()
    # what the bot answers after the ack (the click's refusal) goes to the fake too
    slack_requests.RESPONSE_URL = fake.response_url()
    env = bot_env(fake, CATALOG)
    launch: list[tuple[str, Callable[[int], list[str]], dict[str, str]]] = [
        ("bare Bolt app (floor)", lambda port: bare_app_argv(port, fake.url), env),
        ("rollbot, SQLite", serve_argv, env),
    ]
    redis_server = start_redis()
    if redis_server:
        launch.append(("rollbot, Redis", serve_argv, {**env, "REDIS_URL": redis_server[1]}))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for name, argv, server_env in launch:
        port = free_port()
        servers[name] = start(argv(port), server_env, port), f"http://127.0.0.1:{port}/slack/events"
    # (server, request, level) -> per round: p50, p99, errors
    runs: dict[tuple[str, str, int], list[tuple[float, float, int]]] = {}
    try:
        for _, url in servers.values():
            for request in REQUESTS.values():
                asyncio.run(load(url, request, 50, 10))  # warm-up
        # Rounds interleave the servers, so the machine's drift and noise hit all of them.
        for _ in range(args.rounds):
            for kind, request in REQUESTS.items():
                for level in levels:
                    for name, (_, url) in servers.items():
                        lat, errors = asyncio.run(load(url, request, args.requests, level))
                        settle(fake)
                        cell = runs.setdefault((name, kind, level), [])
                        cell.append((pct(lat, 0.5), pct(lat, 0.99), errors))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
        if redis_server:
            redis_server[0].terminate()
    report(runs, args.requests, args.rounds)


def report(
    runs: dict[tuple[str, str, int], list[tuple[float, float, int]]], requests: int, rounds: int
) -> None:
    print(f"ack latency, {requests} signed requests per level, median of {rounds} rounds")
    print(
        f"{'server':<24}{'request':<16}{'in flight':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'p99 / floor':>13}"
    )
    floor: dict[tuple[str, int], float] = {}
    for (name, kind, level), cells in sorted(runs.items(), key=lambda kv: kv[0][1]):
        p50 = statistics.median(c[0] for c in cells)
        p99 = statistics.median(c[1] for c in cells)
        errors = sum(c[2] for c in cells)
        floor.setdefault((kind, level), p99)  # the bare app comes first
        ratio = p99 / floor[kind, level]
        print(f"{name:<24}{kind:<16}{level:>10}{p50:>9.1f}{p99:>9.1f}{errors:>8}{ratio:>13.2f}")


if __name__ == "__main__":
    main()
