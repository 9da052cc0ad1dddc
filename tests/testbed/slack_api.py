"""A recording fake of the Slack Web API: answers what the bot calls and checks its arguments."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.testbed.ports import free_port

TOKEN = "xoxb-test-token"
REQUIRED = {
    "chat.postMessage": ["channel"],
    "chat.update": ["channel", "ts"],
    "chat.postEphemeral": ["channel", "user"],
    "views.open": ["trigger_id", "view"],
    "views.update": ["view"],
    "files.getUploadURLExternal": ["filename", "length"],
    "files.completeUploadExternal": ["files"],
    "users.info": ["user"],
    "usergroups.users.list": ["usergroup"],
    "conversations.info": ["channel"],
}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    ok: bool = True
    error: str = ""


@dataclass
class Upload:
    file_id: str
    filename: str
    content: bytes = b""
    channel: str = ""
    thread_ts: str = ""
    title: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass
class FakeSlackApi:
    """Runs on its own event loop in a thread, so sync tests and bot subprocesses can use it."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response_url
    uploads: dict[str, Upload] = field(default_factory=dict)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    _failures: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    # -- test-facing helpers
    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.errors.clear()
            self.responses.clear()
            self.uploads.clear()
            self.messages.clear()
            self.usergroups.clear()
            self._failures.clear()

    def set_usergroup(self, group_id: str, users: list[str]) -> None:
        self.usergroups[group_id] = list(users)

    def fail_next(self, method: str, n: int, status: int = 429, retry_after: int = 1) -> None:
        self._failures.setdefault(method, []).extend([(status, retry_after)] * n)

    def response_url(self, key: str = "r") -> str:
        return self.url.replace("/api/", f"/response/{key}")

    def calls_to(self, method: str, ok_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    @property
    def uploaded_files(self) -> list[Upload]:
        return [u for u in self.uploads.values() if u.content]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method) if predicate is None or predicate(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [(c.method, str(c.args.get("text", ""))[:80]) for c in self.calls]
                raise AssertionError(f"{count} x {method} not seen in {timeout}s; calls: {seen}")
            time.sleep(0.05)

    def wait_for_response(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in list(self.responses):
                if predicate(r):
                    return r
            time.sleep(0.05)
        raise AssertionError(f"no matching response_url post; got {self.responses}")

    def texts(self, method: str = "chat.postMessage") -> list[str]:
        """Every text and block text the bot sent with `method`, for searching."""
        return [
            c.args.get("text", "") + json.dumps(c.args.get("blocks", ""))
            for c in self.calls_to(method)
        ]

    # -- server side
    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"{int(time.time())}.{self._ts:06d}"

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            if not call.ok:
                self.errors.append(f"{call.method}: {call.error}")

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" and args.get("token") != TOKEN:
            return self._fail(method, args, "invalid_auth")
        queued = self._failures.get(method)
        if queued:
            status, retry_after = queued.pop(0)
            self._record(Call(method, args, time.time(), ok=False, error=f"http {status}"))
            with self._lock:
                self.errors.pop()  # injected failures are not the bot's mistakes
            return web.Response(
                status=status,
                headers={"Retry-After": str(retry_after)},
                text="rate limited" if status == 429 else "server error",
            )
        missing = [a for a in REQUIRED.get(method, []) if not args.get(a)]
        if missing:
            return self._fail(method, args, f"missing_argument: {', '.join(missing)}")
        problem = _check_blocks(args)
        if problem:
            return self._fail(method, args, f"invalid_blocks: {problem}")
        self._record(Call(method, args, time.time()))
        return web.json_response(self._answer(method, args))

    def _fail(self, method: str, args: dict[str, Any], error: str) -> web.Response:
        self._record(Call(method, args, time.time(), ok=False, error=error))
        return web.json_response({"ok": False, "error": error.split(":")[0]})

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user_id": "U0ROLLBOT", "team_id": "T0TEAM", "bot_id": "B0BOT"}
        if method == "chat.postMessage":
            ts = self._next_ts()
            self.messages[(args["channel"], ts)] = args
            return {
                "ok": True,
                "channel": args["channel"],
                "ts": ts,
                "message": {"text": args.get("text", ""), "ts": ts},
            }
        if method == "chat.update":
            key = (args["channel"], args["ts"])
            if key not in self.messages:
                self.errors.append(f"chat.update of unknown message {key}")
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {**self.messages[key], **args}
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in ("views.open", "views.update"):
            return {"ok": True, "view": {"id": "V" + self._next_ts().replace(".", "")}}
        if method == "files.getUploadURLExternal":
            file_id = "F" + self._next_ts().replace(".", "")
            self.uploads[file_id] = Upload(file_id, args["filename"])
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": self.url.replace("/api/", f"/upload/{file_id}"),
            }
        if method == "files.completeUploadExternal":
            files = args["files"]
            files = json.loads(files) if isinstance(files, str) else files
            for f in files:
                upload = self.uploads.get(f["id"])
                if upload is not None:
                    upload.title = f.get("title", "")
                    upload.channel = args.get("channel_id", "")
                    upload.thread_ts = args.get("thread_ts", "")
            return {"ok": True, "files": [{"id": f["id"]} for f in files]}
        if method == "users.info":
            return {"ok": True, "user": {"id": args["user"], "name": args["user"].lower()}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.usergroups.get(args["usergroup"], [])}
        return {"ok": True}

    async def upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404)
        self.uploads[file_id].content = await request.read()
        return web.Response(text="OK - uploaded")

    async def response(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = _check_blocks(body)
        if problem:
            self.errors.append(f"response_url: invalid_blocks: {problem}")
        self.responses.append(body)
        return web.Response(text="ok")


async def _arguments(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    raw = await request.read()
    if not raw:
        return args
    if request.content_type == "application/json":
        args.update(json.loads(raw))
    else:
        args.update(dict(parse_qsl(raw.decode())))
    for key in ("blocks", "view", "attachments"):
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args


def _check_blocks(args: dict[str, Any]) -> str:
    try:
        for block in args.get("blocks") or []:
            parsed = Block.parse(block)
            if parsed is None:
                return f"unknown block {block.get('type')}"
            parsed.validate_json()
        if args.get("view"):
            View(**args["view"]).validate_json()
    except Exception as exc:  # the models raise their own error types
        return str(exc)[:300]
    return ""


def _serve(api: FakeSlackApi) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    port = free_port()
    ready = threading.Event()

    async def start() -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/api/{method}", api.handle)
        app.router.add_get("/api/{method}", api.handle)
        app.router.add_post("/upload/{file_id}", api.upload)
        app.router.add_post("/response/{key}", api.response)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-slack", daemon=True)
    thread.start()
    ready.wait(10)
    api.url = f"http://127.0.0.1:{port}/api/"
    return loop, thread


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    api = FakeSlackApi()
    loop, thread = _serve(api)
    yield api
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlackApi) -> FakeSlackApi:
    fake_slack_server.reset()
    return fake_slack_server
