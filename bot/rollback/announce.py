"""The channel tells the story: after each state change the root announcement of a rollback is
edited to say where it stands (waiting for whom, which step, how it ended), and the Home tabs
of the people concerned are refreshed. `announce_state` is the one hook the flows call."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.rollback import messaging as msg
from bot.rollback import records
from bot.rollback.models import RollbackData, State
from bot.services import Services
from bot.store.base import Job, Record, now

log = logging.getLogger(__name__)

# The due-job refreshing the Home tabs of the people a rollback concerns (bot.rollback.home).
HOME_JOB = "rollback.home"
# A state that moves while its edit is on the way is announced again, at most this often.
MAX_ROUNDS = 3


@dataclass
class Headline:
    emoji: str
    text: str
    people_label: str = ""
    people: list[str] = field(default_factory=list)
    detail: str = ""


async def announce_state(services: Services, rollback_id: str) -> None:
    """Edit the root announcement to the rollback's current state; never raises.

    The edit is durable (the outbox keeps it, in order, when Slack is away). Two replicas may
    announce at once: each checks after its edit that the state it showed is still the latest
    and announces again if not, so the last edit shown is always the newest state."""
    try:
        await _announce(services, rollback_id)
    except Exception:
        log.exception("could not announce the state of %s", rollback_id)
    try:
        job = Job(
            id=f"{HOME_JOB}:{rollback_id}", kind=HOME_JOB, due_at=now(), payload={"id": rollback_id}
        )
        await services.store.schedule(job)
        services.wake_jobs()
    except Exception:
        log.exception("could not schedule the Home tab refresh for %s", rollback_id)


async def announce_job(services: Services, job: Job) -> None:
    """The due-job scheduled with a rollback's last move (see records.ANNOUNCE_JOB)."""
    await announce_state(services, job.payload["id"])


async def _announce(services: Services, rollback_id: str) -> None:
    shown = None
    for _ in range(MAX_ROUNDS):
        record = await services.store.get(rollback_id)
        if record is None or record.version == shown:
            return
        data = records.data_of(record)
        if not data.thread_ts:
            return
        text = root_text(services, record, data)
        await services.slack.update(
            data.channel, data.thread_ts, text, subject=rollback_id, durable=True
        )
        shown = record.version


def root_text(services: Services, record: Record, data: RollbackData) -> str:
    """The announcement as first posted, headed by the state it is in now."""
    tgt = services.catalog.targets.get(data.target)
    head = headline(record, data, tgt.approvers if tgt else [])
    return msg.render(
        "announcement",
        services.settings.rollbot_templates,
        target=data.target,
        id=record.id,
        reason=data.reason,
        severity=data.severity,
        playbook_description=tgt.playbook.spec.description if tgt else data.playbook,
        ref=data.ref,
        requested_at=msg.utc(record.created_at),
        expected_at=msg.utc(record.created_at + data.estimate_minutes * 60),
        estimate=f"{data.estimate_minutes:g}",
        impact=(tgt.settings.description if tgt else "") or f"service {data.target} is degraded",
        requester=data.requester,
        approvers=tgt.approvers if tgt else [],
        interval=msg.duration(services.settings.rollbot_status_interval),
        emoji=head.emoji,
        headline=head.text,
        people_label=head.people_label,
        people=[p for p in head.people if p],
        detail=head.detail,
    )


def headline(record: Record, data: RollbackData, approvers: list[str]) -> Headline:
    """Where a rollback stands, in the words and emoji the channel reads."""
    state, total = record.state, len(data.plan)
    if state == State.AWAITING_APPROVAL:
        return Headline(":hourglass_flowing_sand:", "WAITING FOR APPROVAL", "from", approvers)
    if state == State.AWAITING_CONFIRMATION:
        return Headline(
            ":warning:",
            "APPROVED, WAITING FOR A SECOND CONFIRMATION",
            "approved by",
            [data.approver],
        )
    if state == State.APPROVED:
        return Headline(":white_check_mark:", "APPROVED, STARTING", "by", [data.approver])
    if state in (State.RUNNING, State.VERIFYING):
        k = min(len([s for s in data.steps if s.outcome in ("ok", "skipped")]) + 1, total or 1)
        step = f"step {k} of {total}" + (f": {data.current_step}" if data.current_step else "")
        return Headline(
            ":arrows_counterclockwise:",
            f"RUNNING STEP {k} OF {total}",
            "approved by",
            [data.approver],
            step,
        )
    if state == State.SUCCEEDED:
        took = msg.duration((data.finished_at or now()) - (data.started_at or record.created_at))
        return Headline(
            ":white_check_mark:", f"COMPLETED IN {took}", "approved by", [data.approver]
        )
    if state == State.FAILED:
        failed = _failed_step(data)
        what = f"FAILED AT STEP {failed} OF {total}" if failed else "FAILED"
        return Headline(":x:", what, "", [], data.error[:300])
    if state == State.INTERRUPTED:
        failed = _failed_step(data)
        where = f" AT STEP {failed} OF {total}" if failed else ""
        return Headline(
            ":warning:", f"INTERRUPTED{where}: A PERSON MUST LOOK", "", [], data.error[:300]
        )
    if state == State.REJECTED:
        return Headline(":no_entry:", "REJECTED", "by", [data.approver] if data.approver else [])
    if state == State.CANCELLED:
        return Headline(":heavy_minus_sign:", "CANCELLED", "", [])
    if state == "expired":
        return Headline(":alarm_clock:", "EXPIRED WITHOUT A DECISION", "", [])
    return Headline(":rotating_light:", "ROLLBACK REQUESTED", "", [])


def _failed_step(data: RollbackData) -> int:
    failed = next((s for s in data.steps if s.outcome in ("failed", "interrupted")), None)
    return failed.index + 1 if failed else 0
