"""Pacing of calls per key (an AWS service): each call waits for its slot, so one process
never calls a service faster than its rate, however many captures run at once.

A key allows a burst of half a second's calls, then `rate` calls a second (a token bucket run
as a schedule: calls wait instead of failing). The shipped rates stay below the documented
per-account API quotas, burst included:
  logs                  3/s  CloudWatch Logs FilterLogEvents allows 5 transactions a second
  ecs                  15/s  ECS cluster reads (DescribeServices, DescribeTasks, ...) sustain
                             20/s with bursts of 50
  monitoring           20/s  CloudWatch GetMetricData allows 50 transactions a second
  elasticloadbalancing 10/s  Elastic Load Balancing describe calls are throttled per account
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Mapping

DEFAULT_RATES: dict[str, float] = {
    "logs": 3.0,
    "ecs": 15.0,
    "monitoring": 20.0,
    "elasticloadbalancing": 10.0,
}
DEFAULT_RATE = 10.0  # any other service a capture calls


def burst(rate: float) -> int:
    """Calls that may go at once before the rate applies: half a second's worth."""
    return max(1, math.ceil(rate / 2))


class Pacer:
    """Per-key pacing: at most `burst(rate)` calls at once, then `rate` a second."""

    def __init__(self, rates: Mapping[str, float] | None = None, default: float = DEFAULT_RATE):
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        self.default = default
        self._due: dict[str, float] = {}  # when the bucket of a key would be full again
        self._lock = threading.Lock()  # one pacer serves every event loop of the process

    def configure(self, rates: Mapping[str, float]) -> None:
        """Override the rate of some keys (a rate of 0 or less turns pacing off for a key)."""
        self.rates.update(rates)

    def delay(self, key: str) -> float:
        """Take the next slot for `key`; returns how long to wait for it (seconds)."""
        rate = self.rates.get(key.removesuffix(" (send)"), self.default)
        if rate <= 0:
            return 0.0
        interval = 1.0 / rate
        with self._lock:
            t = time.monotonic()
            due = max(self._due.get(key, t), t)
            slot = max(t, due - (burst(rate) - 1) * interval)
            self._due[key] = due + interval
        return slot - t

    async def wait(self, key: str) -> None:
        """Wait for the next slot without holding a thread (before a call is handed to one)."""
        wait = self.delay(key)
        if wait > 0:
            await asyncio.sleep(wait)

    def hold(self, key: str) -> None:
        """Block the calling thread until the next send slot of `key`. Threads started on
        time may still send in a bunch (a busy process resumes them together); this second,
        send-side schedule keeps what goes on the wire at the rate, retries included."""
        wait = self.delay(f"{key} (send)")
        if wait > 0:
            time.sleep(wait)
