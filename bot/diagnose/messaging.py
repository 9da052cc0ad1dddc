"""How a diagnosis reads: Block Kit for Slack (verdict first) and Markdown for files."""

from __future__ import annotations

import json
from typing import Any

from bot.diagnose.models import Capture, Figures
from bot.slack.ids import ActionId
from bot.slack.limits import IN_THREAD, SECTION_TEXT, fit_items, more, section_block, utf16_len
from bot.slack.text import code, escape, truncate

ICONS = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "ok": ":large_green_circle:",
    "unknown": ":white_circle:",
}
SECTION_LIMIT = SECTION_TEXT
LIST_LIMIT = 10  # lines per list before "and N more"
ERROR_LINES = 10  # latest log lines shown before "and N more"


def headline(capture: Capture) -> str:
    """The notification and fallback text: plain words, no markup."""
    v = capture.verdict
    return (
        f"Diagnosis of {escape(capture.target)}: {v.severity.upper()} - "
        f"{escape(v.action)} ({escape(v.timeframe)})"
    )


def _section(text: str) -> dict[str, Any]:
    return section_block(text)


def _bullets(title: str, lines: list[str]) -> dict[str, Any]:
    """A titled list that fits one section: the rest is counted, not cut mid-line."""
    bullets = [f"• {line}" for line in lines]
    return _section(fit_items(f"*{title}*", bullets, most=LIST_LIMIT).text)


def key_figures(capture: Capture) -> list[tuple[str, str]]:
    """(label, value) pairs of what was measured, unescaped."""
    f, out = capture.figures, []
    if f.running is not None:
        rollout = " · rollout FAILED" if f.rollout_failed else ""
        out.append(("Tasks", f"{f.running}/{f.desired} running{rollout}"))
    if f.task_definition:
        out.append(("Task definition", f.task_definition + _image_of(capture)))
    if f.error_rate_pct is not None:
        out.append(("5xx rate", f"{f.error_rate_pct:.1f}% ({f.errors_5xx:g} of {f.requests:g})"))
    if f.p95_ms is not None:
        out.append(("p95 latency", _latency(f)))
    if f.health_total:
        out.append(("Health", f"{f.health_total - (f.health_failing or 0)} of {f.health_total} OK"))
    if f.error_lines is not None:
        minutes = f"{capture.window_minutes:g} min"
        out.append(("Errors in logs", f"{f.error_lines} lines in {minutes}"))
    if f.containers:
        out.append(("Containers", f.containers))
    if f.restarts is not None and f.restarts_what:
        out.append(("Restarts", f.restarts_what))
    elif f.restarts is not None:
        out.append(("Restarts", f"{f.restarts} in {capture.window_minutes:g} min"))
    for label, value in (("Memory", f.memory_pct), ("CPU", f.cpu_pct)):
        if value is not None:
            out.append((label, f"{value:.1f}% sustained"))
    return out


def _latency(f: Figures) -> str:
    text = f"{f.p95_ms:.0f} ms ({f.p95_from})"
    if f.p95_baseline_ms:
        text += f" · baseline {f.p95_baseline_ms:.0f} ms"
    return text


def _image_of(capture: Capture) -> str:
    src = capture.sources.get("task_definitions")
    if src is None or src.status != "ok":
        return ""
    current = [h for h in src.data.get("history", []) if h.get("current")]
    images = [c.get("image") or "" for c in (current[0]["containers"] if current else [])]
    return f" ({images[0].rsplit('/', 1)[-1]})" if images else ""


def _latest_errors(capture: Capture) -> tuple[list[str], int]:
    """The error lines the capture kept, newest first, and how many matched in all."""
    lines, total = [], 0
    for name, src in capture.sources.items():
        if name.startswith("logs ") and src.status == "ok":
            lines += [(e["at"], e["message"]) for e in src.data.get("latest", [])]
            total += int(src.data.get("count") or 0)
    return [message for _, message in sorted(lines, reverse=True)], max(total, len(lines))


def _errors_section(capture: Capture) -> dict[str, Any] | None:
    """The latest error lines in a code block, as many as fit, saying how many more matched."""
    kept, total = _latest_errors(capture)
    if not kept:
        return None
    where = IN_THREAD if total == len(kept) else f"the latest {len(kept)} in the capture file"
    head, body = "*Latest errors in the logs*", []
    for message in kept[:ERROR_LINES]:
        line = escape(truncate(message, 300)).replace("```", "'''")
        trial = f"{head}\n```" + "\n".join([*body, line]) + "```\n" + more(total, "more", where)
        if utf16_len(trial) > SECTION_TEXT:
            break
        body.append(line)
    text = f"{head}\n```" + "\n".join(body) + "```"
    if total > len(body):
        text += "\n" + more(total - len(body), "more lines", where)
    return _section(text)


def verdict_blocks(capture: Capture, diagnosis_id: str | None = None) -> list[dict[str, Any]]:
    """The Slack message: verdict, figures, triggers, gaps, and a Roll back button."""
    v, did = capture.verdict, diagnosis_id or capture.id
    blocks = [
        _section(
            f"{ICONS[v.severity]} *Diagnosis of {code(capture.target)}: {v.severity.upper()}* — "
            f"{escape(v.action)} ({escape(v.timeframe)})\n{escape(v.recommendation)}"
        )
    ]
    figures = key_figures(capture)
    if figures:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": truncate(f"*{escape(k)}*\n{escape(val)}", 2000)}
                    for k, val in figures[:10]
                ],
            }
        )
    blocks += _detail_sections(capture)
    blocks.append(_context(capture, did))
    blocks.append(_actions(capture, did))
    return blocks


def _detail_sections(capture: Capture) -> list[dict[str, Any]]:
    v, out = capture.verdict, []
    if v.triggers:
        lines = [
            f"{ICONS[t.severity]} *{escape(t.name)}*: {escape(t.measured)} "
            f"(threshold {escape(t.threshold)}) → {escape(t.response)} "
            f"_(runbook {escape(t.runbook)})_"
            for t in v.triggers
        ]
        out.append(_section("*Triggers fired*\n" + "\n".join(lines)))
    errors = _errors_section(capture)
    if errors is not None:
        out.append(errors)
    missing = [
        f"{code(name, 120)}: {escape(truncate(src.error or src.status, 300))}"
        for name, src in capture.sources.items()
        if src.status != "ok"
    ]
    if missing:
        out.append(_bullets("Not collected", missing))
    # a gap already explained under "Not collected" is not repeated
    gaps = [u for u in v.unevaluated if not any(f"{n}: " in u for n in capture.sources)]
    if gaps:
        lines = [escape(truncate(u, 300)) for u in gaps]
        out.append(_bullets("Not evaluated", lines))
    return out


def _context(capture: Capture, diagnosis_id: str) -> dict[str, Any]:
    text = (
        f"{code(diagnosis_id)} · {capture.seconds:.2f} s (at most {capture.timeout:g} s per source)"
        f" · last {capture.window_minutes:g} min · full capture in the thread"
    )
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _actions(capture: Capture, diagnosis_id: str) -> dict[str, Any]:
    v = capture.verdict
    reason = ""
    if v.triggers:
        reason = f"/diagnose {diagnosis_id}: {v.severity} ({', '.join(t.name for t in v.triggers)})"
    value = {"target": capture.target, "diagnosis": diagnosis_id, "reason": truncate(reason, 300)}
    button: dict[str, Any] = {
        "type": "button",
        "action_id": ActionId.OPEN_FROM_DIAGNOSIS.value,
        "text": {"type": "plain_text", "text": "Roll back"},
        "value": json.dumps(value),
    }
    if v.severity in ("critical", "high"):
        button["style"] = "danger"
    return {"type": "actions", "block_id": f"diagnosis:{diagnosis_id}", "elements": [button]}


def markdown(capture: Capture) -> str:
    """The whole capture as a Markdown document (for a file or an incident report)."""
    data = capture.redacted()
    v = data["verdict"]
    lines = [
        f"# Diagnosis of {capture.target} ({capture.id})",
        "",
        f"Captured {capture.started_at:%Y-%m-%d %H:%M:%S} UTC in {capture.seconds:.2f} s, "
        f"last {capture.window_minutes:g} minutes, at most {capture.timeout:g} s per source.",
        "",
        f"**Verdict: {v['severity'].upper()}** — {v['action']} ({v['timeframe']}). "
        f"{v['recommendation']}",
        "",
    ]
    if v["triggers"]:
        lines += [
            "| Trigger | Severity | Measured | Threshold | Response |",
            "|---|---|---|---|---|",
        ]
        for t in v["triggers"]:
            response = f"{t['response']} (runbook {t['runbook']})"
            cells = (t["name"], t["severity"], t["measured"], t["threshold"], response)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [f"- not evaluated: {u}" for u in v["unevaluated"]]
    for name, src in data["sources"].items():
        lines += ["", f"## {name} — {src['status']} ({src['seconds']:.2f} s)", ""]
        if src["status"] != "ok":
            lines.append(src["error"])
        else:
            lines += ["```json", json.dumps(src["data"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
