"""Safe rendering of user-supplied text into Slack mrkdwn."""

from __future__ import annotations

from bot.slack.limits import cut


def escape(text: object) -> str:
    """Slack's three control characters, so user text can never become a mention or link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object, limit: int = 200) -> str:
    """Inline code span for identifiers echoed back to the user."""
    shown = cut(escape(text).replace("`", "'"), limit)
    return f"`{shown}`"


def truncate(text: str, limit: int) -> str:
    """At most `limit` UTF-16 units (as Slack counts), ending in "…" when shortened."""
    return cut(text, limit)
