"""Due-job worker: claims jobs from the store so each runs once, whichever replica is alive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot import metrics
from bot.store.base import Job, Store, now
from bot.store.outage import HEALTH, FailureLog, is_unavailable, retrying

log = logging.getLogger(__name__)

# A handler returns None when the job is finished, or the time it is next due.
JobHandler = Callable[[Job], Awaitable[float | None]]


class JobWorker:
    """Polls the store for due jobs and runs their handlers; survives handler failures."""

    def __init__(
        self,
        store: Store,
        owner: str,
        lease: float,
        tick: float = 0.5,
        batch: int = 10,
        max_running: int = 500,
    ) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        self.tick = tick
        self.batch = batch  # jobs claimed per store round trip
        self.max_running = max_running  # beyond this, leave due jobs to the other replicas
        self.handlers: dict[str, JobHandler] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._jobs: dict[asyncio.Task[Any], Job] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._failures = FailureLog("jobs")
        self._kind_failures: dict[str, FailureLog] = {}

    def on(self, kind: str, handler: JobHandler, component: str = "jobs") -> None:
        """Run `handler` for jobs of `kind`; its store outages are counted under `component`."""
        self.handlers[kind] = handler
        if component != "jobs":
            self._kind_failures[kind] = FailureLog(component)

    async def run(self) -> None:
        while not self._stop.is_set():
            if await self._claim():
                await asyncio.sleep(0)  # a full batch: more may be due, claim again at once
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _claim(self) -> bool:
        """Start the handlers of the jobs due now; True when a full batch came back."""
        room = min(self.batch, self.max_running - len(self._running))
        if room <= 0:
            return False
        try:
            jobs = await self.store.claim_due(self.owner, self.lease, limit=room)
        except Exception as exc:  # the store may be briefly unreachable: keep polling
            if is_unavailable(exc):
                self._failures.failed(exc)
            else:
                log.exception("claiming due jobs failed")
            return False
        self._failures.succeeded()
        if HEALTH.deferred:
            await self._write_deferred_audits()
        for job in jobs:
            task = asyncio.create_task(self._handle(job))
            self._running.add(task)
            self._jobs[task] = job
            task.add_done_callback(self._forget)
        return len(jobs) == room

    async def _write_deferred_audits(self) -> None:
        """Audit entries of requests refused while the store was away, now that it is back."""
        try:
            written = await HEALTH.flush(self.store)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("writing deferred audit entries failed")
            return
        log.info("audited %d request(s) refused while the state store was unreachable", written)

    async def _settle(self, job: Job, next_due: float | None) -> bool:
        """Complete or reschedule a job we hold, retrying through a short store outage for as
        long as our claim on it lasts (after that the job is due again anyway)."""
        until = now() + self.lease

        def settle() -> Awaitable[bool]:
            if next_due is None:
                return self.store.complete(job.id, self.owner)
            return self.store.reschedule(job.id, self.owner, next_due)

        try:
            return await retrying(settle, self._failures, while_=lambda: now() < until)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("settling job %s failed", job.id)
            return False  # its claim lapses and it is due again

    def wake(self) -> None:
        """Claim now rather than at the next tick: this replica just scheduled a job due now."""
        self._wake.set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop claiming; let running handlers finish for a while, then hand the rest back to
        the store as due now, so another replica takes them over at once."""
        self._stop.set()
        self._wake.set()
        if not self._running:
            return
        _, unfinished = await asyncio.wait(set(self._running), timeout=drain_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for task in unfinished:
            job = self._jobs.get(task)
            if job is not None:
                log.info("handing job %s back for another replica", job.id)
                try:
                    await self.store.reschedule(job.id, self.owner, now())
                except Exception as exc:  # its claim lapses and it is due again anyway
                    log.warning("could not hand job %s back: %s", job.id, exc)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            self._jobs.pop(task, None)  # a cancelled one is handed back by stop()

    async def _handle(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            log.error("no handler for job kind %s (%s); dropping it", job.kind, job.id)
            await self._settle(job, None)
            return
        try:
            next_due = await handler(job)
        except Exception as exc:
            metrics.jobs_run.labels(kind=job.kind, outcome="error").inc()
            if is_unavailable(exc):  # counted and logged once per interval, no traceback
                self._kind_failures.get(job.kind, self._failures).failed(exc)
                await self._settle(job, now() + min(self.lease, 5.0))
                return
            log.exception("job %s failed; retrying in %ss", job.id, self.lease)
            await self._settle(job, now() + min(self.lease, 30.0))
            return
        metrics.jobs_run.labels(kind=job.kind, outcome="ok").inc()
        if (kind_failures := self._kind_failures.get(job.kind)) is not None:
            kind_failures.succeeded()
        if next_due is None:
            await self._settle(job, None)
        elif await self._settle(job, next_due):
            # Wake for it on time instead of up to a tick late; any replica may still take it.
            asyncio.get_running_loop().call_later(max(0.0, next_due - now()), self.wake)
