"""HTTP health checks: the runbooks' `curl -f .../healthz` as a step, with attempts and latency."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field

from playbooks.base import Step, StepContext, StepFailed

BODY_EXCERPT = 200  # characters of a failing answer kept for the people reading the failure


class HttpCheck(Step):
    """GET each URL until it answers as expected, or fail after `attempts` tries."""

    type: Literal["http.check"] = "http.check"
    urls: list[str] | None = None  # default: the target's health_urls
    expect_status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None  # text the body must contain, e.g. "healthy"
    attempts: int = Field(default=5, ge=1)
    interval: float = Field(default=2.0, ge=0)  # seconds between attempts on one URL
    timeout: float = Field(default=5.0, gt=0)  # seconds for one request, body included

    summary: ClassVar[str] = "Check the health endpoints"

    def _urls(self, ctx: StepContext) -> list[str]:
        return list(self.urls if self.urls is not None else ctx.param("health_urls") or [])

    async def plan(self, ctx: StepContext) -> list[str]:
        urls = self._urls(ctx)
        if not urls:
            return ["(no health URLs configured: nothing to check)"]
        wanted = f"{self.expect_status}" + (
            f" containing {self.contains!r}" if self.contains else ""
        )
        return [
            f"GET {url} -> expect {wanted} (up to {self.attempts} attempts,"
            f" {self.interval:g}s apart, {self.timeout:g}s timeout)"
            for url in urls
        ]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        urls = self._urls(ctx)
        if not urls:
            return {"checks": [], "skipped": True, "summary": "no health URLs configured"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            checks = await asyncio.gather(*(self._check(session, url) for url in urls))
        summary = "; ".join(_line(c) for c in checks)
        if any(not c["ok"] for c in checks):
            raise StepFailed(f"health check failed: {summary}", {"checks": checks})
        return {"checks": checks, "skipped": False, "summary": summary}

    async def _check(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for attempt in range(1, self.attempts + 1):
            result = await self._once(session, url)
            result["attempts"] = attempt
            if result["ok"]:
                break
            if attempt < self.attempts:
                await asyncio.sleep(self.interval)
        return result

    async def _once(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        started = time.perf_counter()
        status: int | None = None
        body, problem = "", ""
        try:
            # redirects are not followed, like curl -f: a moved health URL is a finding
            async with session.get(url, allow_redirects=False) as resp:
                status = resp.status
                body = await resp.text(errors="replace")
        except TimeoutError:
            problem = f"no answer within {self.timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            problem = f"cannot connect: {exc.os_error.strerror or exc}"
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a malformed URL
            problem = f"{type(exc).__name__}: {exc}"
        latency = round((time.perf_counter() - started) * 1000, 1)
        if not problem:
            problem = self._mismatch(status, body)
        result: dict[str, Any] = {
            "url": url,
            "ok": not problem,
            "status": status,
            "latency_ms": latency,
        }
        if problem:
            result["error"] = problem
            result["body"] = body[:BODY_EXCERPT]
        return result

    def _mismatch(self, status: int | None, body: str) -> str:
        if status != self.expect_status:
            return f"expected {self.expect_status}, got {status}"
        if self.contains is not None and self.contains not in body:
            return f"body does not contain {self.contains!r}"
        return ""


def _line(check: dict[str, Any]) -> str:
    tries = f", {check['attempts']} attempts" if check["attempts"] > 1 else ""
    if check["ok"]:
        return f"{check['url']} {check['status']} in {check['latency_ms']:g} ms{tries}"
    return f"{check['url']} {check['error']}{tries}"
