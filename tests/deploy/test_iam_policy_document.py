"""The policy document `rollbot iam-policy` prints: every declared action has a resource rule,
statements are scoped to the catalog's resources, and the command answers in one line when
there is nothing to print."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import playbooks.steps  # noqa: F401  (registers every step type)
from bot.catalog import load_catalog
from bot.cli import main
from bot.diagnose import sources
from bot.iam_policy import RULES, Grants, PolicyError, Where, build_policy
from playbooks.aws import AwsStep
from playbooks.base import STEP_TYPES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "rollbot.example.yml"
ACCOUNT = "123456789012"
MANAGED_POLICY_LIMIT = 6144  # characters, white space not counted


def example_policy(**kwargs: Any) -> dict[str, Any]:
    return build_policy(load_catalog(EXAMPLE), account=ACCOUNT, **kwargs)


def statements_of(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if action in s["Action"]]


def resources(statement: dict[str, Any]) -> list[str]:
    found = statement["Resource"]
    return [found] if isinstance(found, str) else found


def test_every_declared_action_has_a_resource_rule() -> None:
    steps = [cls for cls in STEP_TYPES.values() if issubclass(cls, AwsStep)]
    declared = {a for cls in steps for a in cls.aws_actions}
    declared |= {a for actions in sources.AWS_ACTIONS.values() for a in actions}
    assert declared, "no AWS action declared anywhere"
    assert declared <= set(RULES), f"without a rule: {sorted(declared - set(RULES))}"


def test_an_action_without_a_rule_is_refused() -> None:
    with pytest.raises(PolicyError, match="no IAM resource rule for ecs:DeleteService"):
        Grants().add(["ecs:DeleteService"], Where(region="eu-central-1", account=ACCOUNT))


def test_the_example_catalog_policy_is_scoped_and_well_formed() -> None:
    policy = example_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(":" in a and "*" not in a for a in statement["Action"])
        if "*" in resources(statement):
            # a statement of its own, saying why
            assert resources(statement) == ["*"]
            assert re.search(r"NoResourceLevel|SoAny", statement["Sid"]), statement
    (update,) = statements_of(policy, "ecs:UpdateService")
    assert set(resources(update)) == {
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:service/sandbox-broker-cluster/sandbox-broker",
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:service/sandbox-broker-cluster/sandbox-broker-worker",
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/replaydash-production-cluster/replaydash-production-api",
        f"arn:aws:ecs:us-east-2:{ACCOUNT}:service/pythonide-cluster/pythonide-service",
    }
    (modify,) = statements_of(policy, "elasticloadbalancing:ModifyListener")
    assert resources(modify) == [
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/replaydash/"
        "50dc6c495c0c9188/f2f7dc8efc522ab2"
    ]
    (restore,) = statements_of(policy, "rds:RestoreDBInstanceFromDBSnapshot")
    # the new instance only: never the one in use
    db = [r for r in resources(restore) if ":db:" in r]
    assert db == [f"arn:aws:rds:us-east-1:{ACCOUNT}:db:replaydash-production-db-restored"]
    (logs,) = statements_of(policy, "logs:FilterLogEvents")
    assert f"arn:aws:logs:eu-central-1:{ACCOUNT}:log-group:/ecs/sandbox-broker" in resources(logs)
    compact = json.dumps(policy, separators=(",", ":"))
    assert len(compact) <= MANAGED_POLICY_LIMIT, len(compact)


def test_one_target_gets_only_its_own_actions() -> None:
    policy = example_policy(target="worker-stop")  # ecs-scale, no log groups
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert "ecs:UpdateService" in actions and "ecs:DescribeServices" in actions
    assert not {a for a in actions if a.split(":")[0] in ("rds", "elasticloadbalancing", "logs")}
    assert "ecs:RegisterTaskDefinition" not in actions and "iam:PassRole" not in actions
    (update,) = statements_of(policy, "ecs:UpdateService")
    assert resources(update) == [
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:service/sandbox-broker-cluster/sandbox-broker-worker"
    ]


def test_pass_role_goes_only_to_ecs_tasks_and_to_the_roles_named() -> None:
    (open_ended,) = statements_of(example_policy(target="replaydash"), "iam:PassRole")
    assert resources(open_ended) == [f"arn:aws:iam::{ACCOUNT}:role/*"]
    assert open_ended["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    role = f"arn:aws:iam::{ACCOUNT}:role/replaydash-task"
    (named,) = statements_of(
        example_policy(target="replaydash", pass_roles=(role,)), "iam:PassRole"
    )
    assert resources(named) == [role]


def test_the_command_prints_the_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLBOT_CONFIG", str(EXAMPLE))
    assert main(["iam-policy", "--target", "api", "--account", ACCOUNT]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == example_policy(target="api")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("chat-full", "target chat-full calls no AWS API: no IAM policy is needed"),
        ("nope", "unknown target 'nope'; known: "),
    ],
)
def test_nothing_to_print_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    message: str,
) -> None:
    monkeypatch.setenv("ROLLBOT_CONFIG", str(EXAMPLE))
    assert main(["iam-policy", "--target", target]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"rollbot iam-policy: {message}")
    assert captured.err.count("\n") == 1
