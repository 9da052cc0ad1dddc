"""A request whose replica dies at any point of its preparation is ended by the watch job,
which exists before the target lock and the record do."""

from __future__ import annotations

from bot.rollback import records
from bot.rollback.models import RollbackData, State
from bot.rollback.status_jobs import preparation_watch
from bot.services import Services
from bot.store.base import Job, Store
from tests.testbed.slack_api import FakeSlackApi

REQUESTER = "U0REQUEST"


def watch_job(rollback_id: str) -> Job:
    data = RollbackData(target="api", playbook="ecs-revision", ref="previous", requester=REQUESTER)
    return Job(
        id=f"watch:{rollback_id}",
        kind="rollback.preparation",
        due_at=0,
        payload={"id": rollback_id, "data": data.model_dump(mode="json")},
    )


async def test_a_replica_that_died_before_writing_the_record_leaves_it_interrupted(
    services: Services, store: Store, fake_slack: FakeSlackApi
) -> None:
    rollback_id = records.new_id()
    assert await records.take_target(store, "api", rollback_id)  # then the replica died

    assert await preparation_watch(services, watch_job(rollback_id)) is None

    record = await store.get(rollback_id)
    assert record is not None and record.state == State.INTERRUPTED
    assert await store.lock_info(records.target_lock("api")) is None
    actions = [e.action for e in await store.audit_since(0)]
    assert actions[:2] == ["rollback.requested", "rollback.interrupted"]
    # the requester is told (durably: through the outbox, so a worker would deliver it)
    queued = [e.action for e in await store.audit_since(0) if e.subject == rollback_id]
    assert "slack.queued" in queued or "slack.post" in queued


async def test_a_request_still_being_prepared_is_left_alone(
    services: Services, store: Store
) -> None:
    rollback_id = records.new_id()
    await store.acquire_lock(records.prepare_lock(rollback_id), "other-replica", 60)

    assert await preparation_watch(services, watch_job(rollback_id)) is not None
    assert await store.get(rollback_id) is None
