"""What a text, a Block Kit structure or a file looks like once it may leave the process: every
secret the redactor knows hidden. The notifier's `_outgoing` hook and response_url answers are
the only callers, so every way to Slack passes here."""

from __future__ import annotations

import json
from typing import Any

from playbooks.redact import redact, redact_text


def text(value: str) -> str:
    return redact_text(value)


def blocks(value: Any, hook: Any = text) -> Any:
    """Block Kit (or a whole view or message) with each displayed text passed through `hook`;
    button values, ids and private metadata are kept as they are."""
    if isinstance(value, list):
        return [blocks(b, hook) for b in value]
    if isinstance(value, dict):
        return {
            k: hook(v) if k == "text" and isinstance(v, str) else blocks(v, hook)
            for k, v in value.items()
        }
    return value


def file(content: str, hook: Any = text) -> str:
    """A file's text; a JSON file is redacted value by value (each string then through
    `hook`), so that it stays JSON."""
    try:
        data = json.loads(content)
    except ValueError:
        return hook(content)
    return json.dumps(_strings(redact(data), hook), indent=2)


def _strings(value: Any, hook: Any) -> Any:
    if isinstance(value, dict):
        return {hook(str(k)): _strings(v, hook) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, hook) for v in value]
    return hook(value) if isinstance(value, str) else value


def message(fields: dict[str, Any]) -> dict[str, Any]:
    """A whole message (response_url answers): its text and its blocks."""
    return blocks(fields)


class RedactingAck:
    """Bolt's `ack` with what it shows (text, blocks, a view) passed through the redactor: an
    acknowledgement's body is an answer to Slack as well."""

    def __init__(self, ack: Any) -> None:
        self._ack = ack

    @property
    def response(self) -> Any:
        return getattr(self._ack, "response", None)

    async def __call__(self, text: str | dict[str, Any] = "", **fields: Any) -> Any:
        shown = blocks({k: v for k, v in fields.items() if v is not None})
        if isinstance(text, dict):
            return await self._ack(blocks(text), **shown)
        return await self._ack(redact_text(text) if text else text, **shown)
