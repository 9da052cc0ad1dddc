"""Benchmark: time from "decision made" to "verified" for an ECS revision rollback: runbook
003's script (aws CLI update-service, wait services-stable, curl) against Rollbot's
ecs-revision playbook (Approve click to the completion post), on the same moto state.

Run: python bench/time_to_rollback.py [--rounds 5]
Starts moto, a health endpoint, the fake Slack API and `rollbot serve` on loopback. The aws CLI
is installed once into bench/.venv-awscli (it pins its own botocore), unless `aws` is on PATH.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, bot_env, serve_argv
from tests.testbed.aws import CREDENTIALS, Aws, make_ecs_service
from tests.testbed.ports import free_port, wait_until
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET, SlackSender, block_action, slash_command

CLUSTER, SERVICE = "replaydash-production-cluster", "replaydash-production-api"
VENV = ROOT / "bench" / ".venv-awscli"
POLL_DELAY = 1.0  # Rollbot's poll delay here; the CLI waiter polls every 15 s (not settable)

# Runbook 003, "Option 1: roll back to the previous task definition", as an on-call would run it.
RUNBOOK_SCRIPT = """\
set -euo pipefail
aws ecs update-service --cluster "$CLUSTER" --service "$SERVICE" \\
  --task-definition "$TASK_DEF" --force-new-deployment > /dev/null
aws ecs wait services-stable --cluster "$CLUSTER" --services "$SERVICE"
curl -fsS "$HEALTH_URL" > /dev/null
"""


def aws_cli() -> str:
    found = shutil.which("aws")
    if found:
        return found
    if not (VENV / "bin" / "aws").exists():
        print("installing the aws CLI into bench/.venv-awscli (once)…", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return str(VENV / "bin" / "aws")


def health_server() -> str:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/health"


def fresh_service(aws: Aws) -> str:
    """A reset moto with the service on revision 3; returns revision 2's ARN."""
    aws.reset()
    return make_ecs_service(aws, CLUSTER, SERVICE, SERVICE, revisions=3)[1]


def by_script(aws: Aws, cli: str, health: str) -> float:
    target = fresh_service(aws)
    env = {
        **os.environ,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_DEFAULT_REGION": aws.region,
        "PATH": f"{Path(cli).parent}:{os.environ['PATH']}",
        "CLUSTER": CLUSTER,
        "SERVICE": SERVICE,
        "TASK_DEF": target,
        "HEALTH_URL": health,
    }
    started = time.perf_counter()
    subprocess.run(["bash", "-c", RUNBOOK_SCRIPT], env=env, check=True)
    return time.perf_counter() - started


class Bot:
    def __init__(self, aws: Aws, fake: FakeSlackApi, health: str) -> None:
        catalog = (
            f"approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n"
            f"    playbook: ecs-revision\n    cluster: {CLUSTER}\n    service: {SERVICE}\n"
            f"    region: {aws.region}\n    health_urls: ['{health}']\n"
            f"    poll_delay: {POLL_DELAY}\n"
        )
        env = bot_env(fake, catalog, **CREDENTIALS, AWS_ENDPOINT_URL=aws.endpoint)
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

    def rollback(self, aws: Aws, round_no: int) -> tuple[float, dict[str, float]]:
        fresh_service(aws)
        self.fake.reset()
        self.sender.post(*slash_command("/rollback", "api to 2", user_id="U0ONCALL"))
        approval = self.fake.wait_for(
            "chat.postMessage", lambda c: "Approval needed" in c.args["text"], timeout=30
        )[0]
        actions = next(b for b in approval.args["blocks"] if b["type"] == "actions")
        value = actions["elements"][0]["value"]
        rollback_id = json.loads(value)["id"]
        wait_until(lambda: self._state(rollback_id) == "awaiting_approval", 30, "ready")
        ts = approval.response["ts"]
        clicked = time.time()
        self.sender.post(*block_action("rollback_approve", value, user_id="U0LEAD", message_ts=ts))
        done = self.fake.wait_for(
            "chat.postMessage", lambda c: "ROLLBACK COMPLETE" in c.args["text"], timeout=120
        )[0]
        return done.at - clicked, self._steps(rollback_id)

    def _state(self, rollback_id: str) -> str:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT state FROM records WHERE id=?", (rollback_id,)).fetchone()
        return row[0] if row else ""

    def _steps(self, rollback_id: str) -> dict[str, float]:
        with sqlite3.connect(self.db) as db:
            (data,) = db.execute("SELECT data FROM records WHERE id=?", (rollback_id,)).fetchone()
        return {s["step_id"]: s["seconds"] for s in json.loads(data)["steps"]}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    cli = aws_cli()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws = Aws(f"http://{host}:{port}")
    health = health_server()
    fake = FakeSlackApi().start()
    bot = Bot(aws, fake, health)
    script_times: list[float] = []
    bot_times: list[float] = []
    steps: dict[str, list[float]] = {}
    try:
        by_script(aws, cli, health)  # warm-up: CLI file cache, moto's ECS backend
        bot.rollback(aws, 0)
        for n in range(args.rounds):  # alternating, so drift hits both sides alike
            script_times.append(by_script(aws, cli, health))
            took, per_step = bot.rollback(aws, n + 1)
            bot_times.append(took)
            for step, seconds in per_step.items():
                steps.setdefault(step, []).append(seconds)
    finally:
        bot.stop()
        fake.stop()
        moto.stop()
    report(script_times, bot_times, steps, args.rounds)


def report(
    script: list[float], bot: list[float], steps: dict[str, list[float]], rounds: int
) -> None:
    s, b = statistics.median(script), statistics.median(bot)
    in_steps = sum(statistics.median(v) for v in steps.values())
    print(f"\nTime to rollback, decision made -> verified (median of {rounds}, moto on loopback)")
    print(f"{'way':<44} {'median':>9} {'min':>9} {'max':>9}")
    print(
        f"{'runbook 003 script (aws CLI x2 + curl)':<44} {s:>8.2f}s {min(script):>8.2f}s "
        f"{max(script):>8.2f}s"
    )
    print(
        f"{'Rollbot ecs-revision (click -> completion)':<44} {b:>8.2f}s {min(bot):>8.2f}s "
        f"{max(bot):>8.2f}s"
    )
    print(f"ratio: Rollbot takes {b / s:.2f}x the script's time ({s / b:.2f}x faster)")
    print("\nRollbot per step (median seconds inside the step):")
    for step, values in steps.items():
        print(f"  {step:<10} {statistics.median(values):>7.3f}s")
    overhead = b - in_steps
    print(
        f"  {'outside':<10} {overhead:>7.3f}s  (job pickup, journal, store, Slack posts; "
        f"{overhead / len(steps):.3f}s per step)"
    )


if __name__ == "__main__":
    main()
