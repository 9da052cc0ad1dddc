"""A tiny HTTP backend on loopback whose answers a test can change (health endpoints)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Backend:
    def __init__(self) -> None:
        self.status = 200
        self.body = "ok"
        self.delay = 0.0
        self.hits = 0
        # run once, at the next request, before it is answered (a test's crash point)
        self.on_next_hit: Callable[[], object] | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend.hits += 1
                action, backend.on_next_hit = backend.on_next_hit, None
                if action is not None:
                    action()
                if backend.delay:
                    time.sleep(backend.delay)
                body = backend.body.encode()
                self.send_response(backend.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return None

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_backend() -> Iterator[type[Backend]]:
    """Factory: http_backend() starts another backend; all are closed after the test."""
    made: list[Backend] = []

    def make() -> Backend:
        made.append(Backend())
        return made[-1]

    yield make  # type: ignore[misc]
    for b in made:
        b.close()
