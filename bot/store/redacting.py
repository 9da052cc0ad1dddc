"""Every write a store makes passes the redactor first: records, audit entries, journal entries
and queued Slack calls, whichever backend writes them. `Store.__init_subclass__` wraps each
backend's write methods with these, so a new backend cannot forget it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from playbooks.journal import JournalEntry
from playbooks.redact import redact


def _audit_entry(entry: Any) -> Any:
    if entry is None:
        return None
    return entry.model_copy(
        update={"subject": redact(entry.subject), "detail": redact(entry.detail)}
    )


def _create(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def create(self: Any, record: Any, audit: Any = None) -> bool:
        clean = record.model_copy(update={"data": redact(record.data)})
        return await write(self, clean, _audit_entry(audit))

    return create


def _change(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def change(
        self: Any,
        record_id: str,
        from_states: Any,
        to_state: str | None,
        patch: dict[str, Any],
        audit: Any,
    ) -> Any:
        return await write(
            self, record_id, from_states, to_state, redact(patch), _audit_entry(audit)
        )

    return change


def _audit(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def audit(self: Any, entry: Any) -> int:
        return await write(self, _audit_entry(entry))

    return audit


def _journal_append(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def journal_append(self: Any, rollback_id: str, entry: JournalEntry) -> int:
        return await write(
            self, rollback_id, entry.model_copy(update={"output": redact(entry.output)})
        )

    return journal_append


def _outbox_put(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def outbox_put(self: Any, entry: Any, audit: Any = None) -> int:
        clean = entry.model_copy(update={"kwargs": redact(entry.kwargs)})
        return await write(self, clean, _audit_entry(audit))

    return outbox_put


WRITES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "create": _create,
    "_change": _change,
    "audit": _audit,
    "journal_append": _journal_append,
    "outbox_put": _outbox_put,
}


def redact_writes(cls: type) -> None:
    """Wrap the write methods `cls` defines itself (inherited ones are wrapped already)."""
    for name, wrap in WRITES.items():
        method = vars(cls).get(name)
        if method is not None and not getattr(method, "__redacts__", False):
            wrapped = wrap(method)
            wrapped.__redacts__ = True  # type: ignore[attr-defined]
            setattr(cls, name, wrapped)
