"""The plan an approval binds to: made when the rollback is requested, made again just before
it runs, and compared by the digest of its changing calls. A world that moved in between
changes nothing: the change is explained and the new plan goes back for approval."""

from __future__ import annotations

import logging
from typing import Any

from bot import metrics
from bot.catalog import Target
from bot.rollback import expiry, records
from bot.rollback import messaging as msg
from bot.rollback.announce import announce_state
from bot.rollback.models import APPROVAL_KEY, EXECUTING, Act, RollbackData, State, next_state
from bot.services import Services
from bot.slack.text import escape
from bot.store.audit import audit
from bot.store.base import Record, now
from playbooks.base import NothingToDo
from playbooks.runner import PlannedStep, plan, plan_digest, resolved_outputs, step_context

log = logging.getLogger(__name__)


async def make_plan(
    services: Services, tgt: Target, ref: str, approved: list[PlannedStep] | None = None
) -> list[PlannedStep]:
    """Every call the playbook would make now; NothingToDo when there is nothing to change."""
    ctx = step_context(tgt, ref, services.settings)
    if approved is not None:
        ctx.approved = resolved_outputs(approved)
    return await plan(tgt.steps, ctx)


def kept(planned: list[PlannedStep]) -> dict[str, Any]:
    """The plan as stored with the rollback, with its digest."""
    return {"plan": [p.to_dict() for p in planned], "plan_digest": plan_digest(planned)}


def approved_plan(data: RollbackData) -> list[PlannedStep]:
    return [PlannedStep.from_dict(i, p) for i, p in enumerate(data.plan)]


async def plan_still_holds(services: Services, record: Record) -> bool:
    """Before a rollback's first change: True when the plan made now is the approved one.
    Otherwise the rollback has ended (nothing to do, or the check failed) or gone back for
    approval, and nothing was changed."""
    data = records.data_of(record)
    tgt = services.catalog.targets.get(data.target)
    if tgt is None:
        return True  # the run reports the target's absence
    approved = approved_plan(data)
    try:
        now_planned = await make_plan(services, tgt, data.ref, approved)
    except NothingToDo as exc:
        await end_nothing_to_do(services, record.id, str(exc))
        return False
    except Exception as exc:  # an AWS error, a revision gone: report it, change nothing
        log.info("re-planning %s failed: %s", record.id, exc)
        await _not_checked(services, record.id, data, exc)
        return False
    if plan_digest(now_planned) == (data.plan_digest or plan_digest(approved)):
        return True
    await _ask_again(services, record, data, tgt, approved, now_planned)
    return False


async def end_nothing_to_do(services: Services, rollback_id: str, why: str) -> None:
    """Found before any change: the target already is as requested. Said, never hidden."""
    moved = await records.move(
        services.store,
        rollback_id,
        EXECUTING,
        State.SUCCEEDED,
        services.replica,
        finished_at=now(),
        checklist=[],
        current_step="",
    )
    if moved is None:
        return
    data = records.data_of(moved)
    await audit(services.store, services.replica, "rollback.nothing_to_do", rollback_id, why=why)
    metrics.rollbacks.labels(outcome=State.SUCCEEDED.value).inc()
    await services.slack.post(
        data.channel,
        f":white_check_mark: *NOTHING TO DO — {escape(data.target)}* (`{rollback_id}`): "
        f"{escape(why)}. Nothing was changed.",
        thread_ts=data.thread_ts,
        subject=rollback_id,
        broadcast=True,
        durable=True,
    )
    await records.release_target(services.store, data.target, rollback_id)


async def _not_checked(
    services: Services, rollback_id: str, data: RollbackData, exc: Exception
) -> None:
    error = f"the plan could not be made again before running: {exc}"
    moved = await records.move(
        services.store,
        rollback_id,
        {State.RUNNING},
        State.FAILED,
        services.replica,
        finished_at=now(),
        error=error,
    )
    if moved is None:
        return
    metrics.rollbacks.labels(outcome=State.FAILED.value).inc()
    await services.slack.post(
        data.channel,
        f":x: *ROLLBACK FAILED — {escape(data.target)}* (`{rollback_id}`): {escape(error)}."
        " Nothing was changed.",
        thread_ts=data.thread_ts,
        subject=rollback_id,
        broadcast=True,
        durable=True,
    )
    await records.release_target(services.store, data.target, rollback_id)


async def _ask_again(
    services: Services,
    record: Record,
    data: RollbackData,
    tgt: Target,
    approved: list[PlannedStep],
    now_planned: list[PlannedStep],
) -> None:
    """Back to awaiting approval with the new plan; the old message's buttons stop counting,
    and so do the approvals given to the old plan."""
    rollback_id = record.id
    withdrawn = {k: None for k in record.data if k.startswith(APPROVAL_KEY)}
    to = next_state(State.RUNNING, Act.REPLAN)
    assert to is not None
    patch = {
        **kept(now_planned),
        "approval_ts": "",
        "confirm_ts": "",
        "confirmed_by": "",
        "approver": "",
        "approved_by": [],
        "decided_at": None,
        **withdrawn,
    }
    moved = await records.move(
        services.store, rollback_id, {State.RUNNING}, to, services.replica, **patch
    )
    if moved is None:
        return
    changes = world_changes(approved, now_planned)
    await audit(
        services.store, services.replica, "rollback.replanned", rollback_id, changes=changes
    )
    slack, fresh = services.slack, records.data_of(moved)
    await slack.update(
        data.channel,
        data.approval_ts,
        "Approval superseded: the plan changed",
        [
            msg.section(
                ":arrows_counterclockwise: *Superseded* — the world changed before the run;"
                " a new plan waits for approval below."
            )
        ],
    )
    lines = "\n".join(f"• {escape(c)}" for c in changes)
    await slack.post(
        data.channel,
        f":arrows_counterclockwise: *The plan changed before the run — {escape(data.target)}*"
        f" (`{rollback_id}`). Nothing was changed.\n{lines}\nThe new plan needs a new approval.",
        thread_ts=data.thread_ts,
        subject=rollback_id,
        durable=True,
    )
    await expiry.arm(services, rollback_id, fresh)  # the new request waits, and expires, anew
    fresh.approval_ts = await slack.post(
        data.channel,
        f"Approval needed for rollback of {tgt.name} (new plan)",
        msg.approval_blocks(rollback_id, fresh, tgt.approvers),
        thread_ts=data.thread_ts,
        subject=rollback_id,
    )
    await services.store.update_data(rollback_id, {"approval_ts": fresh.approval_ts})
    await announce_state(services, rollback_id)


def world_changes(before: list[PlannedStep], after: list[PlannedStep]) -> list[str]:
    """What moved between the two plans: where things are now, then the changed calls."""
    said: list[str] = []
    old = {p.step_id: p for p in before}
    for step in after:
        was = old.get(step.step_id)
        seen = (step.output or {}).get("world")
        had = ((was.output if was else None) or {}).get("world")
        if seen and had and seen.get("on") != had.get("on"):
            said.append(
                f"{seen['subject']} is now on {seen['on']}, was {had['on']} when the plan was made"
            )
    for step in after:
        was = old.get(step.step_id)
        if step.mutating and (was is None or was.calls != step.calls):
            gone = [c for c in (was.calls if was else []) if c not in step.calls]
            new = [c for c in step.calls if c not in (was.calls if was else [])]
            said += [f"{step.title}: was `{c}`" for c in gone]
            said += [f"{step.title}: now `{c}`" for c in new]
    return said or ["the playbook's steps changed since the plan was made"]
