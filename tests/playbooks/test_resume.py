"""A run that died inside a changing step is resumed by checking real state, never repeated."""

from __future__ import annotations

from pathlib import Path

from bot.store.base import JournalEntry, now
from bot.store.sqlite import SqliteStore
from playbooks.runner import PlaybookRunner, resolve_uses, step_context
from tests.playbooks.test_ecs_playbooks import CLUSTER, target
from tests.testbed.aws import Aws, make_ecs_service, service_state


async def test_crash_inside_register_does_not_register_twice(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=2)
    tgt = target(tmp_path, "ecs-image", service="api")
    ctx = step_context(tgt, "v0-good")
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    # the first replica journaled the start, made the call, and died before journaling the end
    await store.journal_append(
        "rb-1", JournalEntry(at=now(), step=0, step_id="register", event="start")
    )
    await resolve_uses(tgt.steps[0], ctx.outputs, placeholder=False).run(ctx)
    revisions = aws.client("ecs").list_task_definitions(familyPrefix="api")["taskDefinitionArns"]
    assert len(revisions) == 3

    result = await PlaybookRunner(store, "rb-1").run(tgt.steps, step_context(tgt, "v0-good"))
    assert result.ok, result.error
    assert result.steps[0].output.get("resumed") is True
    after = aws.client("ecs").list_task_definitions(familyPrefix="api")["taskDefinitionArns"]
    assert len(after) == 3  # checked real state: no second registration
    assert service_state(aws, CLUSTER, "api")["taskDefinition"].endswith("api:3")
    await store.close()


async def test_finished_steps_are_skipped_and_unfinished_update_is_checked(
    aws: Aws, tmp_path: Path
) -> None:
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3)
    tgt = target(tmp_path, "ecs-revision", service="api")
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    first = await PlaybookRunner(store, "rb-2").run(tgt.steps[:1], step_context(tgt, "previous"))
    assert first.ok
    # died before the update step started: the resumed run does it, exactly once
    result = await PlaybookRunner(store, "rb-2").run(tgt.steps, step_context(tgt, "previous"))
    assert result.ok, result.error
    assert [s.outcome for s in result.steps] == ["skipped", "ok", "ok", "ok"]
    starts = [e.step_id for e in await store.journal("rb-2") if e.event == "start"]
    assert starts == ["resolve", "update", "stable", "health"]
    # a third run after success repeats nothing
    again = await PlaybookRunner(store, "rb-2").run(tgt.steps, step_context(tgt, "previous"))
    assert [s.outcome for s in again.steps] == ["skipped"] * 4
    await store.close()
