"""Parses the text of /rollback and /diagnose into typed requests, with readable errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.slack.text import escape

MAX_TEXT = 2000
MAX_REASON = 500
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
ROLLBACK_ID = re.compile(r"^rb-[a-z0-9]{4,32}$")
# Slack control characters and markup that must never reach a message or a shell unescaped
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

ROLLBACK_USAGE = """*Rollbot — emergency rollbacks*
`/rollback TARGET [to REF] [because REASON]` — start a rollback (asks for approval first)
      REF: task-definition revision, image tag, git commit/tag, or `previous` (default)
`/rollback` — open the rollback form
`/rollback status` — rollbacks in progress
`/rollback history [TARGET]` — past rollbacks with their durations
`/rollback cancel ID` — cancel a rollback that has not started executing
`/rollback maintenance TARGET on|off [because REASON]` — maintenance mode (asks for approval)
`/rollback help` — this message
`/diagnose TARGET` — capture evidence and recommend an action"""

DIAGNOSE_USAGE = (
    "*Usage:* `/diagnose TARGET` — captures service state, deployments, recent errors,"
    " health and metrics for TARGET, checks them against the runbook triggers and"
    " recommends an action."
)


class UsageError(ValueError):
    """The text could not be understood; the message says how to fix it."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class OpenModal:
    pass


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class History:
    target: str | None = None


@dataclass(frozen=True)
class Cancel:
    rollback_id: str


@dataclass(frozen=True)
class StartRollback:
    target: str
    ref: str = "previous"
    reason: str = ""


@dataclass(frozen=True)
class Maintenance:
    target: str
    on: bool
    reason: str = ""


RollbackCommand = Help | OpenModal | Status | History | Cancel | StartRollback | Maintenance

MAINTENANCE_USAGE = "Usage: `/rollback maintenance TARGET on|off [because REASON]`"


def clean(text: str | None) -> str:
    text = _CONTROL.sub(" ", text or "")
    if len(text) > MAX_TEXT:
        raise UsageError(f"That is {len(text)} characters; keep it under {MAX_TEXT}.")
    return " ".join(text.split())


def parse_rollback(text: str | None) -> RollbackCommand:
    words = clean(text).split(" ") if clean(text) else []
    if not words:
        return OpenModal()
    head = words[0].lower()
    if head in ("help", "-h", "--help", "?"):
        return Help()
    if head == "status":
        _no_more(words[1:], "status")
        return Status()
    if head == "history":
        if len(words) > 2:
            raise UsageError("Usage: `/rollback history [TARGET]`")
        return History(_target(words[1]) if len(words) == 2 else None)
    if head == "cancel":
        if len(words) != 2 or not ROLLBACK_ID.match(words[1]):
            raise UsageError("Usage: `/rollback cancel ID` (an id looks like `rb-1a2b3c4d`)")
        return Cancel(words[1])
    if head == "maintenance":
        return _parse_maintenance(words[1:])
    return _parse_start(words)


def _parse_maintenance(words: list[str]) -> Maintenance:
    if len(words) < 2 or words[1].lower() not in ("on", "off"):
        raise UsageError(MAINTENANCE_USAGE)
    target, on = _target(words[0]), words[1].lower() == "on"
    return Maintenance(target, on, _reason(words[2:], MAINTENANCE_USAGE.removeprefix("Usage: ")))


def _parse_start(words: list[str]) -> StartRollback:
    target, rest = _target(words[0]), words[1:]
    ref = "previous"
    if rest and rest[0].lower() == "to":
        if len(rest) < 2:
            raise UsageError("`to` needs a revision, image tag or git ref, e.g. `to 9`")
        ref = rest[1]
        if not REF.match(ref):
            raise UsageError("That ref has characters a revision, tag or commit never has.")
        rest = rest[2:]
    return StartRollback(target, ref, _reason(rest, "`/rollback TARGET [to REF] [because REASON]`"))


def _reason(rest: list[str], usage: str) -> str:
    """`because REASON...` at the end of a command, or nothing."""
    if not rest:
        return ""
    if rest[0].lower() != "because":
        raise UsageError(f"I did not understand `{_quote(rest[0])}`. Usage: {usage}")
    reason = " ".join(rest[1:])
    if not reason:
        raise UsageError("`because` needs a reason.")
    if len(reason) > MAX_REASON:
        raise UsageError(f"Keep the reason under {MAX_REASON} characters.")
    return reason


def parse_diagnose(text: str | None) -> str | None:
    """The target name, or None when no target was given (show usage)."""
    words = clean(text).split(" ") if clean(text) else []
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return None
    if len(words) > 1:
        raise UsageError(DIAGNOSE_USAGE)
    return _target(words[0])


def _target(word: str) -> str:
    name = word.lower()
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", name):
        raise UsageError(f"`{_quote(word)}` is not a target name.")
    return name


def _no_more(words: list[str], command: str) -> None:
    if words:
        raise UsageError(f"`/rollback {command}` takes no arguments.")


def _quote(text: str) -> str:
    """User text echoed back inside code spans: nothing in it may act as markup."""
    return escape(text).replace("`", "'")[:80]
