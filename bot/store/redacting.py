"""Every write a store makes passes the redactor first: records, audit entries, journal entries
and queued Slack calls, whichever backend writes them. `Store.__init_subclass__` wraps each
backend's write methods with `redact_writes`, so a new backend cannot forget it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from playbooks.redact import redact


def _audit_entry(entry: Any) -> Any:
    if entry is None:
        return None
    return entry.model_copy(
        update={"subject": redact(entry.subject), "detail": redact(entry.detail)}
    )


def _record(record: Any) -> Any:
    return record.model_copy(update={"data": redact(record.data)})


def _journal_entry(entry: Any) -> Any:
    return entry.model_copy(update={"output": redact(entry.output)})


def _outbox_entry(entry: Any) -> Any:
    return entry.model_copy(update={"kwargs": redact(entry.kwargs)})


Cleaner = Callable[[Any], Any]
# write method -> {its argument -> how that argument is cleaned}; arguments are found by name,
# so a backend may add parameters of its own.
WRITES: dict[str, dict[str, Cleaner]] = {
    "create": {"record": _record, "audit": _audit_entry},
    "_change": {"patch": redact, "audit": _audit_entry},
    "audit": {"entry": _audit_entry},
    "journal_append": {"entry": _journal_entry},
    "outbox_put": {"entry": _outbox_entry, "audit": _audit_entry},
}


def _redacting(method: Callable[..., Any], cleaners: dict[str, Cleaner]) -> Callable[..., Any]:
    signature = inspect.signature(method)
    missing = set(cleaners) - set(signature.parameters)
    if missing:
        raise TypeError(f"{method.__qualname__} has no parameter {sorted(missing)} to redact")

    @functools.wraps(method)
    async def write(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, clean in cleaners.items():
            if name in bound.arguments:
                bound.arguments[name] = clean(bound.arguments[name])
        return await method(*bound.args, **bound.kwargs)

    write.__redacts__ = True  # type: ignore[attr-defined]
    return write


def redact_writes(cls: type) -> None:
    """Wrap the write methods `cls` defines itself (inherited ones are wrapped already)."""
    for name, cleaners in WRITES.items():
        method = vars(cls).get(name)
        if method is not None and not getattr(method, "__redacts__", False):
            setattr(cls, name, _redacting(method, cleaners))
