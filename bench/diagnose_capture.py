"""Benchmark: /diagnose's concurrent capture against the same sources fetched one by one.

Run: python bench/diagnose_capture.py [--rounds 5] [--latency-ms 150]
Starts its own moto server and two health endpoints answering after --latency-ms (a realistic
internet round trip), so both ways pay the same latencies; prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.catalog import load_catalog
from bot.diagnose import capture, sources
from tests.testbed.aws import CREDENTIALS, Aws, make_ecs_service, put_log_lines
from tests.testbed.http_backend import Backend


def setup(latency: float) -> tuple[object, list[Backend], object]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    aws = Aws(endpoint)
    make_ecs_service(aws, "bench", "api", "api", revisions=6)
    put_log_lines(aws, "/ecs/api", ["ERROR boom"] * 50 + ["INFO ok"] * 50)
    put_log_lines(aws, "/ecs/worker", ["ERROR slow"] * 20)
    backends = [Backend(), Backend()]
    for b in backends:
        b.delay = latency
    folder = Path(tempfile.mkdtemp())
    (folder / "rollbot.yml").write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n    playbook: ecs-revision\n"
        "    cluster: bench\n    service: api\n    region: eu-central-1\n"
        f"    health_urls: [{backends[0].url}, {backends[1].url}]\n"
        "    log_groups: [/ecs/api, /ecs/worker]\n"
        "    diagnose: {load_balancer: app/bench/1}\n"
    )
    target = load_catalog(folder / "rollbot.yml").targets["api"]
    return server, backends, target


async def sequential(target: object) -> float:
    """Runbook 001 by hand: each command waits for the previous one."""
    started = time.perf_counter()
    window = sources.Window(
        start=datetime.now(UTC) - timedelta(minutes=10),
        end=datetime.now(UTC),
        config=target.settings.diagnose,
    )  # type: ignore[attr-defined]
    for fn in (sources.ecs_service, sources.task_definitions, sources.metrics):
        await fn(target, window)
    for group in target.params["log_groups"]:  # type: ignore[attr-defined]
        client = sources._aws(target, "logs")
        await asyncio.to_thread(sources._log_group, client, group, "ERROR", window)
    for url in target.params["health_urls"]:  # type: ignore[attr-defined]
        import aiohttp

        async with aiohttp.ClientSession() as session:
            await sources._probe(session, url, target.settings.diagnose.health_samples)  # type: ignore[attr-defined]
    return time.perf_counter() - started


async def concurrent(target: object) -> float:
    started = time.perf_counter()
    await capture(target)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    args = parser.parse_args()
    server, backends, target = setup(args.latency_ms / 1000)
    asyncio.run(concurrent(target))  # warm moto's lazy backends before measuring
    seq, con = [], []
    for _ in range(args.rounds):
        seq.append(asyncio.run(sequential(target)))
        con.append(asyncio.run(concurrent(target)))
    s, c = statistics.median(seq), statistics.median(con)
    print(f"diagnose capture, {args.rounds} rounds, health latency {args.latency_ms:g} ms")
    print(f"{'way':<28}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'one after another (001)':<28}{s:>10.3f}{min(seq):>10.3f}{max(seq):>10.3f}")
    print(f"{'concurrent (/diagnose)':<28}{c:>10.3f}{min(con):>10.3f}{max(con):>10.3f}")
    print(f"speed-up: {s / c:.2f}x")
    for b in backends:
        b.close()
    server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
