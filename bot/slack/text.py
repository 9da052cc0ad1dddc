"""Safe rendering of user-supplied text into Slack mrkdwn."""

from __future__ import annotations


def escape(text: object) -> str:
    """Slack's three control characters, so user text can never become a mention or link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object, limit: int = 200) -> str:
    """Inline code span for identifiers echoed back to the user."""
    shown = escape(text).replace("`", "'")
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"`{shown}`"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
