"""A recording fake of the Slack Web API on loopback: answers the methods the bot calls, checks
their token, arguments and Block Kit (Slack's nested limits, see block_kit), refuses in channels
a test says the bot cannot reach, serves Socket Mode (see socket_mode), and keeps every call for
the tests to assert on."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.testbed.block_kit import (
    MAX_TEXT,
    Problem,
    check_block_kit,
    message_problems,
    utf16_len,
    view_problems,
)
from tests.testbed.loop_thread import LoopThreadServer
from tests.testbed.slack_methods import ANSWERS, BOT_USER, TEAM, Upload, arguments
from tests.testbed.socket_mode import APP_TOKEN, SocketModeService

__all__ = [
    "APP_TOKEN",
    "BOT_USER",
    "TEAM",
    "TOKEN",
    "Call",
    "FakeSlackApi",
    "Upload",
    "check_block_kit",
]

TOKEN = "xoxb-test-token"

# Arguments Slack refuses to do without; an empty value counts as missing, as it does at Slack.
REQUIRED: dict[str, list[str]] = {
    "chat.postMessage": ["channel"],
    "chat.update": ["channel", "ts"],
    "chat.delete": ["channel", "ts"],
    "chat.postEphemeral": ["channel", "user"],
    "chat.getPermalink": ["channel", "message_ts"],
    "views.open": ["trigger_id", "view"],
    "views.update": ["view"],
    "views.publish": ["user_id", "view"],
    "files.getUploadURLExternal": ["filename", "length"],
    "files.completeUploadExternal": ["files"],
    "users.info": ["user"],
    "usergroups.users.list": ["usergroup"],
    "conversations.info": ["channel"],
    "reactions.add": ["channel", "timestamp", "name"],
    "conversations.join": ["channel"],
    "conversations.open": ["users"],
}
# Methods that carry a message: at least one of these must be present (Slack's `no_text`).
MESSAGE_CONTENT = ("text", "blocks", "attachments")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")
# Methods that act in a channel, and the argument naming it.
CHANNEL_ARGUMENT = {
    "chat.postMessage": "channel",
    "chat.update": "channel",
    "chat.postEphemeral": "channel",
    "chat.getPermalink": "channel",
    "files.completeUploadExternal": "channel_id",
    "conversations.info": "channel",
    "reactions.add": "channel",
}
# The pseudo-method name under which posts to an upload_url are recorded and can be failed.
UPLOAD = "upload"

Predicate = Callable[["Call"], bool]


@dataclass
class Call:
    """One request the fake received: what was asked, with which headers, and how it went."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)  # wall clock, comparable with time.time()
    ok: bool = True
    error: str = ""
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def time(self) -> float:
        return self.at

    @property
    def text(self) -> str:
        return str(self.args.get("text") or "")


class FakeSlackApi(LoopThreadServer):
    """The fake's state plus its aiohttp server, which runs on its own event loop in a daemon
    thread so sync tests, async tests and bot subprocesses can all reach it at `.url`."""

    thread_name = "fake-slack-api"

    def __init__(self, token: str = TOKEN, app_token: str = APP_TOKEN) -> None:
        super().__init__()
        self.expected_token = token
        self.app_token = app_token  # the xapp- token apps.connections.open wants
        self.url = ""  # http://127.0.0.1:PORT/api/ once started; SLACK_API_URL for the bot
        self.calls: list[Call] = []
        self.errors: list[str] = []  # the bot's mistakes; a clean run leaves this empty
        self.responses: list[dict[str, Any]] = []  # JSON posted to a response_url
        self.uploads: dict[str, Upload] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> message
        self.views: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.canned: dict[str, dict[str, Any]] = {}
        self.peers: list[str] = []  # the client address:port of every request, in order
        self.refusals: dict[str, ChannelRefusal] = {}  # channel -> how Slack refuses there
        self.joined: list[str] = []  # channels the bot joined with conversations.join
        self.socket = SocketModeService(self)  # Socket Mode: connections and envelopes
        self._failures: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self._seq = 0

    # ------------------------------------------------------------------ life cycle

    async def _start_site(self) -> None:
        # files of several MB (diagnostics bundles) must fit through the upload endpoint
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._note_peer])
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response)
        app.router.add_get("/link/", self.socket.handle_websocket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # port 0: the kernel picks a free port, so two test sessions never race for one
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api/"

    @web.middleware
    async def _note_peer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        host, port = (request.transport.get_extra_info("peername") or ("?", 0))[:2]
        with self._lock:
            self.peers.append(f"{host}:{port}")
        return await handler(request)

    def __enter__(self) -> FakeSlackApi:
        return self.start() if self._thread is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests use
    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT, without the /api/ suffix."""
        return self.url.removesuffix("/api/")

    def reset(self) -> None:
        """Forget every call, message, upload and setting; the token goes back to the default;
        Socket Mode connections still open are dropped."""
        self.socket.reset()
        with self._lock:
            self.expected_token = TOKEN
            self.app_token = APP_TOKEN
            self.refusals.clear()
            self.joined.clear()
            self.calls.clear()
            self.errors.clear()
            self.responses.clear()
            self.uploads.clear()
            self.messages.clear()
            self.views.clear()
            self.usergroups.clear()
            self.users.clear()
            self.canned.clear()
            self.peers.clear()
            self._failures.clear()

    def set_usergroup(self, group_id: str, users: list[str]) -> None:
        with self._lock:
            self.usergroups[group_id] = list(users)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Extra or changed fields for users.info of `user_id` (e.g. real_name, tz, is_bot)."""
        with self._lock:
            self.users[user_id] = fields

    def answer(self, method: str, response: dict[str, Any]) -> None:
        """Answer every later call to `method` with `response` (until reset): for methods the
        fake does not emulate, which it refuses otherwise, or to make Slack refuse on purpose
        (e.g. {"ok": False, "error": "not_in_channel"}; such answers are not counted as errors)."""
        with self._lock:
            self.canned[method] = response

    def refuse_in_channel(
        self, channel: str, error: str, methods: tuple[str, ...], join_error: str = ""
    ) -> None:
        """Answer `error` to every call of `methods` in `channel` (a deliberate refusal, not
        counted as an error) until reset; conversations.join there answers `join_error`, or
        works and lifts the refusal when it is ""."""
        with self._lock:
            self.refusals[channel] = ChannelRefusal(error, tuple(methods), join_error)

    def bot_not_in(self, channel: str, *, private: bool = False, can_join: bool = True) -> None:
        """The bot is not a member of `channel`, and Slack answers as it does then.
        Public (chat:write.public lets the bot post there): file uploads answer not_in_channel
        and conversations.info says is_member false; conversations.join makes it a member,
        unless `can_join` is False (then it answers missing_scope).
        Private channel or someone else's DM: the channel does not exist for the bot, so
        posts, ephemerals, updates, uploads and conversations.info answer channel_not_found,
        and conversations.join answers method_not_supported_for_channel_type."""
        if private:
            methods = tuple(m for m in CHANNEL_ARGUMENT if m != "chat.getPermalink")
            self.refuse_in_channel(
                channel, "channel_not_found", methods, "method_not_supported_for_channel_type"
            )
        else:
            self.refuse_in_channel(
                channel,
                "not_in_channel",
                ("files.completeUploadExternal",),
                "" if can_join else "missing_scope",
            )

    def fail_next(self, method: str, n: int, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next `n` calls to `method` with HTTP `status` (429 carries Retry-After).
        Injected failures are recorded as calls with ok=False but never count as errors.
        `method` may be "upload" for posts to an upload_url."""
        with self._lock:
            self._failures.setdefault(method, []).extend([(status, retry_after)] * n)

    def heal(self) -> None:
        """Drop every failure still queued by fail_next: Slack is back."""
        with self._lock:
            self._failures.clear()

    def response_url(self, key: str = "r") -> str:
        """A response_url for signed requests; what the bot posts there lands in .responses."""
        return f"{self.base}/response/{key}"

    def calls_to(self, method: str, ok_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    @property
    def uploaded_files(self) -> list[Upload]:
        """Files whose bytes arrived and that files.completeUploadExternal shared, in order."""
        with self._lock:
            return [u for u in self.uploads.values() if u.received and u.completed]

    def texts(self, method: str = "chat.postMessage") -> list[str]:
        """Every text and block text the bot sent with `method`, for searching."""
        return [
            str(c.args.get("text") or "") + json.dumps(c.args.get("blocks") or "")
            for c in self.calls_to(method)
        ]

    def message_of(self, call: Call) -> dict[str, Any]:
        """The current state of the message a chat.postMessage call created (after updates)."""
        return self.messages[(call.response["channel"], call.response["ts"])]

    def _matches(self, method: str, predicate: Predicate | None) -> list[Call]:
        found = []
        for c in self.calls_to(method):
            try:
                if predicate is None or predicate(c):
                    found.append(c)
            except (LookupError, TypeError, AttributeError):
                # a predicate reading c.args["text"] of a blocks-only message: not a match
                continue
        return found

    def _timeout_report(self, method: str, count: int, timeout: float) -> str:
        seen = [f"{c.method}{'' if c.ok else ' FAILED'}: {c.text[:80]!r}" for c in self.calls]
        return (
            f"{count} x {method} not seen within {timeout:g}s\n"
            f"calls: {json.dumps(seen, indent=1)}\nerrors: {self.errors}"
        )

    def wait_for(
        self,
        method: str,
        predicate: Predicate | None = None,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[Call]:
        """Poll until at least `count` successful calls to `method` match; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._matches(method, predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(self._timeout_report(method, count, timeout))
            time.sleep(0.02)

    async def wait_for_async(
        self,
        method: str,
        predicate: Predicate | None = None,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (the same arguments as wait_for)
    ) -> list[Call]:
        """wait_for for async tests: yields to the event loop (which may run the bot) between
        polls instead of blocking it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._matches(method, predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(self._timeout_report(method, count, timeout))
            await asyncio.sleep(0.02)

    def wait_for_response(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        """Poll until a post to a response_url matches; return it."""
        deadline = time.monotonic() + timeout
        while True:
            for r in list(self.responses):
                try:
                    if predicate(r):
                        return r
                except (LookupError, TypeError, AttributeError):
                    continue
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching response_url post; got {self.responses}")
            time.sleep(0.02)

    # ------------------------------------------------------------------ server side
    def _next_ts(self) -> str:
        with self._lock:
            self._seq += 1
            return f"{int(time.time())}.{self._seq:06d}"

    def _record(self, call: Call, counts_as_error: bool = True) -> None:
        with self._lock:
            self.calls.append(call)
            if not call.ok and counts_as_error:
                self.errors.append(f"{call.method}: {call.error}")

    def _take_failure(self, method: str) -> tuple[int, int] | None:
        with self._lock:
            queued = self._failures.get(method)
            return queued.pop(0) if queued else None

    def _injected(self, call: Call, status: int, retry_after: int) -> web.Response:
        call.ok, call.status, call.error = False, status, f"http {status} (injected)"
        self._record(call, counts_as_error=False)
        if status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        return web.Response(status=status, text="upstream trouble, try again")

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await arguments(request)
        call = Call(method, args, dict(request.headers))
        failure = self._take_failure(method)
        if failure is not None:
            return self._injected(call, *failure)
        error, details = self._check(method, request, args)
        if error:
            return self._refuse(call, error, details)
        refusal = self._channel_refusal(method, args)
        if refusal:
            call.ok, call.error = False, refusal
            call.response = {"ok": False, "error": refusal}
            self._record(call, counts_as_error=False)
            return web.json_response(call.response)
        with self._lock:
            canned = self.canned.get(method)
        if canned is not None:
            # a deliberate answer: an error here is the test's choice, not the bot's mistake
            call.response = dict(canned)
            call.ok = bool(canned.get("ok"))
            call.error = "" if call.ok else str(canned.get("error", ""))
            self._record(call, counts_as_error=False)
            return web.json_response(call.response)
        if method in ANSWERS:
            answer = ANSWERS[method](self, args)
        else:
            answer = {"ok": False, "error": "unknown_method: the fake does not emulate it"}
        if not answer.get("ok"):
            return self._refuse(call, answer["error"])
        call.response = answer
        # recorded only now, so a test that sees the call also sees its message or upload
        self._record(call)
        return web.json_response(answer)

    def _refuse(
        self, call: Call, error: str, details: dict[str, Any] | None = None
    ) -> web.Response:
        call.ok, call.error = False, error
        call.response = {"ok": False, "error": error.split(":")[0], **(details or {})}
        self._record(call)
        return web.json_response(call.response)

    def _channel_refusal(self, method: str, args: dict[str, Any]) -> str:
        """The error a channel refusal gives this call, or ""; a join lifts a liftable one."""
        channel = str(args.get(CHANNEL_ARGUMENT.get(method, "channel")) or "")
        with self._lock:
            refusal = self.refusals.get(channel)
            if refusal is None:
                return ""
            if method == "conversations.join":
                if not refusal.join_error:
                    del self.refusals[channel]
                return refusal.join_error
            return refusal.error if method in refusal.methods else ""

    def _check(
        self, method: str, request: web.Request, args: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Slack's answer for a request it would refuse, with the answer's extra fields (the
        pointers of invalid blocks), or ("", {}) when it is acceptable."""
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = token or str(args.get("token") or "")
        if not token:
            return "not_authed", {}
        wanted = self.app_token if method == "apps.connections.open" else self.expected_token
        if token != wanted:
            # an app-level token where a bot token belongs, or the reverse
            known = token in (self.app_token, self.expected_token)
            return ("not_allowed_token_type" if known else "invalid_auth"), {}
        missing = [a for a in REQUIRED.get(method, []) if args.get(a) in (None, "", [], {})]
        if missing:
            return f"missing_argument: {', '.join(missing)}", {}
        if method == "views.update" and not (args.get("view_id") or args.get("external_id")):
            return "missing_argument: view_id or external_id", {}
        if method in MESSAGE_METHODS:
            if not any(args.get(k) for k in MESSAGE_CONTENT):
                return "no_text", {}
            if utf16_len(str(args.get("text") or "")) > MAX_TEXT:
                return "msg_too_long", {}
        problems = message_problems(args)
        if problems:
            return _block_error("invalid_blocks", problems, with_errors=True)
        if method in VIEW_METHODS or args.get("view") is not None:
            problems = view_problems(args.get("view"))
            if problems:
                # Slack answers a view it refuses with invalid_arguments, pointers under /view
                return _block_error("invalid_arguments", problems, with_errors=False)
        return "", {}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        content = await request.read()
        call = Call(UPLOAD, {"file_id": file_id, "bytes": len(content)}, dict(request.headers))
        failure = self._take_failure(UPLOAD)
        if failure is not None:
            return self._injected(call, *failure)
        with self._lock:
            upload = self.uploads.get(file_id)
        if upload is None:
            call.ok, call.status, call.error = False, 404, f"upload to unknown file id {file_id}"
            self._record(call)
            return web.Response(status=404, text="unknown upload")
        if upload.length and len(content) != upload.length:
            # Slack refuses a body that differs from the announced length
            call.ok, call.status = False, 400
            call.error = f"{len(content)} bytes posted, {upload.length} announced"
            self._record(call)
            return web.Response(status=400, text="length mismatch")
        upload.content, upload.received = content, True
        self._record(call)
        return web.Response(text=f"OK - {len(content)}")

    async def _handle_response(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            with self._lock:
                self.errors.append("response_url: body is not JSON")
            return web.Response(status=400, text="invalid_payload")
        problem = (
            "; ".join(str(p) for p in message_problems(body))
            if isinstance(body, dict)
            else "body is not an object"
        )
        with self._lock:
            if problem:
                self.errors.append(f"response_url: invalid_blocks: {problem}")
            self.responses.append(body)
        return web.Response(text="ok")


@dataclass
class ChannelRefusal:
    """How Slack answers the bot in a channel it cannot act in: `error` for `methods`, and
    what conversations.join does there ("" = the join works and lifts the refusal)."""

    error: str
    methods: tuple[str, ...]
    join_error: str = ""


def _block_error(
    error: str, problems: list[Problem], *, with_errors: bool
) -> tuple[str, dict[str, Any]]:
    """Slack's refusal of invalid Block Kit: every problem with its JSON pointer, in `errors`
    (chat methods) and as `[ERROR] ...` lines in response_metadata.messages."""
    lines = [str(p) for p in problems]
    details: dict[str, Any] = {"response_metadata": {"messages": [f"[ERROR] {x}" for x in lines]}}
    if with_errors:
        details["errors"] = lines
    return f"{error}: {'; '.join(lines)}", details


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    """One fake Slack API server for the whole session; use `fake_slack` in tests."""
    with FakeSlackApi() as api:
        yield api


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlackApi) -> FakeSlackApi:
    """The session's fake Slack API, emptied for this test; expects token xoxb-test-token."""
    fake_slack_server.reset()
    return fake_slack_server
