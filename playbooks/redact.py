"""The one definition of what counts as secret, and the redactor: hides secrets in everything a
diagnosis or a plan shows or stores, by variable name, by token shape, and by value once a value
has been seen under a secret name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

HIDDEN = "[redacted]"
# Names whose values are never shown (environment variables, task-definition secrets).
SECRET_NAME_PATTERN = r"(?i)(secret|token|password|passwd|pwd|key|credential|auth|private|dsn)"
SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
DEFAULT_NAME_PATTERNS: tuple[str, ...] = (SECRET_NAME_PATTERN,)
# Shapes of secrets in free text (log lines, error messages, URLs): (pattern, replacement).
TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        HIDDEN,
    ),
    (re.compile(r"\bxox[abeoprs]-[A-Za-z0-9-]{4,}"), HIDDEN),  # Slack bot/user/refresh tokens
    (re.compile(r"\bxapp-[A-Za-z0-9-]{4,}"), HIDDEN),  # Slack app-level tokens
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), HIDDEN),  # AWS access key ids
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), HIDDEN),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}"), HIDDEN),  # JWTs
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{HIDDEN}"),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), rf"\1{HIDDEN}@"),  # user:password@ in URLs
    # name=value and "name": "value" for secret-looking names; the name stays readable
    (
        re.compile(
            r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
            r"|private[_-]?key|credentials?)[\w.-]*)([\"']?\s*[=:]\s*)"
            r"(?!\[redacted\])(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}\]]+)"
        ),
        rf"\1\2{HIDDEN}",
    ),
)
# Values shorter than this are not hunted for in free text: "1" or "true" would shred every line.
MIN_LEARNED_LENGTH = 6


class Redactor:
    """One redaction policy. `name_patterns` decide which variables are secret; values seen under
    those names are remembered and removed from any later text as well."""

    def __init__(self, name_patterns: Sequence[str] | None = None) -> None:
        patterns = list(name_patterns) if name_patterns else list(DEFAULT_NAME_PATTERNS)
        self._names = [re.compile(p) for p in patterns]
        self._known: set[str] = set()

    def is_secret_name(self, name: str) -> bool:
        return any(p.search(name) for p in self._names)

    def learn(self, values: Iterable[str]) -> None:
        """Remember secret values so they vanish wherever they show up (a log line, an error)."""
        self._known.update(v for v in values if len(v) >= MIN_LEARNED_LENGTH)

    def text(self, text: str) -> str:
        # longest first, so a secret containing another is removed whole
        for value in sorted(self._known, key=len, reverse=True):
            text = text.replace(value, HIDDEN)
        for pattern, replacement in TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def environment(self, env: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
        """ECS `environment` entries: values of secret names hidden (and learned)."""
        out = []
        for entry in env:
            name, value = str(entry.get("name", "")), str(entry.get("value", ""))
            if self.is_secret_name(name):
                self.learn([value])
                value = HIDDEN
            out.append({"name": name, "value": value})
        return out

    def value(self, value: Any) -> Any:
        """Walk JSON-like data: name/value pairs with secret names hidden, every string scrubbed."""
        if isinstance(value, dict):
            if isinstance(value.get("name"), str) and "value" in value:
                if self.is_secret_name(value["name"]):
                    value = {**value, "value": HIDDEN}
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def redact(value: Any) -> Any:
    """The default policy, for callers that hold no Redactor of their own."""
    return Redactor().value(value)


def redact_text(text: str) -> str:
    return Redactor().text(text)
