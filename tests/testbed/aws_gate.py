"""A loopback proxy in front of moto that counts the AWS operations it forwards, can run an
action (kill the bot) just before or just after forwarding one, and can answer an operation
with an AWS error (throttling, access denied) instead of forwarding it."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import ClientSession, web

from tests.testbed.aws import Aws
from tests.testbed.loop_thread import LoopThreadServer

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


def operation(headers: dict[str, str] | object, body: bytes) -> str:
    """The AWS operation of a request: X-Amz-Target (JSON protocols) or Action (query)."""
    target = headers.get("X-Amz-Target", "")  # type: ignore[attr-defined]
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [""])
    return action[0]


@dataclass
class Trap:
    operation: str
    when: str  # "before": the call never reaches moto; "after": moto made the change
    action: Callable[[], object]


class AwsGate(LoopThreadServer):
    """Point the bot's AWS_ENDPOINT_URL at `.url`; `.forwarded` counts what reached moto."""

    thread_name = "aws-gate"

    def __init__(self, moto_url: str) -> None:
        super().__init__()
        self.moto_url = moto_url.rstrip("/")
        self.url = ""
        self.forwarded: Counter[str] = Counter()
        self.operations: list[tuple[float, str]] = []  # (time.time() when forwarded, operation)
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), operation) forwarded
        self.traps: list[Trap] = []
        self.sprung: list[Trap] = []
        self.refused: Counter[str] = Counter()
        self._faults: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._session: ClientSession | None = None

    async def _start_site(self) -> None:
        self._session = ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        app.on_cleanup.append(self._close_session)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _close_session(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def trap(self, op: str, when: str, action: Callable[[], object]) -> None:
        """Run `action` once, at the next call of `op` (from any thread)."""
        assert when in ("before", "after")
        with self._lock:
            self.traps.append(Trap(op, when, action))

    def fail(self, op: str, n: int, code: str, status: int = 400) -> None:
        """Answer the next `n` calls of `op` with the AWS error `code` (JSON protocols)."""
        with self._lock:
            self._faults.setdefault(op, []).extend([(status, code)] * n)

    def _fault(self, op: str) -> web.Response | None:
        with self._lock:
            queued = self._faults.get(op)
            if not queued:
                return None
            status, code = queued.pop(0)
            self.refused[op] += 1
        body = {"__type": code, "message": f"{code} (injected by the test)"}
        return web.json_response(body, status=status, content_type="application/x-amz-json-1.1")

    def _take(self, op: str, when: str) -> Trap | None:
        with self._lock:
            for trap in self.traps:
                if trap.operation == op and trap.when == when:
                    self.traps.remove(trap)
                    self.sprung.append(trap)
                    return trap
        return None

    async def _spring(self, op: str, when: str) -> bool:
        trap = self._take(op, when)
        if trap is not None:
            # the action may block (waiting for a process to die): not on this loop
            await asyncio.get_running_loop().run_in_executor(None, trap.action)
        return trap is not None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        body = await request.read()
        op = operation(request.headers, body)
        if await self._spring(op, "before"):
            raise web.HTTPBadGateway(text="the caller is gone")
        fault = self._fault(op)
        if fault is not None:
            return fault
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method, f"{self.moto_url}{request.path_qs}", headers=headers, data=body
        ) as upstream:
            answer = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
        with self._lock:
            self.forwarded[op] += 1
            self.operations.append((time.time(), op))
            self.arrivals.append((arrived, op))
        await self._spring(op, "after")
        return web.Response(status=upstream.status, body=answer, headers=kept)


@pytest.fixture
def aws_gate(aws: Aws) -> Iterator[AwsGate]:
    """A gate in front of this test's moto; `aws_gate.url` replaces AWS_ENDPOINT_URL."""
    gate = AwsGate(aws.endpoint).start()
    yield gate
    gate.stop()
