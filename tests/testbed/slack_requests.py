"""Correctly signed Slack requests (slash commands, button clicks, modal submissions)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"
RESPONSE_URL = ""  # set by the rollbot_server fixture to the fake Slack's response endpoint


def sign(
    body: bytes, *, secret: str = SIGNING_SECRET, stale: bool = False, retry_num: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) - (600 if stale else 0))
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def slash_command(
    command: str,
    text: str,
    *,
    user_id: str = "U0REQUESTER",
    channel_id: str = "C0ORIGIN",
    trigger_id: str = "1337.42.abcd",
    response_url: str | None = None,
    **signing: Any,
) -> tuple[bytes, dict[str, str]]:
    form = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "team_domain": "acme",
        "channel_id": channel_id,
        "channel_name": "incidents",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0APP",
        "response_url": response_url or RESPONSE_URL or "http://127.0.0.1:9/response",
        "trigger_id": trigger_id,
    }
    body = urlencode(form).encode()
    return body, sign(body, **signing)


def _payload(payload: dict[str, Any], **signing: Any) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, sign(body, **signing)


def block_action(
    action_id: str,
    value: str,
    *,
    user_id: str,
    channel_id: str = "C0INCIDENTS",
    message_ts: str = "1.000001",
    block_id: str = "b",
    response_url: str | None = None,
    **signing: Any,
) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy",
        "trigger_id": "1337.43.efgh",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "channel": {"id": channel_id, "name": "incidents"},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url or RESPONSE_URL or "http://127.0.0.1:9/response",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": "x"},
                "action_ts": str(time.time()),
            }
        ],
    }
    return _payload(payload, **signing)


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    user_id: str,
    private_metadata: str = "",
    **signing: Any,
) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "view_submission",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy",
        "trigger_id": "1337.44.ijkl",
        "view": {
            "id": "V0VIEW",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "1.abc",
            "title": {"type": "plain_text", "text": "x"},
        },
    }
    return _payload(payload, **signing)


class SlackSender:
    """Posts prepared requests to a running bot; returns (status, parsed body)."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"

    def post(self, body: bytes, headers: dict[str, str], timeout: float = 10) -> tuple[int, Any]:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, _parse(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _parse(err.read())


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode("utf-8", "replace")
