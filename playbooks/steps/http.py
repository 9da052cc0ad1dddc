"""HTTP health checks: the runbooks' `curl .../healthz` as a step with retries."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

import aiohttp

from playbooks.base import Step, StepContext, StepFailed, register_step


@register_step
class HttpCheck(Step):
    """GET each URL until it answers as expected, or fail after `attempts`."""

    type: Literal["http.check"] = "http.check"
    urls: list[str] | None = None  # default: the target's health_urls
    expect_status: int = 200
    contains: str | None = None
    attempts: int = 5
    interval: float = 2.0
    timeout: float = 5.0

    summary: ClassVar[str] = "Check the health endpoints"

    def _urls(self, ctx: StepContext) -> list[str]:
        return list(self.urls if self.urls is not None else ctx.param("health_urls") or [])

    async def plan(self, ctx: StepContext) -> list[str]:
        urls = self._urls(ctx)
        if not urls:
            return ["(no health URLs configured: nothing to check)"]
        return [
            f"GET {u} -> expect {self.expect_status}"
            + (f" containing {self.contains!r}" if self.contains else "")
            for u in urls
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        urls = self._urls(ctx)
        if not urls:
            return {"summary": "no health URLs configured", "checks": []}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            checks = await asyncio.gather(*(self._check(session, u) for u in urls))
        failed = [c for c in checks if not c["ok"]]
        summary = ", ".join(f"{c['url']} {c['status']} ({c['latency_ms']} ms)" for c in checks)
        if failed:
            raise StepFailed(f"health check failed: {summary}", {"checks": checks})
        return {"summary": summary, "checks": checks}

    async def _check(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        last: dict[str, Any] = {}
        for attempt in range(1, self.attempts + 1):
            last = await self._once(session, url)
            last["attempts"] = attempt
            if last["ok"]:
                break
            if attempt < self.attempts:
                await asyncio.sleep(self.interval)
        return last

    async def _once(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with session.get(url, allow_redirects=False) as resp:
                body = await resp.text(errors="replace")
                status: Any = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            body, status = "", f"error: {type(exc).__name__}"
        latency = round((time.perf_counter() - started) * 1000, 1)
        ok = status == self.expect_status and (self.contains is None or self.contains in body)
        return {"url": url, "status": status, "latency_ms": latency, "ok": ok}
