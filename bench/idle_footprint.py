"""Benchmark: what an idle `rollbot serve` costs: start-up time (exec to a 200 from /healthz),
resident memory, CPU and store traffic while nothing happens, against a bare Bolt app.

Run: python bench/idle_footprint.py [--rounds 5] [--idle 10]
Starts its own fake Slack API, redis-server (if installed) and bot processes on loopback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BARE_APP  # noqa: E402
from tests.testbed.ports import free_port, wait_until  # noqa: E402
from tests.testbed.slack_api import TOKEN, FakeSlackApi  # noqa: E402
from tests.testbed.slack_requests import SIGNING_SECRET  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    # fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def redis_commands(url: str | None) -> int:
    if url is None:
        return 0
    import redis

    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def one_round(
    argv: list[str], env: dict[str, str], idle: float, redis_url: str | None
) -> dict[str, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*argv, str(port)] + ([env["SLACK_API_URL"]] if argv[1] == "-c" else []),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: urllib.request.urlopen(url).status == 200, 60, argv[2], 0.005)
        startup = time.perf_counter() - started
        time.sleep(1.0)  # let start-up work (first store round trips, GC) settle
        cpu0, cmds0 = cpu_seconds(proc.pid), redis_commands(redis_url)
        time.sleep(idle)
        return {
            "startup_s": startup,
            "rss_mb": rss_mb(proc.pid),
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
    tmp = Path(tempfile.mkdtemp())
    example = (ROOT / "rollbot.example.yml").read_text()
    (tmp / "rollbot.yml").write_text(example)
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "ROLLBOT_CONFIG": str(tmp / "rollbot.yml"),
        "ROLLBOT_DB": str(tmp / "rollbot.db"),
    }
    serve = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port"]
    servers: list[tuple[str, list[str], dict[str, str], str | None]] = [
        ("bare Bolt app (floor)", [sys.executable, "-c", BARE_APP], env, None),
        ("rollbot, SQLite", serve, env, None),
    ]
    redis_proc = None
    if shutil.which("redis-server"):
        rport = free_port()
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        redis_url = f"redis://127.0.0.1:{rport}/0"
        wait_until(lambda: redis_commands(redis_url) >= 0, 10, "redis-server")
        servers.append(("rollbot, Redis", serve, {**env, "REDIS_URL": redis_url}, redis_url))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in servers}
    try:
        for _ in range(args.rounds):  # interleaved, so drift hits every server alike
            for name, argv, server_env, url in servers:
                results[name].append(one_round(argv, server_env, args.idle, url))
    finally:
        fake.stop()
        if redis_proc:
            redis_proc.terminate()
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
