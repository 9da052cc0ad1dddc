"""Slack's Socket Mode, faked on the fake Web API's own server: `apps.connections.open` hands out
a single-use `ws://` URL on loopback, each WebSocket gets `hello`, and tests deliver envelopes
(slash commands, block actions, view submissions, suggestions) to one open connection each, as
Slack does, then read the acknowledgements and their payloads. Tests can also ask a connection
to refresh (`disconnect` with `refresh_requested`) or drop it without a word.

The service lives on the fake's event loop thread; the test-facing methods are thread-safe and
block, with `_async` variants for tests whose own event loop runs the bot."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.testbed import slack_requests
from tests.testbed.block_kit import message_problems, suggestion_problems

if TYPE_CHECKING:
    from tests.testbed.slack_api import FakeSlackApi

APP_TOKEN = "xapp-1-A0ROLLBOT-1-test"
APP_ID = "A0ROLLBOT"
MAX_CONNECTIONS = 10  # Slack allows ten open connections per app
ACK_WITHIN = 3.0  # seconds; later, Slack shows the person an error
# Interactive payloads whose acknowledgement may carry an answer (Slack's accepts_response_payload)
ANSWERED = ("view_submission", "block_suggestion", "view_closed")


@dataclass
class Ack:
    """An envelope acknowledgement the app sent back, with its payload if any."""

    envelope_id: str
    connection: int
    payload: dict[str, Any] | None
    elapsed: float  # seconds since the delivery it answers
    at: float = field(default_factory=time.time)


@dataclass
class Envelope:
    """One delivery Slack makes (or repeats, with a higher retry_attempt) to one connection."""

    envelope_id: str
    type: str  # slash_commands | interactive | events_api
    payload: dict[str, Any]
    accepts_response_payload: bool
    retry_attempt: int = 0
    retry_reason: str = ""
    deliveries: list[tuple[int, float]] = field(default_factory=list)  # (connection, when)
    acks: list[Ack] = field(default_factory=list)

    @property
    def connection(self) -> int:
        """The connection of the latest delivery."""
        return self.deliveries[-1][0]

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == "events_api" or self.retry_attempt:
            out["retry_attempt"] = self.retry_attempt
            out["retry_reason"] = self.retry_reason
        return out


@dataclass
class Connection:
    """One WebSocket an app opened with a ticket from apps.connections.open."""

    number: int
    ticket: str
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    closed_by: str = ""  # "app", "disconnect: <reason>", "dropped", "reset"
    received: list[dict[str, Any]] = field(default_factory=list)  # every message from the app

    @property
    def open(self) -> bool:
        return self.closed_at is None


def payload_of(signed: slack_requests.Signed) -> tuple[str, dict[str, Any]]:
    """The Socket Mode envelope type and payload for a request built for HTTP delivery: a
    slash command's form fields, or an interactive request's JSON `payload`."""
    form = dict(parse_qsl(signed[0].decode(), keep_blank_values=True))
    if "payload" in form:
        return "interactive", json.loads(form["payload"])
    return "slash_commands", form


class SocketModeService:
    """The Socket Mode side of the fake Slack (reached as `fake_slack.socket`)."""

    def __init__(self, api: FakeSlackApi) -> None:
        self.api = api
        self.connections: list[Connection] = []
        self.envelopes: dict[str, Envelope] = {}
        self.grace = 2.0  # seconds a connection told to refresh stays open before Slack closes it
        self._tickets: set[str] = set()
        self._next_connection = itertools.count(1)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._closing: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ server side
    def issue_url(self) -> str:
        """A fresh single-use WebSocket URL (the apps.connections.open answer)."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        base = self.api.base.replace("http://", "ws://", 1)
        return f"{base}/link/?ticket={ticket}&app_id={APP_ID}"

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)
            crowded = sum(c.open for c in self.connections) >= MAX_CONNECTIONS
        if not valid:
            self._error(f"socket: connection with an unknown or used ticket {ticket!r}")
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs
        await ws.prepare(request)
        if crowded:
            await ws.send_json({"type": "disconnect", "reason": "too_many_websockets"})
            await ws.close()
            return ws
        connection = Connection(next(self._next_connection), ticket, ws, request)
        with self._lock:
            self.connections.append(connection)
            count = sum(c.open for c in self.connections)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": count,
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._received(connection, message.data)
        finally:
            self._closed(connection, "app")
        return ws

    def _received(self, connection: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self._error(f"socket: connection {connection.number} sent non-JSON {data[:80]!r}")
            return
        with self._lock:
            connection.received.append(message)
            envelope = self.envelopes.get(str(message.get("envelope_id")))
        if not isinstance(message, dict) or envelope is None:
            self._error(f"socket: message for no known envelope {data[:120]}")
            return
        self._acknowledged(connection, envelope, message.get("payload"))

    def _acknowledged(
        self, connection: Connection, envelope: Envelope, payload: dict[str, Any] | None
    ) -> None:
        delivered = [when for number, when in envelope.deliveries if number == connection.number]
        if not delivered:
            self._error(
                f"socket: envelope {envelope.envelope_id} acknowledged on connection "
                f"{connection.number}, delivered on {[n for n, _ in envelope.deliveries]}"
            )
            return
        ack = Ack(envelope.envelope_id, connection.number, payload, time.time() - delivered[-1])
        problem = self._payload_problem(envelope, payload)
        with self._lock:
            envelope.acks.append(ack)
        if problem:
            self._error(f"socket: envelope {envelope.envelope_id}: {problem}")

    def _payload_problem(self, envelope: Envelope, payload: dict[str, Any] | None) -> str:
        if not payload:
            return ""
        if not envelope.accepts_response_payload:
            return "a payload in the acknowledgement of an envelope that accepts none"
        if envelope.payload.get("type") == "block_suggestion":
            problems = suggestion_problems(payload)
        else:
            problems = message_problems(payload)
        return "invalid_blocks: " + "; ".join(map(str, problems)) if problems else ""

    def _closed(self, connection: Connection, by: str) -> None:
        with self._lock:
            if connection.closed_at is None:
                connection.closed_at, connection.closed_by = time.time(), by

    def _error(self, text: str) -> None:
        with self.api._lock:
            self.api.errors.append(text)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        loop = self.api._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the fake Slack API is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    # ------------------------------------------------------------------ what tests use
    def reset(self) -> None:
        """Close every connection (as a test ends) and forget envelopes and tickets."""
        with self._lock:
            still_open = [c for c in self.connections if c.open]
        for connection in still_open:
            self._closed(connection, "reset")
            if self.api._loop is not None:
                try:
                    self._run(connection.ws.close(), timeout=5)
                except Exception:  # already gone: nothing left to close
                    pass
        with self._lock:
            self.connections.clear()
            self.envelopes.clear()
            self._tickets.clear()

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if c.open]

    def wait_connections(self, count: int = 1, timeout: float = 15.0) -> list[Connection]:
        """Poll until at least `count` connections are open; return the open ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.open_connections()) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{count} Socket Mode connection(s) not open within {timeout:g}s")

    async def wait_connections_async(
        self,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (the same arguments as wait_connections)
    ) -> list[Connection]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.open_connections()) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} Socket Mode connection(s) not open within {timeout:g}s")

    def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        connection: Connection | None = None,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        wait: float = 0.0,
    ) -> Envelope:
        """Send one envelope to one open connection: `connection`, or the next in turn (Slack
        hands each envelope to a single connection). `wait`: seconds to wait for a connection
        to be open (e.g. while the app reconnects)."""
        interaction = payload.get("type", "")
        envelope = Envelope(
            envelope_id or str(uuid.uuid4()),
            kind,
            payload,
            accepts_response_payload=kind == "slash_commands" or interaction in ANSWERED,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        with self._lock:
            self.envelopes[envelope.envelope_id] = envelope
        return self._send(envelope, connection, wait)

    def redeliver(
        self, envelope: Envelope, connection: Connection | None = None, reason: str = "timeout"
    ) -> Envelope:
        """Deliver `envelope` again with the same envelope id and the next retry_attempt, as
        Slack does when it saw no acknowledgement; possibly to another connection."""
        envelope.retry_attempt += 1
        envelope.retry_reason = reason
        return self._send(envelope, connection, 0.0)

    def _send(self, envelope: Envelope, connection: Connection | None, wait: float) -> Envelope:
        target = connection or self._next_open(wait)
        if not target.open:
            raise AssertionError(f"connection {target.number} is closed ({target.closed_by})")
        with self._lock:
            envelope.deliveries.append((target.number, time.time()))
        self._run(target.ws.send_json(envelope.message()))
        return envelope

    def _next_open(self, wait: float) -> Connection:
        deadline = time.monotonic() + wait
        while not (candidates := self.open_connections()):
            if time.monotonic() >= deadline:
                raise AssertionError("no Socket Mode connection is open to deliver to")
            time.sleep(0.02)
        return candidates[next(self._turn) % len(candidates)]

    def command(self, command: str, text: str = "", **options: Any) -> Envelope:
        """A slash command, shaped as slack_requests.slash_command builds it."""
        wait, connection = options.pop("wait", 0.0), options.pop("connection", None)
        kind, payload = payload_of(slack_requests.slash_command(command, text, **options))
        return self.deliver(kind, payload, connection=connection, wait=wait)

    def click(self, action_id: str, value: str, user_id: str, **options: Any) -> Envelope:
        """A block action (slack_requests.block_action's arguments)."""
        wait, connection = options.pop("wait", 0.0), options.pop("connection", None)
        signed = slack_requests.block_action(action_id, value, user_id, **options)
        return self.deliver(*payload_of(signed), connection=connection, wait=wait)

    def submit(
        self, callback_id: str, state_values: dict[str, Any], user_id: str, **options: Any
    ) -> Envelope:
        """A view submission (slack_requests.view_submission's arguments)."""
        wait, connection = options.pop("wait", 0.0), options.pop("connection", None)
        signed = slack_requests.view_submission(callback_id, state_values, user_id, **options)
        return self.deliver(*payload_of(signed), connection=connection, wait=wait)

    def suggest(self, action_id: str, value: str, user_id: str, **options: Any) -> Envelope:
        """A block_suggestion: the person typed `value` into an external select."""
        wait, connection = options.pop("wait", 0.0), options.pop("connection", None)
        signed = slack_requests.block_suggestion(action_id, value, user_id, **options)
        return self.deliver(*payload_of(signed), connection=connection, wait=wait)

    def wait_ack(self, envelope: Envelope, timeout: float = 10.0) -> Ack:
        """Poll until the app acknowledges `envelope`'s latest delivery; return that ack."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ack := self._latest_ack(envelope):
                return ack
            time.sleep(0.02)
        raise AssertionError(self._no_ack(envelope, timeout))

    async def wait_ack_async(
        self,
        envelope: Envelope,
        timeout: float = 10.0,  # noqa: ASYNC109 (the same arguments as wait_ack)
    ) -> Ack:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ack := self._latest_ack(envelope):
                return ack
            await asyncio.sleep(0.02)
        raise AssertionError(self._no_ack(envelope, timeout))

    def _latest_ack(self, envelope: Envelope) -> Ack | None:
        with self._lock:
            if not envelope.deliveries:
                return None
            number, when = envelope.deliveries[-1]
            answers = [a for a in envelope.acks if a.connection == number and a.at >= when]
        return answers[0] if answers else None

    def _no_ack(self, envelope: Envelope, timeout: float) -> str:
        return (
            f"envelope {envelope.envelope_id} ({envelope.type}) not acknowledged within "
            f"{timeout:g}s; deliveries {envelope.deliveries}, acks {envelope.acks}, "
            f"errors {self.api.errors}"
        )

    def disconnect(
        self, connection: Connection, reason: str = "refresh_requested", grace: float | None = None
    ) -> None:
        """Tell `connection` to go away (Slack's `disconnect` message); Slack closes it itself
        `grace` seconds later if the app has not."""
        self._run(self._disconnect(connection, reason, self.grace if grace is None else grace))

    async def _disconnect(self, connection: Connection, reason: str, grace: float) -> None:
        await connection.ws.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        )

        async def close_later() -> None:
            await asyncio.sleep(grace)
            if connection.open:
                self._closed(connection, f"disconnect: {reason}")
                await connection.ws.close()

        task = asyncio.ensure_future(close_later())
        self._closing.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._closing.discard)

    def drop(self, connection: Connection) -> None:
        """Cut `connection` without a close frame, as a network failure does."""
        self._closed(connection, "dropped")

        async def cut() -> None:
            transport = connection.request.transport
            if transport is not None:
                transport.abort()

        self._run(cut())
