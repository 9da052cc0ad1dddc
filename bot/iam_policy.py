"""The IAM policy the catalog needs, built from what the code declares.

Every AWS step names its IAM actions in `aws_actions` and every diagnose source kind in
`sources.AWS_ACTIONS`; this module turns those of a catalog's targets into one policy document
(`rollbot iam-policy`). Each action has a rule here saying which resources it is authorized on,
following the Service Authorization Reference: where AWS supports resource-level permissions
the statement names the target's cluster services, tasks, load balancer listener, DB instances
or log groups; where it does not, the action gets `"Resource": "*"` in a statement of its own
whose Sid says why. An action without a rule is an error, so a new step cannot slip through
with `*`. No action is ever a wildcard.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.catalog import Catalog, Target
from playbooks import aws
from playbooks.aws import AwsClients, AwsStep

PARTITION = "aws"
ANY = "*"
# Roles passed on by registering a task-definition revision go to ECS tasks and nowhere else.
PASSED_TO_ECS = {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


class PolicyError(Exception):
    """The policy cannot be built (an action without a rule, a target without AWS calls)."""


@dataclass(frozen=True)
class Where:
    """What one step (or the diagnose sources) works on, as far as the catalog tells."""

    region: str
    account: str
    cluster: str | None = None
    services: tuple[str, ...] = ()
    listener_arn: str | None = None
    db_instance: str | None = None
    restored_instance: str | None = None
    log_groups: tuple[str, ...] = ()
    pass_roles: tuple[str, ...] | None = None  # None: not known, any role of the account

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{self.region}:{self.account}:{resource}"


@dataclass(frozen=True)
class Rule:
    """How one action is authorized: the statement it goes in and the resources it names."""

    sid: str
    resources: Callable[[Where], list[str]]
    condition: dict[str, Any] | None = None


def _everything(_: Where) -> list[str]:
    return [ANY]


def _services(w: Where) -> list[str]:
    cluster = w.cluster or ANY
    return [w.arn("ecs", f"service/{cluster}/{s}") for s in w.services or (ANY,)]


def _tasks(w: Where) -> list[str]:
    return [w.arn("ecs", f"task/{w.cluster or ANY}/*")]


def _listener(w: Where) -> list[str]:
    return [w.listener_arn or w.arn("elasticloadbalancing", "listener/app/*")]


def _db(w: Where, name: str | None) -> str:
    return w.arn("rds", f"db:{name or ANY}")


def _instances(w: Where) -> list[str]:
    return [_db(w, w.db_instance), _db(w, w.restored_instance)]


def _restored(w: Where) -> list[str]:
    return [_db(w, w.restored_instance)]


def _snapshots(w: Where) -> list[str]:
    # snapshot names are chosen per request; the instance they belong to is scoped instead
    return [_db(w, w.db_instance), w.arn("rds", "snapshot:*")]


def _restore(w: Where) -> list[str]:
    # RDS also authorizes the snapshot read and the subnet, option and parameter groups the new
    # instance is created in; those are copied from the instance in use, so any of them
    return [
        _db(w, w.restored_instance),
        *(w.arn("rds", f"{kind}:*") for kind in ("snapshot", "subgrp", "og", "pg")),
    ]


def _log_groups(w: Where) -> list[str]:
    groups = w.log_groups or (ANY,)
    return [w.arn("logs", f"log-group:{g}{tail}") for g in groups for tail in ("", ":*")]


def _roles(w: Where) -> list[str]:
    # known and none: the task definitions name no role, so registering passes none
    if w.pass_roles is None:
        return [f"arn:{PARTITION}:iam::{w.account}:role/*"]
    return list(w.pass_roles)


NO_RESOURCE_ECS = Rule("EcsTaskDefinitionActionsSupportNoResourceLevelPermissions", _everything)
RULES: dict[str, Rule] = {
    "ecs:DescribeServices": Rule("EcsServicesOfTheTargets", _services),
    "ecs:UpdateService": Rule("EcsServicesOfTheTargets", _services),
    "ecs:DescribeTasks": Rule("EcsTasksOfTheTargetClusters", _tasks),
    "ecs:ListTasks": Rule(
        "EcsListTasksIsAuthorizedOnContainerInstancesNotServicesSoAny", _everything
    ),
    "ecs:DescribeTaskDefinition": NO_RESOURCE_ECS,
    "ecs:ListTaskDefinitions": NO_RESOURCE_ECS,
    "ecs:RegisterTaskDefinition": NO_RESOURCE_ECS,
    "iam:PassRole": Rule("PassTaskRolesOnlyToEcsTasks", _roles, PASSED_TO_ECS),
    "elasticloadbalancing:DescribeListeners": Rule(
        "LoadBalancerDescribeActionsSupportNoResourceLevelPermissions", _everything
    ),
    "elasticloadbalancing:DescribeRules": Rule(
        "LoadBalancerDescribeActionsSupportNoResourceLevelPermissions", _everything
    ),
    "elasticloadbalancing:DescribeTags": Rule(
        "LoadBalancerDescribeActionsSupportNoResourceLevelPermissions", _everything
    ),
    "elasticloadbalancing:ModifyListener": Rule("LoadBalancerListenersOfTheTargets", _listener),
    "elasticloadbalancing:AddTags": Rule("LoadBalancerListenersOfTheTargets", _listener),
    "elasticloadbalancing:RemoveTags": Rule("LoadBalancerListenersOfTheTargets", _listener),
    "rds:DescribeDBInstances": Rule("RdsInstanceInUseAndItsRestoredCopy", _instances),
    "rds:DescribeDBSnapshots": Rule("RdsSnapshotsOfTheInstanceInUse", _snapshots),
    "rds:RestoreDBInstanceFromDBSnapshot": Rule("RdsRestoreOnlyIntoTheNewInstance", _restore),
    "rds:AddTagsToResource": Rule("RdsTagsOfTheRestoredInstance", _restored),
    "rds:ListTagsForResource": Rule("RdsTagsOfTheRestoredInstance", _restored),
    "logs:FilterLogEvents": Rule("LogGroupsOfTheTargets", _log_groups),
    "cloudwatch:GetMetricData": Rule(
        "CloudWatchGetMetricDataSupportsNoResourceLevelPermissions", _everything
    ),
}


@dataclass
class Grants:
    """Action -> the resources it needs, gathered over steps and targets."""

    resources: dict[str, set[str]] = field(default_factory=dict)

    def add(self, actions: Iterable[str], where: Where) -> None:
        for action in actions:
            rule = RULES.get(action)
            if rule is None:
                raise PolicyError(
                    f"no IAM resource rule for {action}: add one to bot/iam_policy.py RULES"
                    " (from the Service Authorization Reference)"
                )
            named = rule.resources(where)
            if named:
                self.resources.setdefault(action, set()).update(named)

    def document(self) -> dict[str, Any]:
        grouped: dict[tuple[str, frozenset[str]], list[str]] = {}
        for action in sorted(self.resources):
            resources = self.resources[action]
            if ANY in resources:  # one "*" covers the rest
                resources = {ANY}
            grouped.setdefault((RULES[action].sid, frozenset(resources)), []).append(action)
        statements, seen = [], {}
        for (sid, resources), actions in grouped.items():
            seen[sid] = seen.get(sid, 0) + 1
            statement: dict[str, Any] = {
                "Sid": sid if seen[sid] == 1 else f"{sid}{seen[sid]}",
                "Effect": "Allow",
                "Action": actions,
                "Resource": sorted(resources) if len(resources) > 1 else next(iter(resources)),
            }
            condition = RULES[actions[0]].condition
            if condition:
                statement["Condition"] = condition
            statements.append(statement)
        return {"Version": "2012-10-17", "Statement": statements}


def _where(target: Target, step: Any, account: str, pass_roles: tuple[str, ...] | None) -> Where:
    params = target.params
    source = getattr(step, "db_instance", None) or params.get("db_instance")
    restored = (
        getattr(step, "new_instance_id", None)
        or params.get("restored_instance_id")
        or (f"{source}-restored" if source else None)
    )
    service = getattr(step, "service", None) or params.get("service")
    return Where(
        region=getattr(step, "region", None) or params.get("region") or ANY,
        account=account,
        cluster=getattr(step, "cluster", None) or params.get("cluster"),
        services=(service,) if service else (),
        listener_arn=getattr(step, "listener_arn", None) or params.get("listener_arn"),
        db_instance=source,
        restored_instance=restored,
        log_groups=tuple(str(g) for g in params.get("log_groups") or ()),
        pass_roles=pass_roles,
    )


def diagnose_actions(target: Target) -> list[str]:
    """The IAM actions of the /diagnose sources this target has."""
    from bot.diagnose import sources
    from bot.diagnose.capture import resolve_options

    options, _ = resolve_options(target)
    planned = sources.plan(target.params, options)
    kinds = {name.split(" ", 1)[0] for name, how in planned.items() if not isinstance(how, str)}
    return sorted({a for kind in kinds for a in sources.AWS_ACTIONS.get(kind, ())})


def target_grants(
    grants: Grants, target: Target, account: str = ANY, pass_roles: tuple[str, ...] | None = None
) -> None:
    """Add what `target`'s playbook steps and its /diagnose sources call."""
    for step in target.steps:
        if isinstance(step, AwsStep):
            grants.add(step.aws_actions, _where(target, step, account, pass_roles))
    grants.add(diagnose_actions(target), _where(target, None, account, pass_roles))


def build_policy(
    catalog: Catalog,
    target: str | None = None,
    account: str = ANY,
    pass_roles: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The policy document for one target, or for every target of the catalog. pass_roles:
    the roles iam:PassRole may pass (None: not known, any role of the account)."""
    if target is not None and target not in catalog.targets:
        raise PolicyError(f"unknown target {target!r}; known: {', '.join(catalog.names())}")
    names = [target] if target else catalog.names()
    grants = Grants()
    for name in names:
        target_grants(grants, catalog.targets[name], account, pass_roles)
    if not grants.resources:
        which = f"target {target}" if target else "no target of the catalog"
        raise PolicyError(f"{which} calls no AWS API: no IAM policy is needed")
    return grants.document()


def _passing_steps(target: Target) -> list[AwsStep]:
    return [s for s in target.steps if isinstance(s, AwsStep) and "iam:PassRole" in s.aws_actions]


async def task_roles(catalog: Catalog, names: list[str]) -> tuple[str, ...]:
    """The task and execution roles named by the task definitions the targets' services run
    now: the roles registering a changed revision of them passes on."""
    roles: set[str] = set()
    for name in names:
        target = catalog.targets.get(name)
        for step in _passing_steps(target) if target else ():
            cluster = getattr(step, "cluster", None) or target.params.get("cluster")
            service = getattr(step, "service", None) or target.params.get("service")
            region = step.region or target.params.get("region")
            ecs = AwsClients(region=region, quick=True).client("ecs")
            found = await aws.call(ecs, "describe_services", cluster=cluster, services=[service])
            for running in found.get("services", []):
                answer = await aws.call(
                    ecs, "describe_task_definition", taskDefinition=running["taskDefinition"]
                )
                taskdef = answer["taskDefinition"]
                roles |= {taskdef.get("taskRoleArn"), taskdef.get("executionRoleArn")} - {None, ""}
    return tuple(sorted(roles))


def print_policy(
    settings: Any,
    target: str | None,
    account: str,
    pass_roles: list[str] | None,
    lookup_roles: bool = False,
) -> int:
    """`rollbot iam-policy`: the document on stdout, a problem as one line on stderr."""
    from bot.catalog import load_catalog

    catalog = load_catalog(settings.rollbot_config)
    roles = tuple(pass_roles) if pass_roles else None
    try:
        if lookup_roles:
            names = [target] if target else catalog.names()
            roles = tuple(sorted({*(roles or ()), *asyncio.run(task_roles(catalog, names))}))
        policy = build_policy(catalog, target, account or ANY, roles)
    except (PolicyError, aws.AwsError) as exc:
        print(f"rollbot iam-policy: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(policy, indent=2))
    return 0
