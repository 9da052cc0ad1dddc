"""HTTP mode: aiohttp server with /slack/events, /healthz and /metrics.

Metric labels come from fixed sets only, and a request is labelled by its kind only once Bolt
has verified its signature: unsigned traffic cannot grow /metrics (nor the process)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import (
    build_normalized_headers,
    extract_content_type,
    parse_body,
)
from slack_sdk.signature import SignatureVerifier

from bot import __version__, metrics
from bot.services import Services
from bot.store.outage import FailureLog

log = logging.getLogger(__name__)

# Slack payload types worth telling apart; anything else is "other".
KINDS = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "event_callback",
        "message_action",
        "shortcut",
        "url_verification",
        "view_closed",
        "view_submission",
    }
)
STATUSES = frozenset({200, 400, 401, 403, 404, 413, 429, 500, 502, 503})
UNVERIFIED = "unverified"
NOT_AN_OBJECT = "the request body must be a form or a JSON object"


def build_web_app(
    bolt: AsyncApp, services: Services, *, with_metrics: bool = True
) -> web.Application:
    """The public app; `with_metrics=False` leaves /metrics to a separate listener."""
    verifier = SignatureVerifier(services.settings.secret("slack_signing_secret") or "")
    store_failures = FailureLog("healthz")

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw = await request.read()
        text = _object_text(raw, request.headers)
        if text is None:
            # Bolt expects an object: answer here, 401 unless signed (then the body is wrong)
            status = 400 if verifier.is_valid_request(raw, dict(request.headers)) else 401
            _count(UNVERIFIED, status, started)
            return web.Response(status=status, text=NOT_AN_OBJECT if status == 400 else "")
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        response = await bolt.async_dispatch(bolt_request)
        kind = UNVERIFIED if response.status == 401 else kind_of(bolt_request.body)
        _count(kind, response.status, started)
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

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    if with_metrics:
        app.router.add_get("/metrics", metrics_endpoint)
    return app


def build_metrics_app() -> web.Application:
    """GET /metrics alone, for `rollbot serve --metrics-port`."""
    app = web.Application(client_max_size=1024)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


async def metrics_endpoint(_: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")


def kind_of(body: dict[str, Any]) -> str:
    """The label of a verified request: one of KINDS, "command" or "other"."""
    if "command" in body:
        return "command"
    payload = body.get("type")
    return payload if isinstance(payload, str) and payload in KINDS else "other"


def _object_text(raw: bytes, headers: Mapping[str, str]) -> str | None:
    """The body as text when it reads as Bolt reads it into an object; else None (not UTF-8,
    broken JSON, a list or a string where an object belongs)."""
    try:
        text = raw.decode("utf-8")
        content_type = extract_content_type(build_normalized_headers(dict(headers)))
        return text if isinstance(parse_body(text, content_type), dict) else None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _count(kind: str, status: int, started: float) -> None:
    metrics.slack_requests.labels(kind=kind, status=_status(status)).inc()
    metrics.request_seconds.labels(kind=kind).observe(time.perf_counter() - started)


def _status(status: int) -> str:
    return str(status) if status in STATUSES else "other"
