"""Benchmark: /diagnose's concurrent capture against the same sources fetched one after another,
as runbook 001's pre-rollback commands are run by hand.

Run: python bench/diagnose_capture.py [--rounds 7] [--aws-latency-ms 40] [--health-latency-ms 150]

Starts its own moto server behind a proxy that adds --aws-latency-ms to every AWS call (an
in-region API round trip) and two health endpoints that answer after --health-latency-ms (an
internet round trip), so both ways pay realistic latencies. Both ways run the very same
collectors; only the scheduling differs. Prints medians, spread and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.catalog import Target, load_catalog
from bot.diagnose import capture
from bot.diagnose.capture import prepare
from tests.testbed.aws import CREDENTIALS, Aws, make_ecs_service, put_log_lines

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class Servers:
    """A latency proxy in front of moto and the health endpoints, on a loop of their own."""

    def __init__(self, moto_url: str, aws_latency: float, health_latency: float) -> None:
        self.moto_url, self.aws_latency, self.health_latency = moto_url, aws_latency, health_latency
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self.runners: list[web.AppRunner] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    async def _start(self) -> None:
        self.session = ClientSession()
        proxy = web.Application()
        proxy.router.add_route("*", "/{tail:.*}", self._forward)
        health = web.Application()
        health.router.add_get("/healthz", self._health)
        for name, app in (("proxy", proxy), ("health", health)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            self.ports[name] = runner.addresses[0][1]

    async def _forward(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.aws_latency)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self.session.request(
            request.method,
            f"{self.moto_url}{request.path_qs}",
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=body, headers=kept)

    async def _health(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.health_latency)
        return web.Response(text="ok")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        async def close() -> None:
            for runner in self.runners:
                await runner.cleanup()
            await self.session.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def seed(aws: Aws) -> None:
    make_ecs_service(aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker", 6)
    put_log_lines(aws, "/ecs/sandbox-broker-api", ["ERROR 500 upstream"] * 40 + ["INFO ok"] * 60)
    put_log_lines(aws, "/ecs/sandbox-broker-worker", ["ERROR job failed"] * 10)
    aws.client("cloudwatch").put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": name,
                "Value": value,
                "Dimensions": [{"Name": "LoadBalancer", "Value": "app/bench/1"}],
            }
            for name, value in (("RequestCount", 1000.0), ("HTTPCode_Target_5XX_Count", 80.0))
        ],
    )


def bench_target(health: str) -> Target:
    target = {
        "playbook": "ecs-revision",
        "cluster": "sandbox-broker-cluster",
        "service": "sandbox-broker",
        "region": "eu-central-1",
        "health_urls": [f"{health}/healthz", f"{health}/healthz?replica=2"],
        "log_groups": ["/ecs/sandbox-broker-api", "/ecs/sandbox-broker-worker"],
        "diagnose": {"load_balancer": "app/bench/1"},
    }
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"api": target}}
    path = Path(tempfile.mkdtemp(prefix="rollbot-bench-")) / "rollbot.yml"
    path.write_text(json.dumps(catalog))  # JSON is YAML
    return load_catalog(path).targets["api"]


async def one_after_another(target: Target) -> float:
    """The same collectors as /diagnose, each awaited before the next starts."""
    started = time.perf_counter()
    ctx, planned = prepare(target)
    for collect in planned.values():
        if not isinstance(collect, str):
            await collect(ctx)
    return time.perf_counter() - started


async def concurrently(target: Target) -> float:
    started = time.perf_counter()
    result = await capture(target)
    failed = {n: s.error for n, s in result.sources.items() if s.status in ("error", "timeout")}
    if failed:
        raise RuntimeError(f"a source failed during the benchmark: {failed}")
    return time.perf_counter() - started


def measure(rounds: int, target: Target) -> dict[str, list[float]]:
    ways: dict[str, Callable[[Target], Any]] = {
        "one after another (001)": one_after_another,
        "concurrent (/diagnose)": concurrently,
    }
    asyncio.run(concurrently(target))  # moto's backends and boto3's clients start lazily
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):  # interleaved, so drift on the machine hits both ways alike
        for name, way in ways.items():
            times[name].append(asyncio.run(way(target)))
    return times


def report(times: dict[str, list[float]], args: argparse.Namespace, sources: int) -> None:
    print(
        f"diagnose capture: {sources} sources, {args.rounds} rounds, AWS call +"
        f"{args.aws_latency_ms:g} ms, health request +{args.health_latency_ms:g} ms"
    )
    print(f"{'way':<26}{'median s':>10}{'min s':>10}{'max s':>10}")
    for name, values in times.items():
        print(
            f"{name:<26}{statistics.median(values):>10.3f}{min(values):>10.3f}{max(values):>10.3f}"
        )
    seq, con = (statistics.median(v) for v in times.values())
    print(f"ratio: concurrent is {seq / con:.2f}x faster (median {seq:.3f} s vs {con:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--aws-latency-ms", type=float, default=40.0)
    parser.add_argument("--health-latency-ms", type=float, default=150.0)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    os.environ.update(CREDENTIALS)
    seed(Aws(moto_url))
    servers = Servers(moto_url, args.aws_latency_ms / 1000, args.health_latency_ms / 1000)
    os.environ["AWS_ENDPOINT_URL"] = servers.url("proxy")  # the bot's calls pay the latency
    try:
        target = bench_target(servers.url("health"))
        planned = prepare(target)[1]
        times = measure(args.rounds, target)
        report(times, args, sum(not isinstance(c, str) for c in planned.values()))
    finally:
        servers.stop()
        moto.stop()


if __name__ == "__main__":
    main()
