"""Writing the audit log: one entry per state-changing act, refusal or message sent."""

from __future__ import annotations

from typing import Any

from bot.store.base import AuditEntry, Store, now


def audit_entry(actor: str, action: str, subject: str, **detail: Any) -> AuditEntry:
    return AuditEntry(at=now(), actor=actor, action=action, subject=subject, detail=detail)


async def audit(store: Store, actor: str, action: str, subject: str, **detail: Any) -> None:
    await store.audit(audit_entry(actor, action, subject, **detail))
