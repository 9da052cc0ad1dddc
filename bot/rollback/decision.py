"""An Approve, Confirm or Reject click: whether the button belongs to the message it was
clicked on, who may decide, the move it makes (the table in `models`), and what follows:
the next approval awaited, a confirmation asked for, execution, or the target released."""

from __future__ import annotations

from bot.catalog import Target
from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.announce import announce_state
from bot.rollback.models import (
    APPROVAL_KEY,
    Act,
    JobKind,
    RollbackData,
    State,
    approvals_of,
    next_state,
)
from bot.services import Services
from bot.slack.notifier import SlackNotifier
from bot.slack.respond import Reply
from bot.slack.text import code, escape
from bot.store.audit import audit
from bot.store.base import Job, Record, now


async def decide(
    services: Services,
    rollback_id: str,
    user: str,
    act: Act,
    respond: Reply,
    message_ts: str = "",
) -> None:
    """A click on Approve (act APPROVE), Confirm (CONFIRM) or Reject (REJECT); checked against
    the catalog and the table on every click."""
    record = await _clicked_record(services, rollback_id, user, act, message_ts, respond)
    if record is None:
        return
    data = records.data_of(record)
    tgt = services.catalog.targets.get(data.target)
    refusal = await _decision_refusal(services.slack, tgt, data, user)
    counted = record.state == State.AWAITING_APPROVAL and user in approvals_of(record.data)
    if not refusal and act == Act.APPROVE and counted:
        refusal = _waiting_for(record, data, "You already approved this rollback")
    if refusal:
        await _refuse(services, user, rollback_id, act, refusal, respond)
        return
    if next_state(record.state, act) is None:
        await _refuse(services, user, rollback_id, act, _too_late(record, act), respond)
        return
    if act == Act.APPROVE:
        await _approve(services, rollback_id, data, user, respond)
    elif act == Act.CONFIRM:
        moved = await records.apply(services.store, rollback_id, act, user, confirmed_by=user)
        await _after_move(services, rollback_id, data, record.state, moved, user, respond)
    else:
        moved = await records.apply(
            services.store, rollback_id, act, user, approver=user, decided_at=now()
        )
        await _after_move(services, rollback_id, data, record.state, moved, user, respond)


async def _clicked_record(
    services: Services, rollback_id: str, user: str, act: Act, message_ts: str, respond: Reply
) -> Record | None:
    """The rollback whose own message carries the clicked button, or None (answered)."""
    if not records.ID.match(rollback_id):
        await audit(services.store, user, "rollback.forged_click", rollback_id[:64])
        await _tell(respond, "That button does not carry a rollback I know.")
        return None
    record = await services.store.get(rollback_id)
    if record is not None and record.state == State.REQUESTED:
        why = f"Rollback {code(rollback_id)} is still being prepared; try again in a moment."
        await _refuse(services, user, rollback_id, act, why, respond)
        return None
    # Approve lives on the approval message, Confirm on the confirmation message only.
    data = record.data if record else {}
    own = {
        Act.APPROVE: {data.get("approval_ts")},
        Act.CONFIRM: {data.get("confirm_ts")},
        Act.REJECT: {data.get("approval_ts"), data.get("confirm_ts")},
    }[act] - {"", None}
    if record is None or record.kind != "rollback" or not message_ts or message_ts not in own:
        await audit(services.store, user, "rollback.forged_click", rollback_id, act=act.value)
        await _tell(respond, "That approval button does not belong to any rollback I know.")
        return None
    return record


async def _approve(
    services: Services, rollback_id: str, data: RollbackData, user: str, respond: Reply
) -> None:
    """Count this approver; once enough distinct approvers are in, approve (or ask for the
    confirmation of a dangerous playbook)."""
    store, needed = services.store, data.approvals_needed
    mark = {APPROVAL_KEY + user: now()}
    quorum = Act.QUORUM_DANGEROUS if data.dangerous else Act.QUORUM
    if needed == 1:  # this one approval is all it takes: one move, one audit entry
        moved = await records.apply(
            store,
            rollback_id,
            quorum,
            user,
            approver=user,
            approved_by=[user],
            decided_at=now(),
            **mark,
        )
        await _after_move(
            services, rollback_id, data, State.AWAITING_APPROVAL, moved, user, respond
        )
        return
    counted = await records.apply(
        store, rollback_id, Act.APPROVE, user, "rollback.approval_counted", **mark
    )
    if counted is None:  # decided, cancelled or expired meanwhile
        current = await store.get(rollback_id)
        if current is not None:
            why = _too_late(current, Act.APPROVE)
            await _refuse(services, user, rollback_id, Act.APPROVE, why, respond)
        return
    approvers = approvals_of(counted.data)
    await services.slack.post(
        data.channel,
        f":ballot_box_with_check: <@{user}> approved the rollback of {escape(data.target)} "
        f"({min(len(approvers), needed)} of {needed} approvals).",
        thread_ts=data.thread_ts,
        subject=rollback_id,
        durable=True,
    )
    if len(approvers) < needed:
        await _tell(respond, _waiting_for(counted, data, "Your approval is counted"))
        return
    moved = await records.apply(
        store, rollback_id, quorum, user, approver=user, approved_by=approvers, decided_at=now()
    )
    await _after_move(services, rollback_id, data, State.AWAITING_APPROVAL, moved, user, respond)


async def _after_move(
    services: Services,
    rollback_id: str,
    data: RollbackData,
    was: str,
    moved: Record | None,
    user: str,
    respond: Reply,
) -> None:
    if moved is None:  # another click won the compare-and-set
        current = await services.store.get(rollback_id)
        state = current.state if current else "gone"
        await _tell(respond, f"Rollback {code(rollback_id)} is already {state}; nothing to do.")
        return
    await _after(services, rollback_id, records.data_of(moved), was, State(moved.state), user)
    await announce_state(services, rollback_id)


async def _after(
    services: Services, rollback_id: str, data: RollbackData, was: str, to: State, user: str
) -> None:
    """The decision is recorded: start the run, ask for the confirmation, or say it's off."""
    slack = services.slack
    if to in (State.APPROVED, State.REJECTED):  # decided: nothing left to remind or expire
        await services.store.cancel_job(f"{JobKind.APPROVAL}:{rollback_id}")
    if to == State.APPROVED:
        await schedule_execution(services, rollback_id)
    await slack.update(
        data.channel,
        data.confirm_ts if was == State.AWAITING_CONFIRMATION else data.approval_ts,
        f"Rollback {to.value} by {user}",
        msg.decided_blocks(data, to, user, data.approved_by),
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


def _waiting_for(record: Record, data: RollbackData, prefix: str) -> str:
    have = len(approvals_of(record.data))
    if record.state != State.AWAITING_APPROVAL:
        return f"{prefix}; rollback {code(record.id)} is {record.state}."
    return (
        f"{prefix}: {have} of {data.approvals_needed} approvals; rollback {code(record.id)} "
        f"waits for {data.approvals_needed - have} more approver(s) (not the requester)."
    )


def _too_late(record: Record, act: Act) -> str:
    """Why `act` does not apply to the rollback any more (or not yet)."""
    rid = code(record.id)
    if record.state == State.EXPIRED:
        return (
            f"Rollback {rid} expired: nobody decided in time, so nothing will run. "
            "Request it again if it is still needed."
        )
    if record.state == State.AWAITING_CONFIRMATION and act == Act.APPROVE:
        return (
            f"Rollback {rid} is already approved and waits for its *Confirm* click on the "
            "confirmation message; another Approve does not count."
        )
    return f"Rollback {rid} is already {record.state}; nothing to do."


async def _refuse(
    services: Services, user: str, rollback_id: str, act: Act, why: str, respond: Reply
) -> None:
    await audit(
        services.store, user, "rollback.decision_refused", rollback_id, act=act.value, why=why
    )
    await _tell(respond, why)


async def _tell(respond: Reply, text: str) -> None:
    await respond(response_type="ephemeral", replace_original=False, text=text)


async def _decision_refusal(
    slack: SlackNotifier, tgt: Target | None, data: RollbackData, user: str
) -> str:
    if tgt is None:
        return f"The target {code(data.target)} is no longer in the catalog."
    if not await is_approver(slack, user, tgt.approvers):
        return f"Only the approvers of {code(tgt.name)} can decide this rollback."
    # the two-person rule: with several approvals needed the requester never counts
    if user == data.requester and (not tgt.allow_self_approval or data.approvals_needed > 1):
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
