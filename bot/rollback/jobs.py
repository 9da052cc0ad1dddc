"""The due-jobs of the rollback domain, registered on the process's job worker."""

from __future__ import annotations

from bot.rollback import records
from bot.rollback.announce import HOME_JOB, announce_job
from bot.rollback.execution import execute
from bot.rollback.expiry import approval_watch
from bot.rollback.home import refresh_job
from bot.rollback.models import JobKind
from bot.rollback.status_jobs import preparation_watch, status_update
from bot.scheduler import JobWorker
from bot.services import Services
from bot.slack import outbox


def register(worker: JobWorker, services: Services) -> None:
    worker.on(JobKind.EXECUTE, lambda job: execute(services, job))
    worker.on(JobKind.STATUS, lambda job: status_update(services, job))
    worker.on(JobKind.PREPARATION, lambda job: preparation_watch(services, job))
    worker.on(JobKind.APPROVAL, lambda job: approval_watch(services, job))
    worker.on(HOME_JOB, lambda job: refresh_job(services, job))
    worker.on(records.ANNOUNCE_JOB, lambda job: announce_job(services, job))
    lease = services.settings.rollbot_lease_seconds
    worker.on(outbox.JOB_KIND, services.slack.outbox_drain(lease), component="outbox")
