"""An Approve, Confirm or Reject click: who may decide, the state it leads to (the table in
`models`), and what follows: execution, a second confirmation, or the release of the target."""

from __future__ import annotations

from bot.catalog import Target
from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.announce import announce_state
from bot.rollback.models import Act, JobKind, RollbackData, State, next_state, states_leading
from bot.services import Services
from bot.slack.notifier import SlackNotifier
from bot.slack.respond import Reply
from bot.slack.text import code, escape
from bot.store.audit import audit
from bot.store.base import Job, now


async def decide(
    services: Services,
    rollback_id: str,
    user: str,
    approve: bool,
    respond: Reply,
    message_ts: str = "",
) -> None:
    """An Approve or Reject click: checked against the catalog on every click."""
    if not records.ID.match(rollback_id):
        await audit(services.store, user, "rollback.forged_click", rollback_id[:64])
        await _tell(respond, "That button does not carry a rollback I know.")
        return
    record = await services.store.get(rollback_id)
    if record is not None and record.state == State.REQUESTED:
        await _tell(
            respond, f"Rollback {code(rollback_id)} is still being prepared; try again in a moment."
        )
        return
    # A button only decides the rollback whose approval (or confirmation) message carries it.
    own = {record.data.get("approval_ts"), record.data.get("confirm_ts")} if record else set()
    forged = record is not None and (not message_ts or message_ts not in own)
    if record is None or record.kind != "rollback" or forged:
        await audit(services.store, user, "rollback.forged_click", rollback_id)
        await _tell(respond, "That approval button does not belong to any rollback I know.")
        return
    data = records.data_of(record)
    tgt = services.catalog.targets.get(data.target)
    refusal = await _decision_refusal(services.slack, tgt, data, user)
    if refusal:
        await audit(services.store, user, "rollback.decision_refused", rollback_id, why=refusal)
        await _tell(respond, refusal)
        return
    act = _act(approve, data)
    confirming = approve and record.state == State.AWAITING_CONFIRMATION
    to = next_state(record.state, act)
    moved = None
    if to is not None:
        patch = {"confirmed_by": user} if confirming else {"approver": user, "decided_at": now()}
        sources = states_leading(act, to)
        moved = await records.move(services.store, rollback_id, sources, to, user, **patch)
    if to is None or moved is None:
        current = await services.store.get(rollback_id)
        state = current.state if current else "gone"
        await _tell(respond, f"Rollback {code(rollback_id)} is already {state}; nothing to do.")
        return
    await _after(services, rollback_id, data, record.state, to, user)
    await announce_state(services, rollback_id)


def _act(approve: bool, data: RollbackData) -> Act:
    if not approve:
        return Act.REJECT
    return Act.APPROVE_DANGEROUS if data.dangerous else Act.APPROVE


async def _after(
    services: Services, rollback_id: str, data: RollbackData, was: str, to: State, user: str
) -> None:
    """The decision is recorded: start the run, ask for the confirmation, or say it's off."""
    slack = services.slack
    if to == State.APPROVED:
        await schedule_execution(services, rollback_id)
    await slack.update(
        data.channel,
        data.confirm_ts if was == State.AWAITING_CONFIRMATION else data.approval_ts,
        f"Rollback {to.value} by {user}",
        msg.decided_blocks(data, to, user),
    )
    if to == State.AWAITING_CONFIRMATION:
        confirm_ts = await slack.post(
            data.channel,
            f"Second confirmation needed for {data.target}",
            msg.confirm_blocks(rollback_id, data, user),
            thread_ts=data.thread_ts,
            subject=rollback_id,
        )
        await services.store.update_data(rollback_id, {"confirm_ts": confirm_ts})
    elif to == State.REJECTED:
        await records.release_target(services.store, data.target, rollback_id)
        await slack.post(
            data.channel,
            f":no_entry: Rollback of {escape(data.target)} rejected by <@{user}>.",
            thread_ts=data.thread_ts,
            subject=rollback_id,
            broadcast=True,
            durable=True,
        )


async def _tell(respond: Reply, text: str) -> None:
    await respond(response_type="ephemeral", replace_original=False, text=text)


async def _decision_refusal(
    slack: SlackNotifier, tgt: Target | None, data: RollbackData, user: str
) -> str:
    if tgt is None:
        return f"The target {code(data.target)} is no longer in the catalog."
    if not await is_approver(slack, user, tgt.approvers):
        return f"Only the approvers of {code(tgt.name)} can decide this rollback."
    if user == data.requester and not tgt.allow_self_approval:
        return "You requested this rollback, so someone else has to approve it."
    return ""


async def is_approver(slack: SlackNotifier, user: str, approvers: list[str]) -> bool:
    """Named directly, or a member of an approving user group (resolved live, cached briefly)."""
    if user in approvers:
        return True
    for group in (a for a in approvers if a.startswith("S")):
        if user in await slack.group_members(group):
            return True
    return False


async def schedule_execution(services: Services, rollback_id: str) -> None:
    t = now()
    await services.store.schedule(
        Job(
            id=f"{JobKind.EXECUTE}:{rollback_id}",
            kind=JobKind.EXECUTE,
            due_at=t,
            payload={"id": rollback_id},
        )
    )
    await services.store.schedule(
        Job(
            id=f"{JobKind.STATUS}:{rollback_id}",
            kind=JobKind.STATUS,
            due_at=t + services.settings.rollbot_status_interval,
            payload={"id": rollback_id},
        )
    )
    services.wake_jobs()
