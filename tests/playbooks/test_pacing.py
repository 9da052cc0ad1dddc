"""Pacing of AWS calls per service: a burst, then the rate, however many callers at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from playbooks import aws as layer
from playbooks.pacing import DEFAULT_RATES, Pacer, burst
from tests.testbed.aws import Aws
from tests.testbed.aws_gate import AwsGate


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """The most calls in any window of `width` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_shipped_pace_stays_below_the_documented_api_rates() -> None:
    documented = {"logs": 5, "ecs": 20, "monitoring": 50}  # transactions a second
    for service, limit in documented.items():
        rate = DEFAULT_RATES[service]
        assert rate < limit
        # a burst and a second at the rate still fit in one second's quota (ECS: burst 50)
        assert rate + burst(rate) <= (50 if service == "ecs" else limit)


def test_a_burst_goes_at_once_then_calls_are_spaced_by_the_rate() -> None:
    pacer = Pacer({"ecs": 4.0})
    delays = [pacer.delay("ecs") for _ in range(6)]
    assert delays[:2] == [0.0, 0.0]  # burst(4) == 2
    assert delays[2:] == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.02)
    assert pacer.delay("logs") == 0.0  # keys are paced apart
    assert Pacer({"ecs": 0}).delay("ecs") == 0.0  # 0 turns pacing off


def test_an_idle_key_gets_its_burst_back() -> None:
    pacer = Pacer({"k": 20.0})
    for _ in range(30):
        pacer.delay("k")
    time.sleep(2.0)
    assert [pacer.delay("k") for _ in range(burst(20.0))] == [0.0] * burst(20.0)


async def test_paced_clients_keep_under_the_rate_at_the_aws_endpoint(
    aws: Aws, aws_gate: AwsGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_gate.url)
    rate = 6.0
    clients = layer.AwsClients(region="us-east-1", quick=True, pacer=Pacer({"ecs": rate}))
    ecs = clients.client("ecs")
    # when each request leaves the client (the gate runs in this process, so a busy moto
    # can hold its loop and make arrivals bunch up that were sent apart)
    sent: list[float] = []
    ecs.meta.events.register("before-send", lambda **_: sent.append(time.monotonic()))
    started = time.monotonic()
    await asyncio.gather(*(layer.call(ecs, "list_clusters") for _ in range(24)))
    elapsed = time.monotonic() - started
    assert aws_gate.forwarded["ListClusters"] == 24
    assert len(sent) == 24
    worst = busiest_window(sent)
    print(f"24 calls paced at {rate:g}/s: {elapsed:.2f}s, busiest second {worst} calls")
    # the burst, then one call every 1/rate s: at most burst + rate in any second
    assert worst <= rate + burst(rate)
    # after the burst, 21 calls at 6/s take 3.5 s
    assert elapsed >= (24 - burst(rate)) / rate - 0.1


async def test_paginated_calls_are_paced_page_by_page(
    aws: Aws, aws_gate: AwsGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_gate.url)
    unpaced = layer.AwsClients(region="us-east-1").client("logs")
    for i in range(9):
        await layer.call(unpaced, "create_log_group", logGroupName=f"/ecs/g{i}")
    paced = Pacer({"logs": 2.0})
    logs = layer.AwsClients(region="us-east-1", quick=True, pacer=paced).client("logs")
    started = time.monotonic()
    groups = await layer.paginate(logs, "describe_log_groups", "logGroups", limit=2)
    assert len(groups) == 9
    assert aws_gate.forwarded["DescribeLogGroups"] == 5  # five pages, each a call
    assert time.monotonic() - started >= 1.4  # burst(2) == 1: four pages wait 0.5 s each
