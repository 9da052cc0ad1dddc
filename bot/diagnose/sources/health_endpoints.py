"""Evidence from the health endpoints: a few requests each, their answers and latency."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from typing import Any

import aiohttp

from bot.diagnose.sources.context import SourceContext, describe_error

HEALTH_BODY = 300  # bytes of a failing health answer kept as evidence


async def health(ctx: SourceContext, url: str) -> dict[str, Any]:
    """A few requests one after another (a latency figure, not a load test)."""
    timeout = aiohttp.ClientTimeout(total=ctx.timeout)
    samples: list[dict[str, Any]] = []
    body = ""
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(ctx.options.health_samples):
            sample, text = await _sample(session, url)
            samples.append(sample)
            body = text or body
    return _health_summary(url, samples, body)


async def _sample(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], str]:
    started = time.perf_counter()
    try:
        async with session.get(url) as resp:
            head = await resp.content.read(HEALTH_BODY)  # a health page, not a download
            sample: dict[str, Any] = {"status": resp.status}
            # a failing body often says why (which dependency is down)
            kept = head.decode("utf-8", "replace") if resp.status >= 400 else ""
    except aiohttp.ClientError as exc:
        sample, kept = {"error": describe_error(exc)}, ""
    sample["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return sample, kept


def _health_summary(url: str, samples: list[dict[str, Any]], body: str) -> dict[str, Any]:
    answered = [s["ms"] for s in samples if "status" in s]
    labels = Counter(
        str(s["status"]) if "status" in s else s["error"].split(":", 1)[0] for s in samples
    )
    # runbook 004 counts 5xx as unavailable; a refused connection is no better
    failing = all(s.get("status", 500) >= 500 for s in samples)
    return {
        "url": url,
        "samples": samples,
        "failing": failing,
        "summary": ", ".join(f"{n}x {label}" for label, n in labels.items()),
        "errors": sorted({s["error"] for s in samples if "error" in s}),
        "p95_ms": nearest_rank(answered, 95),
        "median_ms": round(statistics.median(answered), 1) if answered else None,
        "body": body,
    }


def nearest_rank(values: list[float], pct: float) -> float | None:
    """Percentile by nearest rank: never above the largest sample, unlike interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]
