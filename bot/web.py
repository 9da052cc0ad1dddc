"""HTTP mode: aiohttp server with /slack/events, /healthz and /metrics."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot import __version__, metrics
from bot.services import Services
from bot.store.outage import FailureLog

log = logging.getLogger(__name__)


def build_web_app(bolt: AsyncApp, services: Services) -> web.Application:
    store_failures = FailureLog("healthz")

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        bolt_request = await to_bolt_request(request)
        response = await bolt.async_dispatch(bolt_request)
        kind = _kind(bolt_request.body)
        metrics.slack_requests.labels(kind=kind, status=str(response.status)).inc()
        metrics.request_seconds.labels(kind=kind).observe(time.perf_counter() - started)
        return await to_aiohttp_response(response)

    async def healthz(_: web.Request) -> web.Response:
        ok = await services.store.ping()
        metrics.store_up.set(1 if ok else 0)
        if ok:
            store_failures.succeeded()
        else:
            store_failures.failed(ConnectionError("the state store did not answer a ping"))
        body = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "replica": services.replica,
            "store": {"backend": services.store.backend, "ok": ok},
            "targets": len(services.catalog.targets),
        }
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_endpoint(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


def _kind(body: dict) -> str:
    if "command" in body:
        return "command"
    payload = body.get("type")
    return payload if isinstance(payload, str) else "other"
