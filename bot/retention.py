"""Retention: once a day, whichever replica claims the due-job prunes diagnoses, step journals
and outbox leftovers older than ROLLBOT_RETENTION_DAYS. The audit log is kept."""

from __future__ import annotations

import logging

from bot.scheduler import JobWorker
from bot.services import Services
from bot.store.audit import audit
from bot.store.base import Job, Store, now

log = logging.getLogger(__name__)

JOB_KIND = "retention"
JOB_ID = "retention:daily"
EVERY = 86_400.0
FIRST_AFTER = 60.0  # the first pass a minute after start: not in the middle of start-up
DAY = 86_400.0


async def ensure_scheduled(store: Store) -> None:
    """Schedule the daily pass unless a replica already did (it then keeps its due time)."""
    if await store.get_job(JOB_ID) is None:
        await store.schedule(Job(id=JOB_ID, kind=JOB_KIND, due_at=now() + FIRST_AFTER))


async def prune_old(services: Services, _: Job) -> float:
    """One retention pass; returns when the next one is due."""
    days = services.settings.rollbot_retention_days
    pruned = await services.store.prune(now() - days * DAY)
    if pruned.diagnoses or pruned.journals or pruned.outbox:
        log.info(
            "retention (%g days): %d diagnoses, %d journals, %d outbox entries removed",
            days,
            pruned.diagnoses,
            pruned.journals,
            pruned.outbox,
        )
        counts = pruned.model_dump()
        await audit(services.store, services.replica, "retention.pruned", "", days=days, **counts)
    return now() + EVERY


def register(worker: JobWorker, services: Services) -> None:
    worker.on(JOB_KIND, lambda job: prune_old(services, job))
