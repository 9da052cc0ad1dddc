"""Benchmark: how fast `rollbot serve` acks signed Slack requests (`/rollback help` and Reject
clicks) at rising concurrency, against a bare Bolt app that only acks (the floor), on the
embedded store and on Redis.

Run: python bench/ack_latency.py [--requests 400] [--levels 10,50,200] [--rounds 3]
Starts its own fake Slack API, redis-server (if installed) and bot processes on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.testbed import slack_requests  # noqa: E402
from tests.testbed.ports import free_port, wait_until  # noqa: E402
from tests.testbed.slack_api import TOKEN, FakeSlackApi  # noqa: E402
from tests.testbed.slack_requests import (  # noqa: E402
    SIGNING_SECRET,
    Signed,
    block_action,
    slash_command,
)

# A Reject click on a rollback the bot does not know: acked first, then refused in the thread.
CLICK_VALUE = '{"id": "rb-00000bench"}'
REQUESTS: dict[str, Callable[[], Signed]] = {
    "/rollback help": lambda: slash_command("/rollback", "help"),
    "Reject click": lambda: block_action("rollback_reject", CLICK_VALUE, user_id="U0LEAD"),
}

BARE_APP = textwrap.dedent("""
    import sys
    from aiohttp import web
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.adapter.aiohttp import to_bolt_request, to_aiohttp_response
    from slack_sdk.web.async_client import AsyncWebClient
    client = AsyncWebClient(token="xoxb-test-token", base_url=sys.argv[2])
    app = AsyncApp(client=client, signing_secret="test-signing-secret")
    @app.command("/rollback")
    async def only_ack(ack):
        await ack(text="ok")
    @app.action("rollback_reject")
    async def only_ack_click(ack):
        await ack()
    async def events(request):
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))
    async def healthz(_):
        return web.json_response({"status": "ok"})
    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    web.run_app(web_app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
""")


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
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rollbot.yml").write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n"
        "    playbook: ecs-scale\n    cluster: c\n    service: s\n"
    )
    base_env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "ROLLBOT_CONFIG": str(tmp / "rollbot.yml"),
        "ROLLBOT_DB": str(tmp / "rollbot.db"),
    }
    targets: list[tuple[str, list[str], dict[str, str]]] = [
        ("bare Bolt app (floor)", [sys.executable, "-c", BARE_APP], base_env),
        (
            "rollbot, SQLite",
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port"],
            base_env,
        ),
    ]
    redis_proc = None
    if shutil.which("redis-server"):
        rport = free_port()
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        targets.append(
            (
                "rollbot, Redis",
                targets[1][1],
                {**base_env, "REDIS_URL": f"redis://127.0.0.1:{rport}/0"},
            )
        )
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for name, argv, env in targets:
        port = free_port()
        extra = [fake.url] if name.startswith("bare") else []
        proc = start([*argv, str(port), *extra], env, port)
        servers[name] = proc, f"http://127.0.0.1:{port}/slack/events"
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
                        cell = runs.setdefault((name, kind, level), [])
                        cell.append((pct(lat, 0.5), pct(lat, 0.99), errors))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
        if redis_proc:
            redis_proc.terminate()
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
