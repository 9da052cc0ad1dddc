"""Executing a rollback's playbook (a due-job): one owner at a time under a lease, resumed by a
survivor when its replica dies, reported step by step and at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot import metrics
from bot.rollback import messaging as msg
from bot.rollback import records, report
from bot.rollback.announce import announce_state
from bot.rollback.lease import ClaimedJournal, ExecutionLease, LeaseLost
from bot.rollback.models import EXECUTING, TERMINAL, State, StepRecord
from bot.rollback.plans import approved_plan, end_nothing_to_do, plan_still_holds
from bot.services import Services
from bot.slack.text import escape
from bot.store.audit import audit_entry
from bot.store.base import ExecutionClaim, Job, Record, now
from bot.store.outage import HEALTH
from playbooks.base import Step
from playbooks.journal import RunStopped
from playbooks.runner import PlaybookRunner, RunResult, StepResult, step_context

log = logging.getLogger(__name__)
T = TypeVar("T")


async def execute(services: Services, job: Job) -> float | None:
    """Run (or resume) the playbook; a later claimer only checks the executor is alive."""
    rollback_id = job.payload["id"]
    store = services.store
    record = await store.get(rollback_id)
    if record is None or record.state in TERMINAL:
        return None
    ttl = services.settings.rollbot_lease_seconds
    if record.state in EXECUTING and HEALTH.recovered_within(ttl):
        # Every lease lapsed while the store was away: its executor gets a full lease, from
        # when the store came back, to renew its claim before anyone takes over.
        return now() + ttl / 2
    # One owner per execution, so even this replica re-claiming the job cannot run it twice.
    owner = f"{services.replica}:{secrets.token_hex(4)}"
    claim = await store.claim_execution(rollback_id, owner, ttl)
    if claim is None:
        return now() + ttl  # someone alive is executing it: look again later
    lease = ExecutionLease(store, rollback_id, owner, claim.token, ttl, record.data["target"])
    heartbeat = asyncio.create_task(lease.keep())
    try:
        takeover = _takeover_text(claim) if record.state in EXECUTING else ""
        record = await _start(services, lease, record.state, takeover)
        if record is None or record.state not in EXECUTING:
            return None
        if not await _plan_holds(services, record):
            return None  # asked for approval again, or ended as nothing to do
        await Execution(services, rollback_id, lease).run(takeover)
    except RunStopped as exc:
        # a fenced write or a lapsed claim: whoever holds the newer claim carries on
        log.warning("rollback %s: executor %s stopped before the end: %s", rollback_id, owner, exc)
        return now()
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        with contextlib.suppress(Exception):  # else the claim simply lapses
            await store.release_execution(rollback_id, owner, claim.token)
    return None


async def _plan_holds(services: Services, record: Record) -> bool:
    """Before the first change: the plan made now must be the approved one. Once a change
    step has started, each further change is checked against it by the runner instead."""
    data = records.data_of(record)
    changing = {p["step_id"] for p in data.plan if p.get("mutating")}
    journal = await services.store.journal(record.id)
    if any(entry.step_id in changing for entry in journal):
        return True
    return await plan_still_holds(services, record)


async def _start(services: Services, lease: ExecutionLease, state: str, takeover: str) -> Any:
    """Move an approved rollback to running, or note (and audit) a takeover of a running one."""
    store, rollback_id, owner, token = services.store, lease.rollback_id, lease.owner, lease.token
    if state == State.APPROVED:
        return await lease.write(
            lambda: records.move(
                store,
                rollback_id,
                {State.APPROVED},
                State.RUNNING,
                services.replica,
                fence=token,
                started_at=now(),
                executor=owner,
            )
        )
    if state not in EXECUTING:
        return await lease.write(lambda: store.get(rollback_id))
    record = await lease.write(
        lambda: store.update_data(rollback_id, {"executor": owner}, fence=token)
    )
    if takeover:
        entry = audit_entry(
            services.replica,
            "execution.takeover",
            rollback_id,
            executor=owner,
            claim=token,
            replaced=takeover,
        )
        await lease.write(lambda: store.audit(entry))
    return record


def _takeover_text(claim: ExecutionClaim) -> str:
    """Whom a claim replaced, and why."""
    if not claim.previous_owner or claim.previous_expires_at is None:
        return "an executor that left no claim"
    ago = max(0.0, now() - claim.previous_expires_at)
    return (
        f"executor {claim.previous_owner} (claim {claim.token - 1}), whose lease ran out "
        f"{ago:.1f}s earlier without being renewed"
    )


class Execution:
    """One replica running one rollback's playbook and reporting on it."""

    def __init__(self, services: Services, rollback_id: str, lease: ExecutionLease) -> None:
        self.services = services
        self.slack = services.slack
        self.id = rollback_id
        self.lease = lease
        self.fence = lease.token
        self.in_change = False  # a changing step is running: it finishes even if replaced

    def _write(self, call: Callable[[], Awaitable[T]], *, until_back: bool = False) -> Awaitable[T]:
        return self.lease.write(call, until_back=until_back)

    async def run(self, takeover: str) -> None:
        store = self.services.store
        data = records.data_of(await self._write(lambda: store.get(self.id)))  # type: ignore[arg-type]
        self.data = data
        target = self.services.catalog.targets.get(data.target)
        if target is None:
            self.verify_from, self.step_ids, self.mutating = 0, [], set()
            await self._finish(RunResult(False, [], f"target {data.target} left the catalog"))
            return
        self.step_ids = [s.id for s in target.steps]
        self.mutating = {s.id for s in target.steps if s.mutating}
        self.titles = [s.title() for s in target.steps]
        self.verify_from = _verification_start(target.steps)
        if not data.current_step:
            data.current_step = self.titles[0]
            current = {"current_step": data.current_step}
            await self._write(lambda: store.update_data(self.id, current, fence=self.fence))
        if takeover:
            text = (
                f":recycle: Rollback `{self.id}` resumed by replica "
                f"{escape(self.services.replica)} after its executor stopped: it replaced "
                f"{escape(takeover)}. Steps that finished are not repeated."
            )
            await self._write(
                lambda: self.slack.post(
                    data.channel, text, thread_ts=data.thread_ts, subject=self.id, durable=True
                )
            )
        if not data.progress_ts:
            blocks = msg.progress_blocks(self.id, data, self.step_ids, self.step_ids[0])
            data.progress_ts = await self._write(
                lambda: self.slack.post(
                    data.channel,
                    f"Progress of {data.target}",
                    blocks,
                    thread_ts=data.thread_ts,
                    subject=self.id,
                    durable=True,
                )
            )
            progress = {"progress_ts": data.progress_ts}
            await self._write(lambda: store.update_data(self.id, progress, fence=self.fence))
        await announce_state(self.services, self.id)
        ctx = step_context(target, data.ref, self.services.settings)
        journal = ClaimedJournal(self.lease)
        # every change step is checked against the approved plan just before it runs
        runner = PlaybookRunner(
            journal, self.id, self._on_step, approved_plan(data), before_step=self._before_step
        )
        result = await self._run_guarded(runner.run(target.steps, ctx))
        await self._finish(result)

    async def _before_step(self, step: Step) -> None:
        await self.lease.before_step(step.mutating)
        self.in_change = step.mutating

    async def _run_guarded(self, run: Awaitable[RunResult]) -> RunResult:
        """Run the steps; once replaced, a read-only step stops at once (a changing one
        finishes, and its end is refused by the store)."""
        task = asyncio.ensure_future(run)
        self.lease.on_lost = lambda: None if self.in_change else task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.lease.lost and not (current and current.cancelling()):
                raise LeaseLost(self.lease.lost_reason) from None
            raise
        finally:
            self.lease.on_lost = lambda: None

    async def _on_step(self, result: StepResult, total: int) -> None:
        record = StepRecord(
            index=result.index,
            step_id=result.step_id,
            title=result.title,
            outcome=result.outcome,
            seconds=result.seconds,
            error=result.error,
            output=result.output,
        )
        self.data.steps = [s for s in self.data.steps if s.step_id != record.step_id] + [record]
        nxt = self.step_ids[result.index + 1] if result.index + 1 < total else ""
        current = self.titles[result.index + 1] if nxt else ""
        self.data.current_step = current
        patch = {"steps": [s.model_dump() for s in self.data.steps], "current_step": current}
        store = self.services.store
        await self._write(lambda: store.update_data(self.id, patch, fence=self.fence))
        if nxt and result.index + 1 == self.verify_from:
            await self._write(
                lambda: records.move(
                    store,
                    self.id,
                    {State.RUNNING},
                    State.VERIFYING,
                    self.services.replica,
                    fence=self.fence,
                )
            )
        if self.data.progress_ts:
            await self.slack.update(
                self.data.channel,
                self.data.progress_ts,
                "Rollback progress",
                msg.progress_blocks(self.id, self.data, self.step_ids, nxt),
            )
        await announce_state(self.services, self.id)

    async def _finish(self, result: RunResult) -> None:
        data = self.data
        if result.nothing_to_do:
            await end_nothing_to_do(self.services, self.id, result.nothing_to_do)
            return
        to = (
            State.SUCCEEDED
            if result.ok
            else (State.INTERRUPTED if result.interrupted else State.FAILED)
        )
        checklist = _checklist(result, self.verify_from)
        store = self.services.store
        record = await self._write(
            lambda: records.move(
                store,
                self.id,
                EXECUTING,
                to,
                self.services.replica,
                fence=self.fence,
                finished_at=now(),
                error=result.error,
                checklist=checklist,
                current_step="",
            )
        )
        if record is None:
            return  # another replica already ended it
        metrics.rollbacks.labels(outcome=to.value).inc()
        data = records.data_of(record)
        full = msg.completion(
            self.services.settings.rollbot_templates,
            record,
            data,
            outcome=to,
            error=result.error,
            checklist=checklist,
            changes=self._changes(result),
            **self._failure(result),
        )
        text, blocks, complete = msg.completion_message(full)
        if not result.ok:
            blocks += msg.failure_actions(self.id, data)
        # The rollback has ended: what follows is reported even across a store outage.
        await self._write(
            lambda: self.slack.post(
                data.channel,
                text,
                blocks,
                thread_ts=data.thread_ts,
                subject=self.id,
                broadcast=True,
                durable=True,
            ),
            until_back=True,
        )
        await self._write(
            lambda: records.release_target(store, data.target, self.id), until_back=True
        )
        await announce_state(self.services, self.id)
        for filename, title, text in self._full_texts(result, full, complete):
            await self._write(
                lambda f=filename, t=title, c=text: self.slack.attach(
                    data.channel,
                    data.thread_ts,
                    filename=f,
                    content=c,
                    title=t,
                    subject=self.id,
                    durable=True,
                ),
                until_back=True,
            )
        content = await self._write(
            lambda: report.incident_report(self.services, self.id), until_back=True
        )
        await self._write(
            lambda: self.slack.attach(
                data.channel,
                data.thread_ts,
                filename=f"incident-report-{self.id}.md",
                content=content,
                title=f"Incident report {self.id}",
                subject=self.id,
                durable=True,
            ),
            until_back=True,
        )

    def _changes(self, result: RunResult) -> list[dict[str, str]]:
        """What the changing steps did, e.g. the revision deployed or the workflow run's link."""
        return [
            {"name": s.title, "detail": msg.output_summary(s.output)}
            for s in result.steps
            if s.step_id in self.mutating and s.outcome in ("ok", "skipped")
        ]

    def _failure(self, result: RunResult) -> dict[str, str]:
        """Which step stopped the playbook, and the tail of what its command printed."""
        failed = _failed_step(result)
        if failed is None:
            return {"failed_step": "", "failed_output": "", "failed_output_note": ""}
        return {
            "failed_step": f"{failed.index + 1} of {len(self.step_ids)}, {failed.title}",
            "failed_output": msg.output_tail(failed.output),
            "failed_output_note": msg.output_note(failed.output),
        }

    def _full_texts(
        self, result: RunResult, completion: str, complete: bool
    ) -> list[tuple[str, str, str]]:
        """(filename, title, content) of what the completion message could not hold whole."""
        files = []
        if not complete:
            files.append((f"completion-{self.id}.md", f"Completion {self.id}", completion))
        failed = _failed_step(result)
        if failed is not None and msg.output_note(failed.output):
            title = f"Output of step {failed.index + 1}, {failed.title}"
            content = msg.failure_output(failed.output) + "\n"
            files.append((f"failed-output-{self.id}.txt", title, content))
        return files


def _failed_step(result: RunResult) -> StepResult | None:
    return next((s for s in result.steps if s.outcome in ("failed", "interrupted")), None)


def _verification_start(steps: list[Any]) -> int:
    """Steps after the last change are the verification the runbooks ask for."""
    last = max((i for i, s in enumerate(steps) if s.mutating), default=-1)
    return last + 1


def _checklist(result: RunResult, verify_from: int) -> list[dict[str, Any]]:
    items = []
    for step in result.steps:
        if step.index < verify_from:
            continue
        items.append(
            {
                "name": step.title,
                "ok": step.outcome in ("ok", "skipped"),
                "detail": step.error or msg.output_summary(step.output),
            }
        )
    return items
