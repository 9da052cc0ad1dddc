"""Slack redelivers a request it thinks timed out: answer the copy without running it again."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.store.base import Store

SEEN_FOR = 3600.0  # Slack retries within minutes; an hour is ample
log = logging.getLogger(__name__)


def delivery_key(request: AsyncBoltRequest) -> str:
    return "delivery:" + hashlib.sha256(request.raw_body.encode()).hexdigest()


def make_dedupe(store: Store) -> Any:
    pending: set[asyncio.Task[bool]] = set()

    async def dedupe(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> Any:
        key = delivery_key(req)
        if req.headers.get("x-slack-retry-num"):
            if not await store.remember(key, SEEN_FOR):
                return BoltResponse(status=200, body="")
            return await next()
        # A first delivery is noted off the ack's path: a retry only comes seconds later.
        task = asyncio.create_task(store.remember(key, SEEN_FOR))
        pending.add(task)
        task.add_done_callback(_forget(pending))
        return await next()

    return dedupe


def _forget(pending: set[asyncio.Task[bool]]) -> Any:
    def done(task: asyncio.Task[bool]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not note a delivery: %s", task.exception())

    return done
