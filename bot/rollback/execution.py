"""Executing a rollback's playbook (a due-job): one owner at a time under a lease, resumed by a
survivor when its replica dies, reported step by step and at the end."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from bot import metrics
from bot.rollback import messaging as msg
from bot.rollback import records, report
from bot.rollback.announce import announce_state
from bot.rollback.models import EXECUTING, TERMINAL, State, StepRecord
from bot.services import Services
from bot.slack.text import escape
from bot.store.base import Job, now
from playbooks.runner import PlaybookRunner, RunResult, StepResult, step_context


async def execute(services: Services, job: Job) -> float | None:
    """Run (or resume) the playbook; a later claimer only checks the executor is alive."""
    rollback_id = job.payload["id"]
    record = await services.store.get(rollback_id)
    if record is None or record.state in TERMINAL:
        return None
    lease = services.settings.rollbot_lease_seconds
    # One owner per execution, so even this replica re-claiming the job cannot run it twice.
    owner = f"{services.replica}:{secrets.token_hex(4)}"
    if not await services.store.acquire_lock(records.exec_lock(rollback_id), owner, lease):
        return now() + lease  # someone alive is executing it: look again later
    resumed = record.state in EXECUTING
    if record.state == State.APPROVED:
        record = await records.move(
            services.store,
            rollback_id,
            {State.APPROVED},
            State.RUNNING,
            services.replica,
            started_at=now(),
            executor=owner,
        )
    elif resumed:
        record = await services.store.update_data(rollback_id, {"executor": owner})
    if record is None or record.state not in EXECUTING:
        await services.store.release_lock(records.exec_lock(rollback_id), owner)
        return None
    heartbeat = asyncio.create_task(_heartbeat(services, rollback_id, owner, record.data["target"]))
    try:
        await Execution(services, rollback_id).run(resumed)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        await services.store.release_lock(records.exec_lock(rollback_id), owner)
    return None


async def _heartbeat(services: Services, rollback_id: str, owner: str, target: str) -> None:
    """Keep the executor lock and the target lock alive while the playbook runs."""
    lease = services.settings.rollbot_lease_seconds
    while True:
        await asyncio.sleep(lease / 3)
        await services.store.acquire_lock(records.exec_lock(rollback_id), owner, lease)
        await services.store.acquire_lock(
            records.target_lock(target), rollback_id, records.TARGET_LOCK_TTL
        )


class Execution:
    """One replica running one rollback's playbook and reporting on it."""

    def __init__(self, services: Services, rollback_id: str) -> None:
        self.services = services
        self.slack = services.slack
        self.id = rollback_id

    async def run(self, resumed: bool) -> None:
        store = self.services.store
        data = records.data_of(await store.get(self.id))  # type: ignore[arg-type]
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
            await store.update_data(self.id, {"current_step": data.current_step})
        if resumed:
            await self.slack.post(
                data.channel,
                f":recycle: Rollback `{self.id}` resumed by replica "
                f"{escape(self.services.replica)} after its executor stopped; steps that "
                "finished are not repeated.",
                thread_ts=data.thread_ts,
                subject=self.id,
                durable=True,
            )
        if not data.progress_ts:
            data.progress_ts = await self.slack.post(
                data.channel,
                f"Progress of {data.target}",
                msg.progress_blocks(self.id, data, self.step_ids, self.step_ids[0]),
                thread_ts=data.thread_ts,
                subject=self.id,
                durable=True,
            )
            await store.update_data(self.id, {"progress_ts": data.progress_ts})
        await announce_state(self.services, self.id)
        ctx = step_context(target, data.ref, self.services.settings)
        runner = PlaybookRunner(store, self.id, self._on_step)
        result = await runner.run(target.steps, ctx)
        await self._finish(result)

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
        await self.services.store.update_data(
            self.id, {"steps": [s.model_dump() for s in self.data.steps], "current_step": current}
        )
        if nxt and result.index + 1 == self.verify_from:
            await records.move(
                self.services.store,
                self.id,
                {State.RUNNING},
                State.VERIFYING,
                self.services.replica,
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
        to = (
            State.SUCCEEDED
            if result.ok
            else (State.INTERRUPTED if result.interrupted else State.FAILED)
        )
        checklist = _checklist(result, self.verify_from)
        record = await records.move(
            self.services.store,
            self.id,
            EXECUTING,
            to,
            self.services.replica,
            finished_at=now(),
            error=result.error,
            checklist=checklist,
            current_step="",
        )
        if record is None:
            return  # another replica already ended it
        metrics.rollbacks.labels(outcome=to.value).inc()
        data = records.data_of(record)
        text = msg.completion(
            self.services.settings.rollbot_templates,
            record,
            data,
            outcome=to,
            error=result.error,
            checklist=checklist,
            changes=self._changes(result),
            **self._failure(result),
        )
        blocks = [msg.section(text)]
        if not result.ok:
            blocks += msg.failure_actions(self.id, data)
        await self.slack.post(
            data.channel,
            text,
            blocks,
            thread_ts=data.thread_ts,
            subject=self.id,
            broadcast=True,
            durable=True,
        )
        await records.release_target(self.services.store, data.target, self.id)
        await announce_state(self.services, self.id)
        await self.slack.upload(
            data.channel,
            data.thread_ts,
            filename=f"incident-report-{self.id}.md",
            content=await report.incident_report(self.services, self.id),
            title=f"Incident report {self.id}",
            subject=self.id,
            durable=True,
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
        failed = next((s for s in result.steps if s.outcome in ("failed", "interrupted")), None)
        if failed is None:
            return {"failed_step": "", "failed_output": ""}
        return {
            "failed_step": f"{failed.index + 1} of {len(self.step_ids)}, {failed.title}",
            "failed_output": msg.output_tail(failed.output),
        }


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
