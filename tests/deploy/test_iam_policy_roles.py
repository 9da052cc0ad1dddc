"""`rollbot iam-policy --lookup-roles`: iam:PassRole names exactly the task and execution roles
of the task definitions the services run, read from ECS (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.testbed.aws import ACCOUNT, REGION, Aws

CLUSTER = "roles-cluster"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/api-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"


def service(aws: Aws, name: str, **roles: str) -> None:
    ecs = aws.client("ecs")
    if not ecs.describe_clusters(clusters=[CLUSTER])["clusters"]:
        ecs.create_cluster(clusterName=CLUSTER)
    arn = ecs.register_task_definition(
        family=name,
        containerDefinitions=[{"name": name, "image": f"{name}:v1", "memory": 512}],
        **roles,
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=name, desiredCount=1, taskDefinition=arn)


def catalog(tmp_path: Path, **targets: str) -> Path:
    path = tmp_path / "rollbot.yml"
    entries = {
        name: {"playbook": playbook, "cluster": CLUSTER, "service": name, "region": REGION}
        for name, playbook in targets.items()
    }
    path.write_text(json.dumps({"approvers": ["U0LEAD"], "channel": "C0INC", "targets": entries}))
    return path


def policy(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["iam-policy", "--account", ACCOUNT, "--lookup-roles", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out else None, out.err


def pass_role(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in document["Statement"] if "iam:PassRole" in s["Action"]]


def test_pass_role_names_the_roles_of_the_running_task_definitions(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service(aws, "api", taskRoleArn=TASK_ROLE, executionRoleArn=EXECUTION_ROLE)
    service(aws, "worker")  # names no role
    path = catalog(tmp_path, api="ecs-image", worker="ecs-image")
    monkeypatch.setenv("ROLLBOT_CONFIG", str(path))

    code, document, _ = policy(capsys)
    assert code == 0 and document is not None
    (statement,) = pass_role(document)
    assert statement["Resource"] == sorted([TASK_ROLE, EXECUTION_ROLE])
    passed_to = statement["Condition"]["StringEquals"]["iam:PassedToService"]
    assert passed_to == "ecs-tasks.amazonaws.com"

    # a revision of the worker passes no role: its policy grants none
    code, document, _ = policy(capsys, "--target", "worker")
    assert code == 0 and document is not None and pass_role(document) == []
    # roles given by hand are added to those found
    extra = f"arn:aws:iam::{ACCOUNT}:role/extra"
    code, document, _ = policy(capsys, "--target", "worker", "--pass-role", extra)
    assert [s["Resource"] for s in pass_role(document or {})] == [extra]


def test_a_failed_lookup_is_one_line(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLBOT_CONFIG", str(catalog(tmp_path, api="ecs-image")))
    code, document, err = policy(capsys)  # no such cluster in moto
    assert (code, document) == (1, None)
    assert err.startswith("rollbot iam-policy: ") and err.count("\n") == 1
    assert "ecs.describe_services" in err
