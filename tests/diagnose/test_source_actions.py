"""Every AWS evidence source calls only the IAM actions it declares in `sources.AWS_ACTIONS`:
each collector runs on seeded moto while the AWS layer records the actions of every call."""

from __future__ import annotations

from pathlib import Path

from bot.diagnose import sources
from bot.diagnose.capture import prepare
from playbooks.aws import recording_actions
from tests.diagnose.conftest import (
    ALB,
    seed_logs,
    seed_metrics,
    seed_service,
    target_of,
    write_catalog,
)
from tests.testbed.aws import Aws


async def test_each_aws_source_calls_only_what_it_declares(aws: Aws, tmp_path: Path) -> None:
    seed_service(aws)
    seed_logs(aws)
    seed_metrics(aws)
    tgt = target_of(write_catalog(tmp_path, diagnose={"load_balancer": ALB}))
    ctx, planned = prepare(tgt)
    checked = set()
    for name, collect in planned.items():
        kind = name.split(" ", 1)[0]
        if isinstance(collect, str) or kind not in sources.AWS_ACTIONS:
            continue
        with recording_actions() as called:
            await collect(ctx)
        assert called, f"{name}: no AWS call was recorded"
        undeclared = called - set(sources.AWS_ACTIONS[kind])
        assert not undeclared, f"{name} calls {sorted(undeclared)} without declaring them"
        checked.add(kind)
    assert checked == set(sources.AWS_ACTIONS)
