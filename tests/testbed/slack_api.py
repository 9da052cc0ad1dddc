"""A recording fake of the Slack Web API on loopback: answers the methods the bot calls, checks
their token, arguments and Block Kit, and keeps every call for the tests to assert on."""

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

from tests.testbed.loop_thread import LoopThreadServer

TOKEN = "xoxb-test-token"
BOT_USER = "U0ROLLBOT"
TEAM = "T0TEAM"

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
}
# Methods that carry a message: at least one of these must be present (Slack's `no_text`).
MESSAGE_CONTENT = ("text", "blocks", "attachments")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
# Slack's own limits, which slack_sdk's models do not check.
MAX_MESSAGE_BLOCKS = 50
MAX_TEXT = 40_000
MAX_BUTTON_VALUE = 2_000
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


@dataclass
class Upload:
    """A file the bot uploaded: announced by files.getUploadURLExternal, bytes posted to the
    upload_url, shared by files.completeUploadExternal."""

    file_id: str
    filename: str
    length: int = 0
    content: bytes = b""
    received: bool = False
    completed: bool = False
    channel: str = ""
    thread_ts: str = ""
    title: str = ""
    initial_comment: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class FakeSlackApi(LoopThreadServer):
    """The fake's state plus its aiohttp server, which runs on its own event loop in a daemon
    thread so sync tests, async tests and bot subprocesses can all reach it at `.url`."""

    thread_name = "fake-slack-api"

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.expected_token = token
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
        """Forget every call, message, upload and setting; the token goes back to the default."""
        with self._lock:
            self.expected_token = TOKEN
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
        args = await _arguments(request)
        call = Call(method, args, dict(request.headers))
        failure = self._take_failure(method)
        if failure is not None:
            return self._injected(call, *failure)
        error = self._check(method, request, args)
        if error:
            return self._refuse(call, error)
        with self._lock:
            canned = self.canned.get(method)
        if canned is not None:
            # a deliberate answer: an error here is the test's choice, not the bot's mistake
            call.response = dict(canned)
            call.ok = bool(canned.get("ok"))
            call.error = "" if call.ok else str(canned.get("error", ""))
            self._record(call, counts_as_error=False)
            return web.json_response(call.response)
        if method in _ANSWERS:
            answer = _ANSWERS[method](self, args)
        else:
            answer = {"ok": False, "error": "unknown_method: the fake does not emulate it"}
        if not answer.get("ok"):
            return self._refuse(call, answer["error"])
        call.response = answer
        # recorded only now, so a test that sees the call also sees its message or upload
        self._record(call)
        return web.json_response(answer)

    def _refuse(self, call: Call, error: str) -> web.Response:
        call.ok, call.error = False, error
        call.response = {"ok": False, "error": error.split(":")[0]}
        self._record(call)
        return web.json_response(call.response)

    def _check(self, method: str, request: web.Request, args: dict[str, Any]) -> str:
        """Slack's answer for a request it would refuse, or "" when it is acceptable."""
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = token or str(args.get("token") or "")
        if not token:
            return "not_authed"
        if token != self.expected_token:
            return "invalid_auth"
        missing = [a for a in REQUIRED.get(method, []) if args.get(a) in (None, "", [], {})]
        if missing:
            return f"missing_argument: {', '.join(missing)}"
        if method == "views.update" and not (args.get("view_id") or args.get("external_id")):
            return "missing_argument: view_id or external_id"
        if method in MESSAGE_METHODS:
            if not any(args.get(k) for k in MESSAGE_CONTENT):
                return "no_text"
            if len(str(args.get("text") or "")) > MAX_TEXT:
                return "msg_too_long"
        problem = check_block_kit(args)
        return f"invalid_blocks: {problem}" if problem else ""

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
        problem = check_block_kit(body) if isinstance(body, dict) else "body is not an object"
        with self._lock:
            if problem:
                self.errors.append(f"response_url: invalid_blocks: {problem}")
            self.responses.append(body)
        return web.Response(text="ok")


# ---------------------------------------------------------------------- answers per method
def _auth_test(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://acme.slack.com/",
        "team": "Acme",
        "user": "rollbot",
        "team_id": TEAM,
        "user_id": BOT_USER,
        "bot_id": "B0ROLLBOT",
        "is_enterprise_install": False,
    }


def _post_message(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    ts = api._next_ts()
    channel = str(args["channel"])
    with api._lock:
        # the very dict recorded as the call's args, so a test can find a call's message by identity
        api.messages[(channel, ts)] = args
    message = {"type": "message", "user": BOT_USER, "ts": ts, "text": args.get("text", "")}
    if args.get("blocks"):
        message["blocks"] = args["blocks"]
    return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _update(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    key = (str(args["channel"]), str(args["ts"]))
    with api._lock:
        if key not in api.messages:
            return {"ok": False, "error": f"message_not_found: {key}"}
        api.messages[key] = {**api.messages[key], **args}
    return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text", "")}


def _delete(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    key = (str(args["channel"]), str(args["ts"]))
    with api._lock:
        if api.messages.pop(key, None) is None:
            return {"ok": False, "error": f"message_not_found: {key}"}
    return {"ok": True, "channel": key[0], "ts": key[1]}


def _permalink(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    ts = str(args["message_ts"]).replace(".", "")
    return {
        "ok": True,
        "channel": args["channel"],
        "permalink": f"https://acme.slack.com/archives/{args['channel']}/p{ts}",
    }


def _ephemeral(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "message_ts": api._next_ts()}


def _view(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    view_id = str(args.get("view_id") or "") or "V" + api._next_ts().replace(".", "")
    view = {**args["view"], "id": view_id, "team_id": TEAM, "app_id": "A0ROLLBOT"}
    view.setdefault("state", {"values": {}})
    with api._lock:
        api.views[view_id] = view
    return {"ok": True, "view": view}


def _publish(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    """A Home tab, kept per user as views["home:USER"]."""
    answer = _view(api, {"view": args["view"], "view_id": f"home:{args['user_id']}"})
    return answer


def _upload_url(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(args["length"])
    except (TypeError, ValueError):
        return {"ok": False, "error": f"invalid_arguments: length {args['length']!r}"}
    file_id = "F" + api._next_ts().replace(".", "")
    with api._lock:
        api.uploads[file_id] = Upload(file_id, str(args["filename"]), length)
    return {"ok": True, "file_id": file_id, "upload_url": f"{api.base}/upload/{file_id}"}


def _complete_upload(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    files = args["files"]
    try:
        files = json.loads(files) if isinstance(files, str) else files
        ids = [str(f["id"]) for f in files]
    except (ValueError, TypeError, KeyError):
        return {"ok": False, "error": f"invalid_arguments: files {args['files']!r}"}
    channel = str(args.get("channel_id") or args.get("channels") or "")
    with api._lock:
        unknown = [i for i in ids if i not in api.uploads or not api.uploads[i].received]
        if unknown:
            return {"ok": False, "error": f"file_not_found: never uploaded {unknown}"}
        for f in files:
            upload = api.uploads[str(f["id"])]
            upload.completed = True
            upload.title = str(f.get("title") or upload.filename)
            upload.channel = channel
            upload.thread_ts = str(args.get("thread_ts") or "")
            upload.initial_comment = str(args.get("initial_comment") or "")
        shared = [
            {"id": u.file_id, "name": u.filename, "title": u.title, "size": len(u.content)}
            for u in (api.uploads[i] for i in ids)
        ]
    return {"ok": True, "files": shared}


def _user_info(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    user_id = str(args["user"])
    with api._lock:
        extra = dict(api.users.get(user_id, {}))
    name = user_id.lower()
    user = {
        "id": user_id,
        "team_id": TEAM,
        "name": name,
        "real_name": name,
        "tz": "Europe/Berlin",
        "is_bot": False,
        "deleted": False,
        "profile": {"real_name": name, "display_name": name},
        **extra,
    }
    return {"ok": True, "user": user}


def _usergroup_users(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    group = str(args["usergroup"])
    if not group.startswith("S"):
        # a user or channel id passed as a group: a bug Slack answers the same way
        return {"ok": False, "error": f"no_such_subteam: {group}"}
    with api._lock:
        return {"ok": True, "users": list(api.usergroups.get(group, []))}


def _conversation_info(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    channel = str(args["channel"])
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": channel.lower(),
            "is_channel": channel.startswith("C"),
            "is_private": channel.startswith("G"),
            "is_member": True,
            "is_archived": False,
        },
    }


def _reaction(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


_ANSWERS: dict[str, Callable[[FakeSlackApi, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.delete": _delete,
    "chat.getPermalink": _permalink,
    "chat.postEphemeral": _ephemeral,
    "views.open": _view,
    "views.update": _view,
    "views.publish": _publish,
    "files.getUploadURLExternal": _upload_url,
    "files.completeUploadExternal": _complete_upload,
    "users.info": _user_info,
    "usergroups.users.list": _usergroup_users,
    "conversations.info": _conversation_info,
    "reactions.add": _reaction,
}


# ---------------------------------------------------------------------- request parsing
async def _arguments(request: web.Request) -> dict[str, Any]:
    """Query string, then the body (JSON, form or multipart) on top, as Slack merges them."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "multipart/form-data":
        form = await request.post()
        for key, value in form.items():
            args[key] = value.file.read() if isinstance(value, web.FileField) else value
    else:
        raw = await request.read()
        if raw and request.content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"__unparsable_json__": raw.decode("utf-8", "replace")}
            if isinstance(body, dict):
                args.update(body)
        elif raw:
            args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    # form posts carry structured arguments as JSON strings
    for key in ("blocks", "view", "attachments", "files"):
        if isinstance(args.get(key), str) and args[key][:1] in ("[", "{"):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass  # left as a string; the Block Kit check reports it
    return args


def check_block_kit(args: dict[str, Any]) -> str:
    """Why Slack would answer invalid_blocks for these `blocks`/`view`, or "" when it would not."""
    try:
        if args.get("blocks") is not None:
            problem = _check_blocks(args["blocks"], MAX_MESSAGE_BLOCKS)
            if problem:
                return problem
        view = args.get("view")
        if view is not None:
            if not isinstance(view, dict):
                return f"view is not an object: {str(view)[:80]}"
            # View() takes only its own fields; id/state etc. are read-only but accepted
            View(**view).validate_json()
            return _check_blocks(view.get("blocks") or [], 100)
    except Exception as exc:  # slack_sdk raises its own formation errors, or TypeError
        return f"{type(exc).__name__}: {exc}"[:300]
    return ""


def _check_blocks(blocks: Any, limit: int) -> str:
    if not isinstance(blocks, list):
        return f"blocks is not a list: {str(blocks)[:80]}"
    if len(blocks) > limit:
        return f"{len(blocks)} blocks, at most {limit} allowed"
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            return f"block {i} is not an object"
        parsed = Block.parse(block)
        if parsed is None:
            return f"block {i}: unknown type {block.get('type')!r}"
        parsed.validate_json()
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                return f"block {i}: duplicate block_id {block_id!r}"
            block_ids.add(block_id)
        for element in block.get("elements") or []:
            if not isinstance(element, dict) or element.get("type") != "button":
                continue
            if len(str(element.get("value") or "")) > MAX_BUTTON_VALUE:
                return f"block {i}: button value longer than {MAX_BUTTON_VALUE}"
    return ""


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
