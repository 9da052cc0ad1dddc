"""The generated IAM policy is enough and nothing in it is spare: an IAM user holding exactly
`rollbot iam-policy` runs every shipped AWS playbook and /diagnose on a moto server that checks
IAM (resources included, see tests.testbed.moto_iam); with any one action taken out, the step
or source that needs it fails with a message naming that action, and nothing crashes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.catalog import Catalog, load_catalog
from bot.diagnose.capture import capture
from bot.iam_policy import build_policy, task_roles
from bot.store.sqlite import SqliteStore
from playbooks.aws import AwsClients, recording_actions
from playbooks.runner import PlaybookRunner, RunResult, step_context
from tests.testbed.alb import make_listener
from tests.testbed.aws import ACCOUNT, CREDENTIALS, REGION, Aws, make_ecs_service, put_log_lines
from tests.testbed.ports import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CLUSTER, LOG_GROUP = "iam-cluster", "/ecs/iam-api"
ALB = "app/iam-alb/50dc6c495c0c9188"
DB = "iam-db"
USER = "rollbot"


# ---------------------------------------------------------------- the IAM-checking moto


@pytest.fixture(scope="module")
def iam_endpoint() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # every service starts with its tasks running and its rollout COMPLETED (moto reads this
    # when a service is created); IAM checks stay off until a test has set up its world
    env.update(MOTO_ECS_SERVICE_RUNNING="2", INITIAL_NO_AUTH_ACTION_COUNT="inf")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.moto_iam", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _post(endpoint, "reset-auth", "inf") or True, 30, "moto with IAM")
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def _post(endpoint: str, path: str, body: str = "") -> str:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}",
        data=body.encode(),
        method="POST",
        # not a form: moto reads the raw body
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.read().decode()


@dataclass
class IamBed:
    """One test's world on the IAM-checking moto; `grant` hands the bot a user and turns the
    checks on, after which every AWS call of the process is the user's."""

    aws: Aws
    monkeypatch: pytest.MonkeyPatch

    def fresh(self) -> None:
        _post(self.aws.endpoint, "reset-auth", "inf")
        self.aws.reset()
        self._use({k: v for k, v in CREDENTIALS.items()})

    def grant(self, policy: dict[str, Any]) -> None:
        iam = boto3.client(
            "iam",
            endpoint_url=self.aws.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        iam.create_user(UserName=USER)
        arn = iam.create_policy(PolicyName="rollbot", PolicyDocument=json.dumps(policy))
        iam.attach_user_policy(UserName=USER, PolicyArn=arn["Policy"]["Arn"])
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        self._use(
            {
                **CREDENTIALS,
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_SESSION_TOKEN": None,
            }
        )
        # from here on, every request is checked against the user's policies
        _post(self.aws.endpoint, "reset-auth", "0")

    def _use(self, env: dict[str, str | None]) -> None:
        for name, value in {**env, "AWS_ENDPOINT_URL": self.aws.endpoint}.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        # boto3's default session keeps the first credentials it found
        boto3.setup_default_session()


@pytest.fixture
def bed(iam_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[IamBed]:
    for key in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    made = IamBed(Aws(iam_endpoint), monkeypatch)
    yield made
    _post(iam_endpoint, "reset-auth", "inf")
    boto3.DEFAULT_SESSION = None


# ---------------------------------------------------------------- the shipped AWS playbooks


def _ecs_target(playbook: str, **params: Any) -> dict[str, Any]:
    return {
        "playbook": playbook,
        "cluster": CLUSTER,
        "service": "api",
        "region": REGION,
        "log_groups": [LOG_GROUP],
        "poll_delay": 0.05,
        "poll_timeout": 5,
        "diagnose": {"load_balancer": ALB, "source_timeout": 5},
        **params,
    }


def _seed_ecs(aws: Aws, services: tuple[str, ...] = ("api",)) -> dict[str, str]:
    for service in services:
        make_ecs_service(aws, CLUSTER, service, service, revisions=3)
    ecs = aws.client("ecs")
    # a task of the service that stopped: /diagnose describes it
    taskdef = ecs.describe_services(cluster=CLUSTER, services=["api"])["services"][0]
    task = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=taskdef["taskDefinition"],
        launchType="FARGATE",
        group="service:api",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
    )["tasks"][0]["taskArn"]
    ecs.stop_task(cluster=CLUSTER, task=task, reason="OutOfMemoryError")
    put_log_lines(aws, LOG_GROUP, ["ERROR 500 upstream", "INFO fine"])
    return {}


TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/api-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"


def _seed_ecs_with_roles(aws: Aws) -> dict[str, str]:
    """The service runs a revision that names a task and an execution role."""
    _seed_ecs(aws)
    ecs = aws.client("ecs")
    running = ecs.describe_services(cluster=CLUSTER, services=["api"])["services"][0]
    taskdef = ecs.describe_task_definition(taskDefinition=running["taskDefinition"])
    spec = taskdef["taskDefinition"]
    arn = ecs.register_task_definition(
        family=spec["family"],
        containerDefinitions=spec["containerDefinitions"],
        taskRoleArn=TASK_ROLE,
        executionRoleArn=EXECUTION_ROLE,
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service="api", taskDefinition=arn)
    return {}


def _seed_alb(aws: Aws) -> dict[str, str]:
    return {"listener_arn": make_listener(aws, with_rule=True)["listener"]}


def _seed_rds(aws: Aws) -> dict[str, str]:
    rds = aws.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier=DB,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
    )
    rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier="nightly")
    return {}


@dataclass(frozen=True)
class Scenario:
    """Targets run in order with `ref`, after `seed` made their world."""

    seed: Callable[[Aws], dict[str, str]]
    targets: Callable[[dict[str, str]], dict[str, dict[str, Any]]]
    ref: str = "previous"
    # the task definitions name roles: the policy is made with --lookup-roles
    roles: bool = False
    # permissions of IMPLICIT the scenario's calls need
    implicit: frozenset[str] = frozenset()


SCENARIOS: dict[str, Scenario] = {
    "ecs-revision": Scenario(_seed_ecs, lambda _: {"api": _ecs_target("ecs-revision")}),
    "ecs-image": Scenario(_seed_ecs, lambda _: {"api": _ecs_target("ecs-image")}, ref="v1"),
    "ecs-env-override": Scenario(
        _seed_ecs,
        lambda _: {"api": _ecs_target("ecs-env-override", environment={"TORNADO": "1"})},
    ),
    "ecs-image-with-roles": Scenario(
        _seed_ecs_with_roles,
        lambda _: {"api": _ecs_target("ecs-image")},
        ref="v1",
        roles=True,
        implicit=frozenset({"iam:PassRole"}),
    ),
    "ecs-env-rollback": Scenario(_seed_ecs, lambda _: {"api": _ecs_target("ecs-env-rollback")}),
    "ecs-scale": Scenario(_seed_ecs, lambda _: {"api": _ecs_target("ecs-scale", desired_count=1)}),
    "ecs-restart": Scenario(
        _seed_ecs, lambda _: {"api": _ecs_target("ecs-restart", desired_count=2)}
    ),
    "ecs-multi-service": Scenario(
        lambda aws: _seed_ecs(aws, ("api", "worker")),
        lambda _: {"api": _ecs_target("ecs-multi-service", worker_service="worker")},
    ),
    # on, on again (already: reads the saved tag), then off from the tag
    "alb-maintenance": Scenario(
        _seed_alb,
        lambda seeded: {
            name: {"playbook": f"alb-maintenance-{mode}", "region": REGION, **seeded}
            for name, mode in (("on", "on"), ("on-again", "on"), ("off", "off"))
        },
    ),
    # the restore, then again: the copy exists, its tags tell it is ours
    "rds-restore": Scenario(
        _seed_rds,
        lambda _: {
            name: {
                "playbook": "rds-restore",
                "db_instance": DB,
                "region": REGION,
                "poll_delay": 0.05,
                "poll_timeout": 5,
            }
            for name in ("restore", "restore-again")
        },
        implicit=frozenset({"rds:AddTagsToResource"}),
    ),
}


@dataclass
class Outcome:
    """What the user could do: each run and capture, and every failure message."""

    policy: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, RunResult] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    called: set[str] = field(default_factory=set)  # by the playbooks and /diagnose
    called_by_runs: set[str] = field(default_factory=set)


def _catalog(tmp_path: Path, targets: dict[str, dict[str, Any]]) -> Catalog:
    path = tmp_path / "rollbot.yml"
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INCIDENTS", "targets": targets}
    path.write_text(json.dumps(catalog))  # JSON is YAML
    return load_catalog(path)


async def _run(tmp_path: Path, catalog: Catalog, name: str, ref: str) -> RunResult:
    store = SqliteStore(tmp_path / f"{name}.db")
    await store.connect()
    try:
        target = catalog.targets[name]
        return await PlaybookRunner(store, f"rb-{name}").run(
            target.steps, step_context(target, ref)
        )
    finally:
        await store.close()


async def attempt(
    bed: IamBed,
    tmp_path: Path,
    scenario: Scenario,
    edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda policy: policy,
) -> Outcome:
    """Set the world up, grant `edit(generated policy)`, run the targets in order (stopping at
    the first that fails: the next one builds on it) and /diagnose each."""
    bed.fresh()
    seeded = scenario.seed(bed.aws)
    # a journal of its own: an earlier attempt's journal would make the runner resume
    tmp_path = Path(tempfile.mkdtemp(prefix="attempt-", dir=tmp_path))
    catalog = _catalog(tmp_path, scenario.targets(seeded))
    roles = await task_roles(catalog, list(catalog.targets)) if scenario.roles else None
    outcome = Outcome(policy=build_policy(catalog, account=ACCOUNT, pass_roles=roles))
    bed.grant(edit(outcome.policy))
    with recording_actions() as by_runs:
        for name in catalog.targets:  # in the catalog's order
            result = await _run(tmp_path, catalog, name, scenario.ref)
            outcome.runs[name] = result
            if not result.ok:
                outcome.failures.append(result.error)
                break
    with recording_actions() as by_diagnose:
        for target in catalog.targets.values():
            clients = AwsClients(region=REGION, quick=True)
            found = await capture(target, clients=clients.client)
            outcome.failures += [s.error for s in found.sources.values() if s.status == "error"]
    # the permissions AWS checked beside the calls made
    riding = {p for p in scenario.implicit if IMPLICIT[p] in by_runs}
    outcome.called_by_runs = set(by_runs) | riding
    outcome.called = outcome.called_by_runs | by_diagnose
    return outcome


def without(action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(policy: dict[str, Any]) -> dict[str, Any]:
        smaller = copy.deepcopy(policy)
        for statement in smaller["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
        smaller["Statement"] = [s for s in smaller["Statement"] if s["Action"]]
        return smaller

    return edit


def granted(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


# Permissions AWS checks beside another call (and tests.testbed.moto_iam with it): never called
# by themselves. Permission -> the call it rides on.
IMPLICIT = {
    "iam:PassRole": "ecs:RegisterTaskDefinition",  # for each role the task definition names
    "rds:AddTagsToResource": "rds:RestoreDBInstanceFromDBSnapshot",  # for the Tags it carries
}
# moto answers a CBOR caller (CloudWatch) with an XML error it cannot read: the bot shows that
# body, which names the action, instead of its own sentence.
RAW_DENIALS = {"cloudwatch:GetMetricData"}
# The actions taken out one by one: those the playbooks call, and those /diagnose calls on the
# one scenario below (its sources make the same calls for every ECS target).
EXERCISED: dict[str, set[str]] = {}
DIAGNOSED_ALONE = "ecs-revision"


def exercised(name: str, outcome: Outcome) -> set[str]:
    return outcome.called if name == DIAGNOSED_ALONE else outcome.called_by_runs


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_generated_policy_is_enough(bed: IamBed, tmp_path: Path, name: str) -> None:
    outcome = await attempt(bed, tmp_path, SCENARIOS[name])
    assert not outcome.failures, outcome.failures
    assert all(r.ok for r in outcome.runs.values())
    assert outcome.called, "no AWS call was made"
    # nothing in the policy is spare: each action is called, or checked by AWS on one that is
    assert outcome.called <= granted(outcome.policy)
    assert granted(outcome.policy) - outcome.called <= set(IMPLICIT)
    if SCENARIOS[name].roles:
        (passing,) = [s for s in outcome.policy["Statement"] if "iam:PassRole" in s["Action"]]
        assert passing["Resource"] == sorted([EXECUTION_ROLE, TASK_ROLE])
    EXERCISED[name] = exercised(name, outcome)


async def test_moto_really_checks_the_policy(bed: IamBed, tmp_path: Path) -> None:
    """Without a grant the user can do nothing; a statement for another service is refused:
    the acceptance tests below would pass vacuously otherwise."""
    scenario = SCENARIOS["ecs-revision"]
    outcome = await attempt(bed, tmp_path, scenario, lambda _: _only("ecs:ListClusters"))
    assert not outcome.runs["api"].ok
    assert "ecs:DescribeServices" in outcome.runs["api"].error

    def elsewhere(policy: dict[str, Any]) -> dict[str, Any]:
        moved = copy.deepcopy(policy)
        for s in moved["Statement"]:
            if "ecs:UpdateService" in s["Action"]:
                s["Resource"] = s["Resource"].replace(":service/iam-cluster/", ":service/other/")
        return moved

    outcome = await attempt(bed, tmp_path, scenario, elsewhere)
    assert "ecs:DescribeServices" in outcome.runs["api"].error


async def test_pass_role_is_checked_for_each_role(bed: IamBed, tmp_path: Path) -> None:
    def other_role(policy: dict[str, Any]) -> dict[str, Any]:
        changed = copy.deepcopy(policy)
        for s in changed["Statement"]:
            if s["Action"] == ["iam:PassRole"]:
                s["Resource"] = [TASK_ROLE, f"arn:aws:iam::{ACCOUNT}:role/other"]
        return changed

    outcome = await attempt(bed, tmp_path, SCENARIOS["ecs-image-with-roles"], other_role)
    assert outcome.failures == [outcome.runs["api"].error]
    assert outcome.runs["api"].failed_step.step_id == "register"
    assert EXECUTION_ROLE in outcome.runs["api"].error
    assert "(grant iam:PassRole to its role)" in outcome.runs["api"].error


def _only(action: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": [action], "Resource": "*"}],
    }


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_action_is_needed_and_named_when_missing(
    bed: IamBed, tmp_path: Path, name: str
) -> None:
    scenario = SCENARIOS[name]
    if name not in EXERCISED:  # run alone: learn what the scenario calls first
        EXERCISED[name] = exercised(name, await attempt(bed, tmp_path, scenario))
    for action in sorted(EXERCISED[name]):
        outcome = await attempt(bed, tmp_path, scenario, without(action))
        assert outcome.failures, f"{name} succeeded without {action}"
        said = action if action in RAW_DENIALS else f"(grant {action} to its role)"
        for failure in outcome.failures:
            assert said in failure, f"without {action}: {failure}"
        # a refusal ends the run at that step, as a failure (never an interruption)
        for run in outcome.runs.values():
            assert run.ok or run.failed_step.outcome == "failed", run
