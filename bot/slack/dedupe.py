"""Slack redelivers a request it thinks timed out: answer the copy without running it again.
And a signed request captured and sent again (a replay) runs once: its signature is remembered
in the store, shared by the replicas, for as long as Slack's verifiers accept its timestamp.

Over HTTP a redelivery carries X-Slack-Retry-Num and the same body; over Socket Mode it is the
same envelope id again (the body there is no raw text at all), possibly on another replica's
connection, so every envelope id is claimed in the store before its listener runs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.socket import ENVELOPE_HEADER
from bot.store.audit import audit
from bot.store.base import Store
from bot.store.outage import HEALTH, FailureLog, is_unavailable

# Bolt refuses a request whose timestamp is more than five minutes off; past that a replay of
# it fails verification, so its signature need not be remembered longer (plus clock skew).
REPLAY_WINDOW = 2 * 300.0
SEEN_FOR = 3600.0  # Slack retries within minutes; an hour is ample
# First deliveries are noted in batches this often: one store round trip for a whole burst.
NOTE_EVERY = 0.05
log = logging.getLogger(__name__)


def envelope_id(request: AsyncBoltRequest) -> str:
    """The Socket Mode envelope id of the request, or "" for an HTTP request."""
    return (request.headers.get(ENVELOPE_HEADER) or [""])[0]


def delivery_key(request: AsyncBoltRequest) -> str:
    """What identifies one delivery across redeliveries: the envelope id in Socket Mode, the
    signed body over HTTP."""
    if envelope := envelope_id(request):
        return f"delivery:envelope:{envelope}"
    return "delivery:" + hashlib.sha256(request.raw_body.encode()).hexdigest()


def first_header(request: AsyncBoltRequest, name: str) -> str:
    values = request.headers.get(name) or [""]
    return str(values[0])


def signature_key(signature: str) -> str:
    return "signature:" + hashlib.sha256(signature.encode()).hexdigest()


class DeliveryNotes:
    """First deliveries, noted in the store off the ack's path, a batch at a time: a retry
    only comes seconds later, and until the batch is written this replica knows it itself."""

    def __init__(self, store: Store, every: float = NOTE_EVERY) -> None:
        self.store = store
        self.every = every
        self.pending: set[str] = set()
        self._unwritten: set[str] = set()  # pending ones and those being written
        self._writer: asyncio.Task[None] | None = None
        self._writing: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._failures = FailureLog("delivery_notes")

    def knows(self, key: str) -> bool:
        return key in self._unwritten

    def add(self, key: str) -> None:
        self.pending.add(key)
        self._unwritten.add(key)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_soon())
            self._writing.add(self._writer)
            self._writer.add_done_callback(self._writing.discard)

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.every)
        keys, self.pending, self._writer = self.pending, set(), None
        try:
            await self.store.note(list(keys), SEEN_FOR)
        except Exception as exc:  # a retry may then run twice; the store's CAS still guards
            if is_unavailable(exc):
                self._failures.failed(exc)
            else:
                log.warning("could not note %d deliveries: %s", len(keys), exc)
        else:
            self._failures.succeeded()
        finally:
            self._unwritten -= keys


async def _first_use(store: Store, key: str, ttl: float) -> bool:
    """Is this delivery (envelope, signed request) new? With the store away nothing can change
    anyway: let it through to the store guard, which answers that the store is unreachable."""
    if HEALTH.down:
        return True
    try:
        return await store.remember(key, ttl)
    except Exception as exc:
        if is_unavailable(exc):
            HEALTH.failed(exc)  # so the store guard answers at once, without trying again
            return True
        raise


def make_dedupe(store: Store) -> Any:
    notes = DeliveryNotes(store)

    async def dedupe(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> Any:
        key = delivery_key(req)
        if envelope_id(req):
            # the first claim wins, whichever replica's connection the envelope reached
            if not await _first_use(store, key, SEEN_FOR):
                return BoltResponse(status=200, body="")
            return await next()
        if req.headers.get("x-slack-retry-num"):
            if notes.knows(key) or not await store.remember(key, SEEN_FOR):
                return BoltResponse(status=200, body="")
            return await next()
        signature = first_header(req, "x-slack-signature")
        if signature and not await _first_use(store, signature_key(signature), REPLAY_WINDOW):
            actor = req.context.user_id or "unknown"
            kind = str(req.body.get("type") or ("command" if "command" in req.body else ""))
            await audit(store, actor, "slack.replay_refused", kind, why="signature already used")
            return BoltResponse(status=200, body="")
        notes.add(key)
        return await next()

    return dedupe
