"""http.check against a local aiohttp server whose answers each test sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from playbooks.base import StepContext, StepFailed
from playbooks.steps.http import HttpCheck
from tests.testbed.ports import free_port


@dataclass
class Health:
    """What /healthz answers: `bad_first` failures (503) before `status` and `body`."""

    base: str = ""
    status: int = 200
    body: str = '{"status":"healthy"}'
    bad_first: int = 0
    delay: float = 0.0
    hits: list[str] = field(default_factory=list)

    def url(self, path: str = "/healthz") -> str:
        return self.base + path


@pytest.fixture
async def health() -> AsyncIterator[Health]:
    state = Health()

    async def healthz(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        if state.delay:
            await asyncio.sleep(state.delay)
        if len(state.hits) <= state.bad_first:
            return web.Response(status=503, text="warming up")
        return web.Response(status=state.status, text=state.body)

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/healthz")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/old-health", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def context(health_urls: list[str] | None = None) -> StepContext:
    return StepContext(target="api", params={"health_urls": health_urls or []})


async def test_good_answer(health: Health) -> None:
    out = await HttpCheck(contains="healthy").run(context([health.url()]))
    (check,) = out["checks"]
    assert (check["url"], check["ok"], check["status"], check["attempts"]) == (
        health.url(),
        True,
        200,
        1,
    )
    assert 0 < check["latency_ms"] < 1000 and "error" not in check
    assert out["summary"].startswith(f"{health.url()} 200 in ") and out["skipped"] is False


async def test_bad_status_fails_after_every_attempt(health: Health) -> None:
    health.status, health.body = 500, "Internal Server Error: db down"
    step = HttpCheck(attempts=3, interval=0.01)
    with pytest.raises(StepFailed) as failed:
        await step.run(context([health.url()]))
    assert str(failed.value) == (
        f"health check failed: {health.url()} expected 200, got 500, 3 attempts"
    )
    (check,) = failed.value.output["checks"]
    assert (check["status"], check["body"], len(health.hits)) == (500, health.body, 3)


async def test_missing_text_fails(health: Health) -> None:
    health.body = '{"status":"degraded"}'
    with pytest.raises(StepFailed, match="body does not contain 'healthy'"):
        await HttpCheck(contains="healthy", attempts=1).run(context([health.url()]))


async def test_recovers_within_the_attempts(health: Health) -> None:
    health.bad_first = 2
    out = await HttpCheck(attempts=3, interval=0.01).run(context([health.url()]))
    assert out["checks"][0]["attempts"] == 3 and out["checks"][0]["ok"]


async def test_one_bad_url_fails_the_step_and_all_are_reported(health: Health) -> None:
    closed = f"http://127.0.0.1:{free_port()}/healthz"
    with pytest.raises(StepFailed) as failed:
        await HttpCheck(attempts=1).run(context([health.url(), closed]))
    good, bad = failed.value.output["checks"]
    assert good["ok"] and not bad["ok"] and bad["status"] is None
    assert bad["error"].startswith("cannot connect")
    assert f"{closed} cannot connect" in str(failed.value)


async def test_slow_answer_times_out(health: Health) -> None:
    health.delay = 0.4
    with pytest.raises(StepFailed, match=r"no answer within 0\.1s"):
        await HttpCheck(timeout=0.1, attempts=1).run(context([health.url()]))


async def test_redirects_are_not_followed(health: Health) -> None:
    with pytest.raises(StepFailed, match="expected 200, got 302"):
        await HttpCheck(attempts=1).run(context([health.url("/old-health")]))
    out = await HttpCheck(expect_status=302).run(context([health.url("/old-health")]))
    assert out["checks"][0]["status"] == 302


async def test_urls_field_overrides_the_target(health: Health) -> None:
    step = HttpCheck(urls=[health.url()])
    out = await step.run(context(["http://127.0.0.1:1/never"]))
    assert [c["url"] for c in out["checks"]] == [health.url()]


async def test_no_urls_is_reported_as_skipped() -> None:
    out = await HttpCheck().run(context())
    assert out == {"checks": [], "skipped": True, "summary": "no health URLs configured"}
    assert await HttpCheck().plan(context()) == ["(no health URLs configured: nothing to check)"]


async def test_plan_lists_each_request(health: Health) -> None:
    step = HttpCheck(contains="healthy", attempts=2, interval=1, timeout=3)
    assert await step.plan(context([health.url()])) == [
        f"GET {health.url()} -> expect 200 containing 'healthy'"
        " (up to 2 attempts, 1s apart, 3s timeout)"
    ]
    assert health.hits == []  # planning sends nothing


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="attempts"):
        HttpCheck(attempts=0)
    with pytest.raises(ValueError, match="expect_status"):
        HttpCheck(expect_status=42)
