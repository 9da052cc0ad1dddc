"""What a rollback says: announcement, status, completion, status and history lists (Jinja2
templates, operator-overridable) and its Block Kit."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

from bot.rollback.models import RollbackData, State
from bot.slack.ids import ActionId
from bot.slack.limits import (
    MESSAGE_TEXT,
    SECTION_TEXT,
    close_fences,
    cut,
    cut_start,
    fit_items,
    no_fence,
    section_block,
    sections,
    utf16_len,
)
from bot.slack.text import code, escape, truncate
from bot.store.base import Record, now

SECTION_LIMIT = SECTION_TEXT
COMPLETION_SECTIONS = 6  # what a completion shows before the rest goes to the file
OUTPUT_SHOWN = 1200  # the tail of a failed step's output shown in the message
STATUS_LIST_TEXT = 4_000  # what Slack shows of a message's text before "Show more"
SUMMARY_LIMIT = 2200  # what changes, in the approval request's first section


@cache
def _env(override_dir: str | None, for_slack: bool) -> Environment:
    loaders: list[Any] = [PackageLoader("bot", "templates")]
    if override_dir:
        loaders.insert(0, FileSystemLoader(override_dir))
    # Every value is escaped on the way into Slack text: user input never becomes markup.
    return Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        finalize=escape if for_slack else None,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render(
    name: str, override_dir: Path | None = None, *, slack: bool = True, **values: Any
) -> str:
    env = _env(str(override_dir) if override_dir else None, slack)
    return env.get_template(f"{name}.md.j2").render(**values).strip()


def utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    minutes, sec = divmod(seconds, 60)
    return f"{minutes}m {sec:02d}s" if minutes else f"{sec}s"


def link(channel: str, ts: str) -> str:
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}" if ts else ""


def mention(slack_id: str) -> str:
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def section(text: str) -> dict[str, Any]:
    """One section; a text too long is cut saying so, with its code fences closed."""
    return section_block(text)


def change_summary(data: RollbackData) -> list[str]:
    """Before -> after of each changing step, in words, from the plan's real lookups."""
    return [str(step["change"]) for step in data.plan if step.get("change")]


def summary_text(data: RollbackData, limit: int = SUMMARY_LIMIT) -> str:
    """The change summary as bullet lines, bounded so it fits the message's first section."""
    lines = [f"• {escape(line).replace(' -&gt; ', ' → ')}" for line in change_summary(data)]
    return truncate("\n".join(lines), limit)


def _plan_steps(data: RollbackData) -> list[str]:
    lines = []
    for step in data.plan:
        mark = ":pencil2:" if step.get("mutating") else ":mag:"
        calls = "\n".join(f"`{escape(c)}`" for c in step.get("calls", []))
        lines.append(f"{mark} *{escape(step['title'])}*\n{calls}")
    return lines


def plan_section(data: RollbackData) -> tuple[dict[str, Any], bool]:
    """The plan as one section, and whether all of it is there; when it is not, the heading
    says how much is shown and the rest is named ("and N more steps")."""
    steps = _plan_steps(data)
    head = "*Plan — every call that will be made:*"
    fitted = fit_items(head, steps, noun="more steps")
    if fitted.complete:
        return section(fitted.text if steps else f"{head}\n(no steps)"), True
    shown = len(steps) - fitted.omitted
    while True:  # the longer heading may leave room for one step less: say what is shown
        head = (
            f"*Plan — every call that will be made* (the first {shown} of {len(steps)} steps "
            "here; the whole plan is attached in the thread):"
        )
        fitted = fit_items(head, steps, noun="more steps")
        if len(steps) - fitted.omitted == shown:
            return section(fitted.text), False
        shown = len(steps) - fitted.omitted


def plan_document(rollback_id: str, data: RollbackData) -> str:
    """The whole plan, for the file attached when the approval request cannot hold it."""
    lines = [f"# Plan of rollback {rollback_id}: {data.target} to {data.ref}", ""]
    for i, step in enumerate(data.plan, 1):
        change = "changes" if step.get("mutating") else "reads"
        lines += [f"{i}. {step['title']} ({change})"]
        lines += [f"   - {c}" for c in step.get("calls", [])]
    return "\n".join(lines) + "\n"


def approval_blocks(rollback_id: str, data: RollbackData, approvers: list[str]) -> list[dict]:
    plan_block, _ = plan_section(data)
    value = json.dumps({"id": rollback_id})
    summary = summary_text(data)
    what = f"*What changes:*\n{summary}\n" if summary else ""
    return [
        section(
            f"{what}:raised_hand: *Approval needed* — {' '.join(mention(a) for a in approvers)}\n"
            f"<@{data.requester}> asks to roll back *{escape(data.target)}* to "
            f"`{escape(data.ref)}`. The requester cannot approve their own rollback."
            + _approval_terms(data)
        ),
        {"type": "divider"},
        plan_block,
        {
            "type": "actions",
            "block_id": f"approval:{rollback_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ActionId.APPROVE.value,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Run this rollback?"},
                        "text": {
                            "type": "mrkdwn",
                            "text": f"Roll back *{escape(data.target)}* now.",
                        },
                        "confirm": {"type": "plain_text", "text": "Run it"},
                        "deny": {"type": "plain_text", "text": "Not yet"},
                    },
                },
                {
                    "type": "button",
                    "action_id": ActionId.REJECT.value,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": value,
                },
            ],
        },
    ]


def _approval_terms(data: RollbackData) -> str:
    needed = (
        f"\n*{data.approvals_needed} different approvers* must approve."
        if data.approvals_needed > 1
        else ""
    )
    expires = f"\nExpires at {utc(data.expires_at)} UTC." if data.expires_at else ""
    return needed + expires


def confirm_blocks(rollback_id: str, data: RollbackData, approver: str) -> list[dict]:
    """Dangerous playbooks (database changes): a second, explicit click before anything runs."""
    value = json.dumps({"id": rollback_id})
    return [
        section(
            f":warning: *Second confirmation needed* — <@{approver}> approved a *dangerous* "
            f"rollback of *{escape(data.target)}* (database or data changes that may not be "
            "reversible). An approver must confirm it before anything runs."
        ),
        {
            "type": "actions",
            "block_id": f"confirm:{rollback_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ActionId.CONFIRM.value,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Confirm"},
                    "value": value,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Run a dangerous rollback?"},
                        "text": {"type": "mrkdwn", "text": "This may change data for good."},
                        "confirm": {"type": "plain_text", "text": "Run it"},
                        "deny": {"type": "plain_text", "text": "Not yet"},
                    },
                },
                {
                    "type": "button",
                    "action_id": ActionId.REJECT.value,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": value,
                },
            ],
        },
    ]


def decided_blocks(
    data: RollbackData, state: State, by: str, approvers: list[str] | None = None
) -> list[dict]:
    verb = {
        State.AWAITING_CONFIRMATION: ":white_check_mark: Approved (confirmation pending)",
        State.APPROVED: ":white_check_mark: Approved",
        State.REJECTED: ":no_entry: Rejected",
        State.CANCELLED: ":heavy_minus_sign: Cancelled",
    }.get(state, state.value)
    who = " and ".join(f"<@{a}>" for a in approvers) if approvers else f"<@{by}>"
    return [
        section(f"{verb} by {who} — rollback of *{escape(data.target)}* to `{escape(data.ref)}`.")
    ]


STEP_ICONS = {
    "ok": ":white_check_mark:",
    "skipped": ":white_check_mark:",
    "failed": ":x:",
    "interrupted": ":warning:",
    "running": ":arrows_counterclockwise:",
    "pending": ":white_circle:",
}


# Progress lines that are never left out, however many steps there are.
MUST_SHOW = ("failed", "interrupted", "running")


def progress_blocks(
    rollback_id: str, data: RollbackData, total_steps: list[str], running: str = ""
) -> list[dict]:
    done = {s.step_id: s for s in data.steps}
    lines: list[tuple[str, str]] = []
    for step_id, title in _titles(data, total_steps):
        rec = done.get(step_id)
        state = rec.outcome if rec else ("running" if step_id == running else "pending")
        timing = f" ({rec.seconds:.1f} s)" if rec else ""
        shown = escape(truncate(rec.error, 300)).replace("```", "'''") if rec else ""
        error = f"\n      {shown}" if shown else ""
        icon = STEP_ICONS.get(state, "")
        lines.append((state, f"{icon} {escape(title)} — {state}{timing}{error}"))
    head = f"*Progress — {escape(data.target)}* (`{rollback_id}`)"
    return [section(_progress_text(head, lines))]


def _progress_text(head: str, lines: list[tuple[str, str]]) -> str:
    """Every line when they fit; else the failed and running steps and as many others as fit,
    in order, and how many were left out."""
    text = "\n".join([head, *(line for _, line in lines)])
    if utf16_len(text) <= SECTION_TEXT:
        return text
    room = SECTION_TEXT - utf16_len(head) - 120  # the "and N more" line
    keep = {i for i, (state, _) in enumerate(lines) if state in MUST_SHOW}
    room -= sum(utf16_len(lines[i][1]) + 1 for i in keep)
    for i, (_, line) in enumerate(lines):
        if i not in keep and utf16_len(line) + 1 <= room:
            keep.add(i)
            room -= utf16_len(line) + 1
    shown = [cut(lines[i][1], SECTION_TEXT // 4) for i in sorted(keep)]
    left_out = len(lines) - len(shown)
    tail = f"… and {left_out} more steps — every step is in the incident report at the end"
    return cut("\n".join([head, *shown, tail]), SECTION_TEXT)


def _titles(data: RollbackData, step_ids: list[str]) -> list[tuple[str, str]]:
    titles = {p["step_id"]: p["title"] for p in data.plan}
    return [(sid, titles.get(sid, sid)) for sid in step_ids]


def failure_actions(rollback_id: str, data: RollbackData) -> list[dict]:
    value = json.dumps({"id": rollback_id})
    return [
        section(
            "*Options from the runbook:* roll back one revision further, or use the"
            " scale-to-zero / stop-worker targets of this service if the catalog has them."
        ),
        {
            "type": "actions",
            "block_id": f"failure:{rollback_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ActionId.RETRY_FURTHER.value,
                    "text": {"type": "plain_text", "text": "Roll back further"},
                    "value": value,
                },
            ],
        },
    ]


def completion(
    templates: Path | None,
    record: Record,
    data: RollbackData,
    *,
    outcome: State,
    error: str,
    checklist: list[dict[str, Any]],
    changes: list[dict[str, str]],
    failed_step: str,
    failed_output: str,
    failed_output_note: str = "",
) -> str:
    """The message that ends a rollback: outcome, time taken, changes, checklist, failure.
    Texts that come from commands and AWS never open or close a code block."""
    checklist = [{**item, "detail": no_fence(str(item.get("detail") or ""))} for item in checklist]
    changes = [{**item, "detail": no_fence(str(item.get("detail") or ""))} for item in changes]
    return render(
        "completion",
        templates,
        ok=outcome == State.SUCCEEDED,
        outcome=outcome.value,
        target=data.target,
        id=record.id,
        total=duration((data.finished_at or now()) - (data.started_at or record.created_at)),
        approver=data.approver,
        error=no_fence(error),
        checklist=checklist,
        changes=changes,
        failed_step=failed_step,
        failed_output=failed_output,
        failed_output_note=failed_output_note,
        # what the plan said would change; only a successful run made all of it
        summary=change_summary(data) if outcome == State.SUCCEEDED else [],
    )


def status(templates: Path | None, record: Record, data: RollbackData, next_due: float) -> str:
    """The periodic update posted while a rollback runs, within a message's limit."""
    text = render(
        "status",
        templates,
        target=data.target,
        id=record.id,
        state=record.state,
        elapsed=duration(now() - (data.started_at or record.created_at)),
        current_step=data.current_step,
        next_update=utc(next_due),
    )
    return close_fences(cut(text, MESSAGE_TEXT - 4))


# What a failed step printed, in the order a person reads it: the command, then its output.
FAILURE_OUTPUT_KEYS = ("command", "output", "stderr", "stdout")


def failure_output(output: dict[str, Any]) -> str:
    """Everything the failed step printed, command first."""
    parts = [str(output[k]).strip() for k in FAILURE_OUTPUT_KEYS if str(output.get(k, "")).strip()]
    return "\n".join(parts)


def output_tail(output: dict[str, Any], limit: int = OUTPUT_SHOWN) -> str:
    text = failure_output(output).replace("`" * 3, "'" * 3)  # must not close the code block
    return cut_start(text, limit + 1)  # the "…" it starts with when cut is not output


def output_note(output: dict[str, Any], limit: int = OUTPUT_SHOWN) -> str:
    """What the message says when it shows only the end of the output; "" when it shows all."""
    full = utf16_len(failure_output(output))
    if full <= limit:
        return ""
    return f"(the last {limit:,} of {full:,} characters — full text in the thread)"


def completion_message(text: str) -> tuple[str, list[dict[str, Any]], bool]:
    """The completion as Slack can take it: the notification text, its sections (structure
    kept, fences closed), and whether all of it is there (else the rest is in a file)."""
    blocks, omitted = sections(text, most=COMPLETION_SECTIONS)
    return close_fences(cut(text, MESSAGE_TEXT - 4)), blocks, omitted == 0


def output_summary(output: dict[str, Any]) -> str:
    keys = [k for k in ("summary", "detail", "task_definition", "status") if k in output]
    return "; ".join(f"{k}: {output[k]}" for k in keys)[:300]


def status_list(records: list[tuple[Record, RollbackData]], at: float) -> str:
    """`/rollback status`: the rollbacks still in progress."""
    if not records:
        return "No rollback is in progress."
    lines = [
        f"• {code(r.id)} {code(d.target)} — *{r.state}* for {duration(at - r.created_at)}"
        f"{', step ' + escape(d.current_step) if d.current_step else ''} "
        f"(requested by <@{d.requester}>) {link(d.channel, d.thread_ts)}"
        for r, d in records
    ]
    # each line links to its thread; those that do not fit are counted, not cut
    where = "each has its thread in the incident channel"
    return fit_items("*Rollbacks in progress*", lines, STATUS_LIST_TEXT, "more", where=where).text


def history(records: list[tuple[Record, RollbackData]], target: str | None) -> str:
    """`/rollback history`: the latest rollbacks and how long the successful ones took."""
    if not records:
        return "No rollbacks recorded yet."
    lines = []
    durations: dict[str, list[float]] = {}
    for r, d in records:
        took = (d.finished_at - d.started_at) if d.finished_at and d.started_at else None
        if took is not None and r.state == State.SUCCEEDED:
            durations.setdefault(d.playbook, []).append(took)
        lines.append(
            f"• {utc(r.created_at)} {code(r.id)} {code(d.target)} → "
            f"`{escape(d.ref)}` *{r.state}* in {duration(took)}"
        )
    estimates = [
        f"• {escape(p)}: median {duration(statistics.median(v))} over {len(v)} run(s)"
        for p, v in sorted(durations.items())
    ]
    text = "*Rollback history*" + (f" for {code(target)}" if target else "") + "\n"
    text += "\n".join(lines)
    if estimates:
        text += "\n*Rollback time estimates (successful runs)*\n" + "\n".join(estimates)
    return text
