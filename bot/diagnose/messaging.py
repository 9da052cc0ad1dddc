"""Block Kit for a diagnosis: verdict first, then the figures and what could not be read."""

from __future__ import annotations

import json
from typing import Any

from bot.diagnose.capture import Capture
from bot.rollback.models import ActionId
from bot.slack.text import escape, truncate

ICONS = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "ok": ":large_green_circle:",
}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 2900)}}


def headline(capture: Capture) -> str:
    v = capture.verdict
    return (
        f"{ICONS[v.severity]} *{escape(capture.target)}: {v.severity.upper()}* — "
        f"{escape(v.action)} ({escape(v.timeframe)})"
    )


def key_figures(capture: Capture) -> str:
    f = capture.facts
    parts = []
    if f.get("running") is not None:
        parts.append(f"tasks {f['running']}/{f['desired']}")
    if "error_rate_pct" in f:
        parts.append(f"5xx rate {f['error_rate_pct']:.1f}%")
    if "error_lines" in f:
        parts.append(f"error lines {f['error_lines']}")
    if "p95_ms" in f:
        parts.append(f"p95 {f['p95_ms']:.0f} ms")
    if "health_total" in f:
        parts.append(f"health {f['health_ok']}/{f['health_total']} OK")
    for key, label in (("memory_pct", "memory"), ("cpu_pct", "CPU")):
        if key in f:
            parts.append(f"{label} {f[key]:.0f}%")
    return " · ".join(parts) or "no figures collected"


def verdict_blocks(capture: Capture, diagnosis_id: str) -> list[dict[str, Any]]:
    v = capture.verdict
    blocks = [_section(headline(capture)), _section(f"*Key figures:* {key_figures(capture)}")]
    if v.triggers:
        blocks.append(
            _section(
                "*Triggers fired:*\n"
                + "\n".join(
                    f"• {escape(t.name)} ({t.severity}): {escape(t.measured)}, threshold "
                    f"{escape(t.threshold)}"
                    for t in v.triggers
                )
            )
        )
    missing = [
        f"• {escape(n)}: {escape(s.error)}" for n, s in capture.sources.items() if s.status != "ok"
    ]
    if missing:
        blocks.append(_section("*Not collected:*\n" + "\n".join(missing)))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": (
                        f"Captured in {capture.seconds:.2f} s · `{diagnosis_id}`"
                        " · full capture in the thread"
                    ),
                }
            ],
        }
    )
    value = json.dumps(
        {
            "target": capture.target,
            "diagnosis": diagnosis_id,
            "reason": f"/diagnose: {v.severity} ({', '.join(t.name for t in v.triggers)})"
            if v.triggers
            else "",
        }
    )
    blocks.append(
        {
            "type": "actions",
            "block_id": f"diagnosis:{diagnosis_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ActionId.OPEN_FROM_DIAGNOSIS.value,
                    "text": {"type": "plain_text", "text": "Roll back"},
                    "style": "danger" if v.severity in ("critical", "high") else "primary",
                    "value": truncate(value, 2000),
                }
            ],
        }
    )
    return blocks
