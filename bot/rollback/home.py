"""The Home tab: for the person looking, the rollbacks waiting for their decision (with the
same Approve/Reject buttons as in the thread), the running ones, the last ten finished, and
each target with its playbook (for ECS, the revision it runs, looked up and cached briefly)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.decision import is_approver
from bot.rollback.models import EXECUTING, TERMINAL, RollbackData, State
from bot.services import Services
from bot.slack.ids import ActionId
from bot.slack.text import code, escape, truncate
from bot.store.base import Job, Record
from playbooks.aws import AwsClients, call

log = logging.getLogger(__name__)

SHOWN_WAITING = 10  # each is two blocks; a Home view holds at most 100
SHOWN_FINISHED = 10
REVISION_TTL = 300.0  # seconds an ECS service's revision is trusted on the Home tab
REVISION_TIMEOUT = 3.0
MAX_CONCERNED = 50  # Home tabs refreshed per state change
WAITING = (State.AWAITING_APPROVAL, State.AWAITING_CONFIRMATION)

_revisions: dict[tuple[str, str, str], tuple[float, str]] = {}


async def publish_home(services: Services, user: str, look_up: bool = True) -> None:
    """`look_up`: ask ECS for revisions not cached (the person opened the tab); a refresh
    after a state change shows only what is cached and never calls AWS in the background."""
    await services.slack.publish_home(user, await home_view(services, user, look_up))


async def refresh_job(services: Services, job: Job) -> None:
    """The due-job behind a state change: every concerned person's Home tab, republished."""
    record = await services.store.get(job.payload["id"])
    if record is None:
        return
    data = records.data_of(record)
    tgt = services.catalog.targets.get(data.target)
    if tgt is not None and record.state in TERMINAL:
        forget_revision(tgt.params)  # what the target runs may have just changed
    for user in await concerned(services, data):
        try:
            await publish_home(services, user, look_up=False)
        except Exception as exc:  # one person's tab must not keep the others stale
            log.warning("could not refresh the Home tab of %s: %s", user, exc)


async def concerned(services: Services, data: RollbackData) -> list[str]:
    """The requester, whoever decided, and the approvers (user groups expanded)."""
    users = {data.requester, data.approver, data.confirmed_by}
    tgt = services.catalog.targets.get(data.target)
    for a in tgt.approvers if tgt else []:
        if not a.startswith("S"):
            users.add(a)
            continue
        try:
            users |= await services.slack.group_members(a)
        except Exception as exc:  # the named people still get their refresh
            log.warning("could not list user group %s for the Home tabs: %s", a, exc)
    return sorted(u for u in users if u)[:MAX_CONCERNED]


async def home_view(services: Services, user: str, look_up: bool = True) -> dict[str, Any]:
    rollbacks = await records.list_rollbacks(services.store, limit=200)
    pairs = [(r, records.data_of(r)) for r in rollbacks]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Rollbot"}}
    ]
    blocks += await _waiting(services, user, pairs)
    running = [_running_line(r, d) for r, d in pairs if r.state in EXECUTING]
    blocks.append(msg.section("*Running*\n" + ("\n".join(running) or "Nothing is running.")))
    finished = [
        _finished_line(r, d) for r, d in pairs if r.state in TERMINAL or r.state == "expired"
    ]
    blocks.append(
        msg.section("*Last finished*\n" + ("\n".join(finished[:SHOWN_FINISHED]) or "None yet."))
    )
    blocks.append(msg.section("*Targets*\n" + await _targets(services, look_up)))
    return {"type": "home", "blocks": blocks}


async def _waiting(
    services: Services, user: str, pairs: list[tuple[Record, RollbackData]]
) -> list[dict[str, Any]]:
    mine = []
    for record, data in pairs:
        tgt = services.catalog.targets.get(data.target)
        if record.state not in WAITING or tgt is None:
            continue
        if user == data.requester and not tgt.allow_self_approval:
            continue  # the requester sees it under the thread, never with a button to approve it
        if await is_approver(services.slack, user, tgt.approvers):
            mine.append((record, data))
    blocks = [msg.section(f"*Waiting for your decision* ({len(mine)})")]
    for record, data in mine[:SHOWN_WAITING]:
        blocks += waiting_blocks(record, data)
    return blocks


def waiting_blocks(record: Record, data: RollbackData) -> list[dict[str, Any]]:
    """One waiting rollback and its buttons. A button carries the ts of the thread message it
    mirrors, so a click from Home passes the same message-binding check as one in the thread:
    it decides that rollback at that stage only (an approval button cannot confirm)."""
    confirming = record.state == State.AWAITING_CONFIRMATION
    ts = data.confirm_ts if confirming else data.approval_ts
    value = json.dumps({"id": record.id, "ts": ts})
    summary = msg.summary_text(data, limit=1500)
    text = (
        f"{code(data.target)} to `{escape(data.ref)}` — requested by <@{data.requester}>"
        f"{' (approved once, confirmation needed)' if confirming else ''} "
        f"{msg.link(data.channel, data.thread_ts)}\n{summary}"
    )
    go = ActionId.CONFIRM if confirming else ActionId.APPROVE
    return [
        msg.section(text),
        {
            "type": "actions",
            "block_id": f"home:{record.id}",
            "elements": [
                {
                    **_button(go, "Confirm" if confirming else "Approve", value, "primary"),
                    # the thread's question, so a tap on a phone is never a decision by itself
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
                _button(ActionId.REJECT, "Reject", value, "danger"),
            ],
        },
    ]


def _button(action: ActionId, label: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action.value,
        "style": style,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }


def _running_line(record: Record, data: RollbackData) -> str:
    step = f" — step {escape(data.current_step)}" if data.current_step else ""
    return f"• {code(data.target)} {code(record.id)} *{record.state}*{step} " + msg.link(
        data.channel, data.thread_ts
    )


OUTCOME_EMOJI = {
    State.SUCCEEDED: ":white_check_mark:",
    State.FAILED: ":x:",
    State.REJECTED: ":no_entry:",
    State.CANCELLED: ":heavy_minus_sign:",
    State.INTERRUPTED: ":warning:",
}


def _finished_line(record: Record, data: RollbackData) -> str:
    took = data.finished_at - data.started_at if data.finished_at and data.started_at else None
    emoji = OUTCOME_EMOJI.get(record.state, ":alarm_clock:")  # type: ignore[call-overload]
    return (
        f"{emoji} {msg.utc(record.created_at)} {code(data.target)} → `{escape(data.ref)}` "
        f"*{record.state}* in {msg.duration(took)}"
    )


async def _targets(services: Services, look_up: bool) -> str:
    lines = []
    for name, tgt in sorted(services.catalog.targets.items()):
        running = ""
        if tgt.params.get("cluster") and tgt.params.get("service"):
            revision = await ecs_revision(tgt.params, look_up)
            running = f" — runs `{escape(revision)}`" if revision else ""
        lines.append(f"• {code(name)}: {escape(tgt.playbook.name)}{running}")
    return truncate("\n".join(lines) or "No targets in the catalog.", msg.SECTION_LIMIT - 20)


def forget_revision(params: dict[str, Any]) -> None:
    if params.get("cluster") and params.get("service"):
        key = (str(params.get("region")), str(params["cluster"]), str(params["service"]))
        _revisions.pop(key, None)


async def ecs_revision(params: dict[str, Any], look_up: bool = True) -> str:
    """The task definition an ECS service runs, best effort: cached, bounded in time; "" when
    not cached and not to be looked up."""
    key = (str(params.get("region")), str(params["cluster"]), str(params["service"]))
    hit = _revisions.get(key)
    if hit and time.monotonic() - hit[0] < REVISION_TTL:
        return hit[1]
    if not look_up:
        return hit[1] if hit else ""
    try:
        client = AwsClients(region=params.get("region")).client("ecs")
        found = await asyncio.wait_for(
            call(client, "describe_services", cluster=key[1], services=[key[2]]),
            REVISION_TIMEOUT,
        )
        arn = found["services"][0]["taskDefinition"]
        shown = arn.rsplit("/", 1)[-1]
    except Exception as exc:
        log.info("no revision for %s/%s on the Home tab: %s", key[1], key[2], exc)
        return "revision unknown"
    _revisions[key] = (time.monotonic(), shown)
    return shown
