"""What the benchmarks share: the bot's environment, its command line, a redis-server, and
/proc readings of a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.testbed.ports import free_port, wait_until  # noqa: E402
from tests.testbed.slack_api import TOKEN, FakeSlackApi  # noqa: E402
from tests.testbed.slack_requests import SIGNING_SECRET  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The floor: a Bolt app on the same aiohttp adapter that only acks (argv: port, Slack API URL).
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


def bare_app_argv(port: int, slack_api_url: str) -> list[str]:
    return [sys.executable, "-c", BARE_APP, str(port), slack_api_url]


def serve_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]


def bot_env(fake: FakeSlackApi, catalog: str, **extra: str) -> dict[str, str]:
    """Environment of a `rollbot serve` talking to `fake`, with `catalog` written to a new
    temporary folder (its SQLite file beside it unless REDIS_URL is among `extra`)."""
    folder = Path(tempfile.mkdtemp(prefix="rollbot-bench-"))
    (folder / "rollbot.yml").write_text(catalog)
    return {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "ROLLBOT_CONFIG": str(folder / "rollbot.yml"),
        "ROLLBOT_DB": str(folder / "rollbot.db"),
        **extra,
    }


def start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    """A throw-away redis-server on a free port; None when it is not installed."""
    if not shutil.which("redis-server"):
        return None
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping(), 10, "redis-server")
    return proc, url


def memory_kb(pid: int) -> tuple[int, int]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pid: int) -> float:
    # fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
