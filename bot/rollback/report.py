"""The incident report (markdown) uploaded when a rollback ends."""

from __future__ import annotations

import json

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.services import Services


async def incident_report(services: Services, rollback_id: str) -> str:
    record = await services.store.get(rollback_id)
    assert record is not None
    data = records.data_of(record)
    timeline = [
        {
            "time": msg.utc(e.at),
            "action": e.action,
            "actor": e.actor,
            "detail": ", ".join(f"{k}={v}" for k, v in e.detail.items() if k != "text")[:200],
        }
        for e in await services.store.audit_since(0.0, subject=rollback_id)
        if e.action != "slack.post"
    ]
    diagnostics = ""
    if data.diagnosis_id and (diag := await services.store.get(data.diagnosis_id)):
        diagnostics = "```json\n" + json.dumps(diag.data, indent=2, default=str)[:20000] + "\n```"
    total = None
    if data.finished_at:
        total = data.finished_at - (data.started_at or record.created_at)
    return msg.render(
        "incident_report",
        services.settings.rollbot_templates,
        slack=False,
        target=data.target,
        id=rollback_id,
        outcome=record.state,
        requester=data.requester,
        approver=data.approver,
        playbook=data.playbook,
        ref=data.ref,
        reason=data.reason,
        total=msg.duration(total),
        timeline=timeline,
        steps=[
            {**s.model_dump(), "output": json.dumps(s.output, indent=2, default=str)}
            for s in data.steps
        ],
        checklist=data.checklist,
        diagnostics=diagnostics,
    )
