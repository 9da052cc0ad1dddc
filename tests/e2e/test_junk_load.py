"""Load on loopback: thousands of unsigned junk requests against `rollbot serve` are all
refused, and neither /metrics nor the process grows with them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from tests.testbed.ports import free_port
from tests.testbed.rollbot_process import RollbotProcess
from tests.testbed.slack_requests import SIGNING_SECRET, sign, slash_command

CATALOG = """\
approvers: [U0LEAD]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    cluster: sandbox-broker-cluster
    service: sandbox-broker
    region: eu-central-1
"""


def write_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(CATALOG)
    return path


JUNK = 5_000
WARM_UP = 300
PARALLEL = 40
KINDS = {"command", "unverified", "other", "block_actions", "view_submission", "url_verification"}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        return resp.read().decode()


def junk(i: int) -> tuple[bytes, dict[str, str]]:
    """The i-th junk request: every shape an outsider might send, none signed right."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    as_json = {"Content-Type": "application/json"}
    match i % 9:
        case 0:
            return urlencode({"type": f"junk-{i}"}).encode(), form
        case 1:
            return json.dumps({"type": f"junk-{i}", "command": f"/junk-{i}"}).encode(), as_json
        case 2:
            return json.dumps([f"junk-{i}", i]).encode(), as_json
        case 3:  # signed with another secret
            return slash_command(f"/junk-{i}", "x", secret="not-the-secret")
        case 4:  # a replayed old request
            return slash_command("/rollback", f"junk-{i}", stale=True)
        case 5:
            body = urlencode({"payload": json.dumps({"type": f"junk-{i}"})}).encode()
            return body, sign(body, secret="forged")
        case 6:  # broken JSON
            return b'{"type": "junk-' + str(i).encode(), as_json
        case 7:  # not UTF-8
            return b"type=junk-\xff\xfe" + str(i).encode(), form
        case _:  # an interactivity payload that is a list
            return urlencode({"payload": json.dumps([f"junk-{i}"])}).encode(), form


async def send_all(url: str, requests: range) -> list[int]:
    limit = asyncio.Semaphore(PARALLEL)
    connector = aiohttp.TCPConnector(limit=PARALLEL)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int) -> int:
            body, headers = junk(i)
            async with limit, session.post(f"{url}/slack/events", data=body, headers=headers) as r:
                await r.read()
                return r.status

        return await asyncio.gather(*(one(i) for i in requests))


def label_values(text: str, metric: str, label: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            for part in line[len(metric) + 1 : line.index("}")].split(","):
                key, _, value = part.partition("=")
                if key == label:
                    found.add(value.strip('"'))
    return found


def test_five_thousand_unsigned_requests_are_refused_and_leave_metrics_and_memory_flat(
    rollbot_server, tmp_path: Path
) -> None:
    bot: RollbotProcess = rollbot_server(config=write_catalog(tmp_path))
    assert bot.pid is not None
    # warm up first: the first requests load code and fill caches that are not growth
    assert set(asyncio.run(send_all(bot.url, range(WARM_UP)))) == {401}
    lines_before = len(metrics_text(bot.url).splitlines())
    rss_before = rss_kb(bot.pid)
    started = time.monotonic()
    statuses = asyncio.run(send_all(bot.url, range(WARM_UP, WARM_UP + JUNK)))
    seconds = time.monotonic() - started
    text = metrics_text(bot.url)
    lines_after, rss_after = len(text.splitlines()), rss_kb(bot.pid)
    print(
        f"\n{JUNK} junk requests in {seconds:.1f}s: statuses {sorted(set(statuses))}; "
        f"/metrics {lines_before} -> {lines_after} lines; "
        f"RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MB"
    )
    assert len(statuses) == JUNK and set(statuses) == {401}
    assert lines_after == lines_before
    assert rss_after - rss_before < 6 * 1024, (rss_before, rss_after)
    kinds = label_values(text, "rollbot_slack_requests_total", "kind")
    assert kinds == {"unverified"}, kinds
    assert "junk" not in text
    assert bot.alive


def test_a_signed_body_that_is_not_an_object_is_a_400_and_odd_kinds_share_a_label(
    rollbot_server, tmp_path: Path
) -> None:
    bot: RollbotProcess = rollbot_server(config=write_catalog(tmp_path))
    body = json.dumps(["a", "list"]).encode()
    reply = bot.sender.post(body, sign(body, content_type="application/json"))
    assert reply.status == 400 and "JSON object" in reply.text
    for i in range(20):
        payload = urlencode({"payload": json.dumps({"type": f"odd-{i}"})}).encode()
        assert bot.sender.post(payload, sign(payload, secret=SIGNING_SECRET)).status < 500
    text = metrics_text(bot.url)
    kinds = label_values(text, "rollbot_slack_requests_total", "kind")
    assert kinds <= KINDS and "odd" not in text, kinds
    assert "other" in kinds


def test_metrics_can_move_off_the_public_port(rollbot_server, tmp_path: Path) -> None:
    port = free_port()
    bot: RollbotProcess = rollbot_server(
        config=write_catalog(tmp_path), env={"ROLLBOT_METRICS_PORT": str(port)}
    )
    try:
        metrics_text(bot.url)
        raise AssertionError("/metrics still served on the public port")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    assert "rollbot_store_up" in metrics_text(f"http://127.0.0.1:{port}")
    with urllib.request.urlopen(f"{bot.url}/healthz", timeout=5) as resp:
        assert resp.status == 200
