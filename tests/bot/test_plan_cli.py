"""`rollbot plan` against moto: prints the exact update-service call and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.testbed.aws import Aws, make_ecs_service, service_state


def run_plan(aws: Aws, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws.env, "ROLLBOT_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "plan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plan_prints_update_service_call_and_changes_nothing(aws: Aws, tmp_path: Path) -> None:
    arns = make_ecs_service(
        aws, "sandbox-broker-cluster", "sandbox-broker", "sandbox-broker", revisions=8
    )
    before = service_state(aws, "sandbox-broker-cluster", "sandbox-broker")
    config = tmp_path / "rollbot.yml"
    config.write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n    playbook: ecs-revision\n"
        "    cluster: sandbox-broker-cluster\n    service: sandbox-broker\n"
        "    region: eu-central-1\n"
    )
    result = run_plan(aws, config, "api")
    assert result.returncode == 0, result.stderr
    assert (
        f"ecs.update_service(cluster='sandbox-broker-cluster', service='sandbox-broker', "
        f"taskDefinition='{arns[6]}', forceNewDeployment=True)"
    ) in result.stdout
    result = run_plan(aws, config, "api", "--to", "3")
    assert f"taskDefinition='{arns[2]}'" in result.stdout
    after = service_state(aws, "sandbox-broker-cluster", "sandbox-broker")
    assert after["taskDefinition"] == before["taskDefinition"] == arns[7]
    assert after["deployments"] == before["deployments"]
    assert len(aws.client("ecs").list_task_definitions()["taskDefinitionArns"]) == 8


def test_plan_of_missing_revision_and_unknown_target(aws: Aws, tmp_path: Path) -> None:
    make_ecs_service(aws, "c", "api", "api", revisions=2)
    config = tmp_path / "rollbot.yml"
    config.write_text(
        "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n"
        "    playbook: ecs-revision\n    cluster: c\n    service: api\n"
    )
    result = run_plan(aws, config, "api", "--to", "9")
    assert result.returncode == 1
    assert "revision '9' of api is not an ACTIVE task definition (available: 1, 2)" in (
        result.stderr
    )
    result = run_plan(aws, config, "nope")
    assert result.returncode == 2 and "known: api" in result.stderr
