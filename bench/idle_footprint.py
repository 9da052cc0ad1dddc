"""Benchmark: what an idle `rollbot serve` costs: start-up time (exec to a 200 from /healthz),
resident memory, CPU and store traffic while nothing happens, against a bare Bolt app.

Run: python bench/idle_footprint.py [--rounds 5] [--idle 10]
Starts its own fake Slack API, redis-server (if installed) and bot processes on loopback.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    ROOT,
    bare_app_argv,
    bot_env,
    cpu_seconds,
    memory_kb,
    serve_argv,
    start_redis,
)
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import FakeSlackApi

Argv = Callable[[int], list[str]]


def redis_commands(url: str | None) -> int:
    if url is None:
        return 0
    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def one_round(
    argv: Argv, env: dict[str, str], idle: float, redis_url: str | None
) -> dict[str, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv(port), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: urllib.request.urlopen(url).status == 200, 60, url, 0.005)
        startup = time.perf_counter() - started
        time.sleep(1.0)  # let start-up work (first store round trips, GC) settle
        cpu0, cmds0 = cpu_seconds(proc.pid), redis_commands(redis_url)
        time.sleep(idle)
        return {
            "startup_s": startup,
            "rss_mb": memory_kb(proc.pid)[0] / 1024,
            "cpu_pct": 100 * (cpu_seconds(proc.pid) - cpu0) / idle,
            "store_ops_s": (redis_commands(redis_url) - cmds0) / idle,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle per round")
    args = parser.parse_args()
    fake = FakeSlackApi().start()
    example = (ROOT / "rollbot.example.yml").read_text()
    env = bot_env(fake, example)
    servers: list[tuple[str, Argv, dict[str, str], str | None]] = [
        ("bare Bolt app (floor)", lambda port: bare_app_argv(port, fake.url), env, None),
        ("rollbot, SQLite", serve_argv, env, None),
    ]
    redis_server = start_redis()
    if redis_server:
        url = redis_server[1]
        servers.append(("rollbot, Redis", serve_argv, {**env, "REDIS_URL": url}, url))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in servers}
    try:
        for _ in range(args.rounds):  # interleaved, so drift hits every server alike
            for name, argv, server_env, url in servers:
                results[name].append(one_round(argv, server_env, args.idle, url))
    finally:
        fake.stop()
        if redis_server:
            redis_server[0].terminate()
    report(results, args.rounds, args.idle)


def report(results: dict[str, list[dict[str, float]]], rounds: int, idle: float) -> None:
    med = {
        name: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for name, rows in results.items()
    }
    floor = next(iter(med.values()))
    print(f"\nIdle footprint, median of {rounds} starts, {idle:g}s idle each (example catalog)")
    print(
        f"{'server':<24}{'start s':>9}{'x floor':>9}{'RSS MB':>9}{'x floor':>9}"
        f"{'idle CPU %':>12}{'Redis cmds/s':>14}"
    )
    for name, m in med.items():
        print(
            f"{name:<24}{m['startup_s']:>9.3f}{m['startup_s'] / floor['startup_s']:>9.2f}"
            f"{m['rss_mb']:>9.1f}{m['rss_mb'] / floor['rss_mb']:>9.2f}"
            f"{m['cpu_pct']:>12.2f}{m['store_ops_s']:>14.1f}"
        )


if __name__ == "__main__":
    main()
