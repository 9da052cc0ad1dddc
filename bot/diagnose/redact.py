"""Removes secrets from everything a capture shows or stores."""

from __future__ import annotations

import re
from typing import Any

SECRET_NAME = re.compile(r"(?i)(secret|token|password|passwd|pwd|key|credential|auth|private|dsn)")
SECRET_TEXT = [
    re.compile(r"xox[abprse]-[A-Za-z0-9-]{6,}"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*\S+"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside URLs
]
HIDDEN = "[redacted]"


def redact_text(text: str) -> str:
    for pattern in SECRET_TEXT:
        text = pattern.sub(HIDDEN, text)
    return text


def redact_environment(env: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {
            "name": e.get("name", ""),
            "value": HIDDEN
            if SECRET_NAME.search(e.get("name", ""))
            else redact_text(str(e.get("value", ""))),
        }
        for e in env
    ]


def redact(value: Any) -> Any:
    """Walk a JSON-like value: hide values under secret-looking keys and secret-looking text."""
    if isinstance(value, dict):
        if set(value) >= {"name", "value"} and isinstance(value.get("name"), str):
            if SECRET_NAME.search(value["name"]):
                return {**value, "value": HIDDEN}
        return {
            k: (
                HIDDEN
                if isinstance(k, str) and SECRET_NAME.search(k) and isinstance(v, str)
                else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
