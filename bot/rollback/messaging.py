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
from bot.slack.text import code, escape, truncate
from bot.store.base import Record, now

SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section text
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
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def change_summary(data: RollbackData) -> list[str]:
    """Before -> after of each changing step, in words, from the plan's real lookups."""
    return [str(step["change"]) for step in data.plan if step.get("change")]


def summary_text(data: RollbackData, limit: int = SUMMARY_LIMIT) -> str:
    """The change summary as bullet lines, bounded so it fits the message's first section."""
    lines = [f"• {escape(line).replace(' -&gt; ', ' → ')}" for line in change_summary(data)]
    return truncate("\n".join(lines), limit)


def approval_blocks(rollback_id: str, data: RollbackData, approvers: list[str]) -> list[dict]:
    lines = []
    for step in data.plan:
        mark = ":pencil2:" if step.get("mutating") else ":mag:"
        calls = "\n".join(f"`{escape(c)}`" for c in step.get("calls", []))
        lines.append(f"{mark} *{escape(step['title'])}*\n{calls}")
    plan_text = "\n".join(lines) or "(no steps)"
    value = json.dumps({"id": rollback_id})
    summary = summary_text(data)
    what = f"*What changes:*\n{summary}\n" if summary else ""
    return [
        section(
            f"{what}:raised_hand: *Approval needed* — {' '.join(mention(a) for a in approvers)}\n"
            f"<@{data.requester}> asks to roll back *{escape(data.target)}* to "
            f"`{escape(data.ref)}`. The requester cannot approve their own rollback."
        ),
        {"type": "divider"},
        section(f"*Exact calls, in order:*\n{plan_text}"),
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


def decided_blocks(data: RollbackData, state: State, by: str) -> list[dict]:
    verb = {
        State.AWAITING_CONFIRMATION: ":white_check_mark: Approved (confirmation pending)",
        State.APPROVED: ":white_check_mark: Approved",
        State.REJECTED: ":no_entry: Rejected",
        State.CANCELLED: ":heavy_minus_sign: Cancelled",
    }.get(state, state.value)
    return [
        section(f"{verb} by <@{by}> — rollback of *{escape(data.target)}* to `{escape(data.ref)}`.")
    ]


STEP_ICONS = {
    "ok": ":white_check_mark:",
    "skipped": ":white_check_mark:",
    "failed": ":x:",
    "interrupted": ":warning:",
    "running": ":arrows_counterclockwise:",
    "pending": ":white_circle:",
}


def progress_blocks(
    rollback_id: str, data: RollbackData, total_steps: list[str], running: str = ""
) -> list[dict]:
    done = {s.step_id: s for s in data.steps}
    lines = []
    for step_id, title in _titles(data, total_steps):
        rec = done.get(step_id)
        state = rec.outcome if rec else ("running" if step_id == running else "pending")
        timing = f" ({rec.seconds:.1f} s)" if rec else ""
        error = f"\n      {escape(truncate(rec.error, 300))}" if rec and rec.error else ""
        lines.append(f"{STEP_ICONS.get(state, '')} {escape(title)} — {state}{timing}{error}")
    return [section(f"*Progress — {escape(data.target)}* (`{rollback_id}`)\n" + "\n".join(lines))]


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
) -> str:
    """The message that ends a rollback: outcome, time taken, changes, checklist, failure."""
    return render(
        "completion",
        templates,
        ok=outcome == State.SUCCEEDED,
        outcome=outcome.value,
        target=data.target,
        id=record.id,
        total=duration((data.finished_at or now()) - (data.started_at or record.created_at)),
        approver=data.approver,
        error=error,
        checklist=checklist,
        changes=changes,
        failed_step=failed_step,
        failed_output=failed_output,
        # what the plan said would change; only a successful run made all of it
        summary=change_summary(data) if outcome == State.SUCCEEDED else [],
    )


def status(templates: Path | None, record: Record, data: RollbackData, next_due: float) -> str:
    """The periodic update posted while a rollback runs."""
    return render(
        "status",
        templates,
        target=data.target,
        id=record.id,
        state=record.state,
        elapsed=duration(now() - (data.started_at or record.created_at)),
        current_step=data.current_step,
        next_update=utc(next_due),
    )


# What a failed step printed, in the order a person reads it: the command, then its output.
FAILURE_OUTPUT_KEYS = ("command", "output", "stderr", "stdout")


def output_tail(output: dict[str, Any], limit: int = 1200) -> str:
    parts = [str(output[k]).strip() for k in FAILURE_OUTPUT_KEYS if str(output.get(k, "")).strip()]
    text = "\n".join(parts).replace("`" * 3, "'" * 3)  # must not close the code block
    return text if len(text) <= limit else "…" + text[-limit:]


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
    return "*Rollbacks in progress*\n" + "\n".join(lines)


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
