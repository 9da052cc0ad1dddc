"""Slack redelivers a request it thinks timed out: answer the copy without running it again."""

from __future__ import annotations

import hashlib
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.store.base import Store

SEEN_FOR = 3600.0  # Slack retries within minutes; an hour is ample


def delivery_key(request: AsyncBoltRequest) -> str:
    return "delivery:" + hashlib.sha256(request.raw_body.encode()).hexdigest()


def make_dedupe(store: Store) -> Any:
    async def dedupe(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> Any:
        first = await store.remember(delivery_key(req), SEEN_FOR)
        retried = bool(req.headers.get("x-slack-retry-num"))
        if retried and not first:
            return BoltResponse(status=200, body="")
        return await next()

    return dedupe
