"""Shared wording of a step's before -> after: short names, images, times and environment
differences, with secret-named values shown as fingerprints only."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from playbooks.redact import SECRET_NAME

SHOWN_VARIABLES = 5  # more than this many changed variables: "and N more"


def fingerprint(value: str) -> str:
    """A value nobody may read but everybody may compare: the start of its SHA-256."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


def shown_value(name: str, value: str | None) -> str:
    if value is None:
        return "(unset)"
    return fingerprint(value) if SECRET_NAME.search(name) else value


def env_changes(before: dict[str, str], after: dict[str, str]) -> str:
    """`NAME: old -> new` for each variable that differs, secrets as fingerprints."""
    names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    parts = [_change(n, before.get(n), after.get(n)) for n in names[:SHOWN_VARIABLES]]
    if len(names) > SHOWN_VARIABLES:
        parts.append(f"and {len(names) - SHOWN_VARIABLES} more")
    return "; ".join(parts) or "environment unchanged"


def _change(name: str, before: str | None, after: str | None) -> str:
    was, now = shown_value(name, before), shown_value(name, after)
    if SECRET_NAME.search(name):
        # no "NAME: value" shape here: the redactor rightly hides whatever follows that
        return f"{name} changed ({was} -> {now})"
    return f"{name}: {was} -> {now}"


def image_tag(image: str) -> str:
    """`repo/path/api:v2.3` -> `api:v2.3`: the part a person recognises."""
    return image.rsplit("/", 1)[-1]


def revision(taskdef: dict[str, Any]) -> str:
    """`api:42 (image api:v2.3)` for a described task definition."""
    images = ", ".join(image_tag(c.get("image", "")) for c in taskdef["containerDefinitions"])
    return f"`{taskdef['family']}:{taskdef['revision']}` (image `{images}`)"


def minute(at: dt.datetime | float) -> str:
    """`2026-11-20 14:02` in UTC."""
    if not isinstance(at, dt.datetime):
        at = dt.datetime.fromtimestamp(at, dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
