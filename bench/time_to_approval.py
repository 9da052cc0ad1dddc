"""Benchmark: time to the approver, from `/rollback api` to the approval request posted in
Slack, against the slowest single diagnostics source measured alone in the same run.

Run: python bench/time_to_approval.py [--rounds 7] [--aws-latency-ms 40] [--health-latency-ms 150]

Starts moto behind the latency proxy of bench/diagnose_capture.py (every AWS call pays
--aws-latency-ms, each health request --health-latency-ms), the fake Slack API and
`rollbot serve` on loopback. Each round posts a signed `/rollback api to 2`, waits for the
approval request, then rejects it (freeing the target); between rounds every diagnostics source
is timed alone in this process through the same proxy. The goal is a time to the approver of
at most 1.3x the slowest source; the phases printed say what dominates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.diagnose_capture import Servers, bench_target, seed
from bench.harness import ROOT, bot_env, serve_argv
from bot.catalog import Target
from bot.diagnose.capture import prepare
from tests.testbed.aws import CREDENTIALS, Aws
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, SlackSender, block_action, slash_command

GOAL = 1.3  # the time to the approver, as a multiple of the slowest single source


def catalog(target: Target) -> str:
    entry = {"playbook": "ecs-revision", **target.params}
    return json.dumps({"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"api": entry}})


class Bot:
    """One `rollbot serve` on the bench catalog, its AWS calls through the latency proxy."""

    def __init__(self, fake: FakeSlackApi, target: Target, proxy: str) -> None:
        env = bot_env(fake, catalog(target), **CREDENTIALS, AWS_ENDPOINT_URL=proxy)
        self.fake, self.db = fake, Path(env["ROLLBOT_DB"])
        port = free_port()
        self.proc = subprocess.Popen(
            serve_argv(port),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.db.parent / "bot.log").open("wb"),
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(f"{url}/healthz").status == 200, 30, "bot")
        self.sender = SlackSender(url, SIGNING_SECRET)

    def request(self) -> dict[str, float]:
        """One /rollback to its approval request; the phases in seconds."""
        self.fake.reset()
        started = time.time()
        self.sender.post(*slash_command("/rollback", "api to 2", user_id="U0ONCALL"))
        approval = self.fake.wait_for(
            "chat.postMessage", lambda c: "Approval needed" in c.args["text"], timeout=60
        )[0]
        root = self.fake.calls_to("chat.postMessage")[0]
        uploaded = self.fake.wait_for("files.completeUploadExternal", timeout=30)[0]
        diagnostics = next(
            json.loads(u.text) for u in self.fake.uploaded_files if u.filename.startswith("diag")
        )
        self._reject(approval)
        capture = float(diagnostics["seconds"])
        return {
            "total": approval.at - started,
            "capture (in the bot)": capture,
            "capture -> root posted (plan + post)": root.at - started - capture,
            "root posted -> diagnostics uploaded": uploaded.at - root.at,
            "uploaded -> approval posted": approval.at - uploaded.at,
        }

    def _reject(self, approval: Any) -> None:
        actions = next(b for b in approval.args["blocks"] if b["type"] == "actions")
        value = actions["elements"][0]["value"]
        rollback_id = json.loads(value)["id"]
        wait_until(lambda: self._state(rollback_id) == "awaiting_approval", 30, "ready")
        ts = approval.response["ts"]
        self.sender.post(*block_action("rollback_reject", value, user_id="U0LEAD", message_ts=ts))
        wait_until(lambda: self._state(rollback_id) == "rejected", 30, "rejected")

    def _state(self, rollback_id: str) -> str:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT state FROM records WHERE id=?", (rollback_id,)).fetchone()
        return row[0] if row else ""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def each_source_alone(target: Target) -> dict[str, float]:
    """Every diagnostics source on its own, one after another: its time alone."""
    ctx, planned = prepare(target)
    times = {}
    for name, collect in planned.items():
        if isinstance(collect, str):
            continue
        started = time.perf_counter()
        await collect(ctx)
        times[name] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--aws-latency-ms", type=float, default=40.0)
    parser.add_argument("--health-latency-ms", type=float, default=150.0)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    os.environ.update(CREDENTIALS)
    seed(Aws(moto_url))
    servers = Servers(moto_url, args.aws_latency_ms / 1000, args.health_latency_ms / 1000)
    os.environ["AWS_ENDPOINT_URL"] = servers.url("proxy")  # this process's sources pay it too
    fake = FakeSlackApi().start()
    target = bench_target(servers.url("health"))
    bot = Bot(fake, target, servers.url("proxy"))
    phases: dict[str, list[float]] = {}
    sources: dict[str, list[float]] = {}
    try:
        bot.request()  # warm-up: moto's backends, boto3's clients, the bot's first request
        asyncio.run(each_source_alone(target))
        for _ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
            for name, seconds in bot.request().items():
                phases.setdefault(name, []).append(seconds)
            for name, seconds in asyncio.run(each_source_alone(target)).items():
                sources.setdefault(name, []).append(seconds)
    finally:
        bot.stop()
        fake.stop()
        servers.stop()
        moto.stop()
    report(phases, sources, args)


def report(
    phases: dict[str, list[float]], sources: dict[str, list[float]], args: argparse.Namespace
) -> None:
    print(
        f"time to the approver: {args.rounds} rounds, AWS call +{args.aws_latency_ms:g} ms,"
        f" health request +{args.health_latency_ms:g} ms (medians)"
    )
    print("each diagnostics source alone:")
    for name, values in sorted(sources.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {name:<40}{statistics.median(values):>8.3f} s")
    slowest_name = max(sources, key=lambda n: statistics.median(sources[n]))
    slowest = statistics.median(sources[slowest_name])
    print("/rollback -> approval request posted:")
    for name, values in phases.items():
        print(f"  {name:<40}{statistics.median(values):>8.3f} s")
    total = statistics.median(phases["total"])
    ratio = total / slowest
    verdict = "meets" if ratio <= GOAL else "misses"
    print(
        f"ratio: {ratio:.2f}x the slowest source ({slowest_name}, {slowest:.3f} s);"
        f" {verdict} the goal of <= {GOAL}x"
    )


if __name__ == "__main__":
    main()
