"""Correctly signed Slack requests (slash commands, button clicks, modal submissions) shaped like
Slack's own, and a small client that posts them to a running bot."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import aiohttp

SIGNING_SECRET = "test-signing-secret"
# Set by the rollbot_server fixture to the fake Slack's response endpoint, so what the bot
# answers through response_url is recorded; without it the url points at a closed port.
RESPONSE_URL = ""
DEAD_RESPONSE_URL = "http://127.0.0.1:9/response"
STALE_SECONDS = 600  # Slack's verifiers refuse anything older than five minutes
TEAM = {"id": "T0TEAM", "domain": "acme"}
APP_ID = "A0ROLLBOT"

Signed = tuple[bytes, dict[str, str]]


def sign(
    body: bytes,
    *,
    secret: str = SIGNING_SECRET,
    stale: bool = False,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """Headers Slack sends with `body`: v0 signature = HMAC-SHA256 of `v0:{ts}:{body}`.
    secret: sign with another secret (a forgery); stale: a timestamp ten minutes old;
    retry_num: mark the request as Slack's n-th redelivery."""
    ts = str(
        timestamp if timestamp is not None else int(time.time()) - (STALE_SECONDS if stale else 0)
    )
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def _response_url(given: str | None) -> str:
    return given or RESPONSE_URL or DEAD_RESPONSE_URL


def _user(user_id: str) -> dict[str, str]:
    return {
        "id": user_id,
        "username": user_id.lower(),
        "name": user_id.lower(),
        "team_id": "T0TEAM",
    }


def slash_command(
    command: str,
    text: str,
    *,
    user_id: str = "U0REQUESTER",
    channel_id: str = "C0ORIGIN",
    channel_name: str = "incidents",
    trigger_id: str = "1337.42.abcd",
    response_url: str | None = None,
    **signing: Any,
) -> Signed:
    """A slash command as Slack posts it (form-encoded); `signing` goes to sign()."""
    form = {
        "token": "legacy-verification-token",
        "team_id": TEAM["id"],
        "team_domain": TEAM["domain"],
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": _response_url(response_url),
        "trigger_id": trigger_id,
    }
    body = urlencode(form).encode()
    return body, sign(body, **signing)


def interactive(payload: dict[str, Any], **signing: Any) -> Signed:
    """Any interactivity payload, sent as Slack does: a form with one JSON `payload` field."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, sign(body, **signing)


def block_action(
    action_id: str,
    value: str,
    user_id: str = "U0REQUESTER",
    *,
    channel_id: str = "C0INCIDENTS",
    message_ts: str = "1.000001",
    block_id: str = "b",
    message: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    button_text: str = "x",
    action_type: str = "button",
    response_url: str | None = None,
    trigger_id: str = "1337.43.efgh",
    **signing: Any,
) -> Signed:
    """A click on a button (or another element) of the message `message_ts` in `channel_id`.
    message: the message as posted (text, blocks), so handlers can read it back;
    view: a click inside a modal instead (no channel, message or response_url then)."""
    action: dict[str, Any] = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": f"{time.time():.6f}",
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": button_text, "emoji": True}
        action["value"] = value
    elif action_type == "static_select":
        action["selected_option"] = {
            "text": {"type": "plain_text", "text": value, "emoji": True},
            "value": value,
        }
    else:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "team": TEAM,
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = container or {"type": "view", "view_id": view.get("id", "V0VIEW")}
        payload["view"] = view
    else:
        payload["container"] = container or {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": "incidents"}
        payload["message"] = {
            "type": "message",
            "user": "U0ROLLBOT",
            "text": "",
            **(message or {}),
            "ts": message_ts,
        }
        payload["response_url"] = _response_url(response_url)
    return interactive(payload, **signing)


def block_suggestion(
    action_id: str,
    value: str,
    user_id: str = "U0REQUESTER",
    *,
    block_id: str = "target",
    view: dict[str, Any] | None = None,
    **signing: Any,
) -> Signed:
    """What Slack sends while someone types `value` into an external select of a modal; the
    app answers with the options to show."""
    shown = view or {"id": "V0VIEW", "type": "modal", "callback_id": "", "blocks": []}
    payload = {
        "type": "block_suggestion",
        "user": _user(user_id),
        "container": {"type": "view", "view_id": shown.get("id", "V0VIEW")},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": TEAM,
        "enterprise": None,
        "is_enterprise_install": False,
        "view": shown,
    }
    return interactive(payload, **signing)


def view_submission(
    callback_id: str,
    state_values: dict[str, dict[str, Any]],
    user_id: str = "U0REQUESTER",
    *,
    private_metadata: str = "",
    view_id: str = "V0VIEW",
    blocks: list[dict[str, Any]] | None = None,
    response_urls: list[dict[str, str]] | None = None,
    trigger_id: str = "1337.44.ijkl",
    **signing: Any,
) -> Signed:
    """A modal submitted with `state_values` ({block_id: {action_id: element state}})."""
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {
            "id": view_id,
            "team_id": TEAM["id"],
            "type": "modal",
            "callback_id": callback_id,
            "external_id": "",
            "private_metadata": private_metadata,
            "blocks": blocks or [],
            "state": {"values": state_values},
            "hash": "1700000000.abcdefgh",
            "title": {"type": "plain_text", "text": "Rollback", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": APP_ID,
            "bot_id": "B0ROLLBOT",
        },
        "response_urls": response_urls or [],
    }
    return interactive(payload, **signing)


def text_input(value: str) -> dict[str, Any]:
    """The state Slack reports for a plain_text_input element."""
    return {"type": "plain_text_input", "value": value}


def selected(value: str) -> dict[str, Any]:
    """The state Slack reports for a static_select element with `value` chosen."""
    option = {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}
    return {"type": "static_select", "selected_option": option}


class Reply(tuple[int, Any]):
    """What the bot answered: unpacks as (status, body) like a pair, and also carries the
    elapsed seconds, raw text and headers."""

    status: int
    body: Any  # parsed JSON, or the text when it is not JSON, or {} when empty
    text: str
    elapsed: float
    headers: dict[str, str]

    def __new__(cls, status: int, raw: bytes, elapsed: float, headers: dict[str, str]) -> Reply:
        body = _parse(raw)
        reply = super().__new__(cls, (status, body))
        reply.status, reply.body, reply.elapsed, reply.headers = status, body, elapsed, headers
        reply.text = raw.decode("utf-8", "replace")
        return reply

    @property
    def json(self) -> Any:
        """The parsed body, or None when it is not JSON."""
        return self.body if isinstance(self.body, dict | list) else None


class SlackSender:
    """Posts signed requests to a bot's /slack/events, as Slack would."""

    def __init__(self, base_url: str, signing_secret: str = SIGNING_SECRET) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/slack/events") else base + "/slack/events"
        self.signing_secret = signing_secret

    def post(self, body: bytes, headers: dict[str, str], timeout: float = 10) -> Reply:
        """Blocking; for sync tests and threads."""
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                raw, status, got = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            raw, status, got = err.read(), err.code, dict(err.headers)
        return Reply(status, raw, time.monotonic() - started, got)

    async def post_async(
        self,
        body: bytes,
        headers: dict[str, str],
        timeout: float = 10,  # noqa: ASYNC109 (the same arguments as post)
    ) -> Reply:
        """For async tests whose event loop also runs the bot (a blocking post would hang)."""
        started = time.monotonic()
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(self.url, data=body, headers=headers) as resp,
        ):
            raw = await resp.read()
            return Reply(resp.status, raw, time.monotonic() - started, dict(resp.headers))

    # Builders signed with this sender's secret, for the common case.
    def command(self, command: str, text: str = "", **options: Any) -> Reply:
        return self.post(*slash_command(command, text, secret=self.signing_secret, **options))

    def click(self, action_id: str, value: str, user_id: str, **options: Any) -> Reply:
        return self.post(
            *block_action(action_id, value, user_id, secret=self.signing_secret, **options)
        )

    def submit(
        self, callback_id: str, state_values: dict[str, Any], user_id: str, **options: Any
    ) -> Reply:
        return self.post(
            *view_submission(
                callback_id, state_values, user_id, secret=self.signing_secret, **options
            )
        )


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode("utf-8", "replace")
