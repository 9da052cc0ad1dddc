"""A moto server that checks IAM, resources included, for the least-privilege tests.

moto checks every request against the caller's IAM policies once its no-auth allowance is
used up (INITIAL_NO_AUTH_ACTION_COUNT, or POST /moto-api/reset-auth in server mode), but for
ECS, Elastic Load Balancing, RDS, CloudWatch Logs and CloudWatch it matches each statement's
`Resource` against "*" only: a statement scoped to an ARN never matches and the call is denied.
This server tells moto the ARN each call acts on, as the Service Authorization Reference names
it (one ARN per call, the first when a call names several), so a scoped policy is really
checked. Calls it knows no ARN for stay on "*". It also checks the permissions AWS checks
beside some calls (iam:PassRole for the roles a registered task definition names,
rds:AddTagsToResource for the tags of a restore), names CloudWatch's action as IAM does
and refuses JSON APIs in JSON.

Run as `python -m tests.testbed.moto_iam PORT`; it runs in its own process so switching IAM
checks on cannot reach the test session's shared moto server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

ECS_SERVICE_CALLS = {"DescribeServices", "UpdateService"}
LISTENER_CALLS = {"ModifyListener", "AddTags", "RemoveTags"}


def _name(value: str) -> str:
    """An ECS cluster or service given as a name or an ARN -> its name."""
    return value.rsplit("/", 1)[-1]


def _ecs(r: Any, action: str, arn: Callable[[str], str]) -> str:
    cluster = _name(r._get_param("cluster") or "default")
    if action in ECS_SERVICE_CALLS:
        service = r._get_param("service") or (r._get_param("services") or ["*"])[0]
        return arn(f"service/{cluster}/{_name(service)}")
    if action == "DescribeTasks":
        task = (r._get_param("tasks") or ["*"])[0]
        return arn(f"task/{cluster}/{_name(task)}")
    return "*"


def _elbv2(r: Any, action: str, arn: Callable[[str], str]) -> str:
    if action == "ModifyListener":
        return r._get_param("ListenerArn") or "*"
    if action in LISTENER_CALLS:
        return (r._get_param("ResourceArns") or ["*"])[0]
    return "*"


def _rds(r: Any, action: str, arn: Callable[[str], str]) -> str:
    if action in ("ListTagsForResource", "AddTagsToResource"):
        return r._get_param("ResourceName") or "*"
    name = r._get_param("DBInstanceIdentifier")
    return arn(f"db:{name}") if name else "*"


def _logs(r: Any, action: str, arn: Callable[[str], str]) -> str:
    group = r._get_param("logGroupName")
    return arn(f"log-group:{group}") if group else "*"


# moto names the action after the request's signing name; IAM's prefix differs for CloudWatch
SIGNING_TO_IAM = {"monitoring:": "cloudwatch:"}

RESOLVERS = {"ecs": _ecs, "elbv2": _elbv2, "rds": _rds, "logs": _logs}
IAM_PREFIX = {"elbv2": "elasticloadbalancing"}


def resource_of(response: Any) -> str:
    """The ARN moto's IAM check should match the caller's statements against."""
    service = getattr(response, "service_name", None) or ""
    resolve = RESOLVERS.get(service)
    if resolve is None:
        return "*"
    prefix = IAM_PREFIX.get(service, service)

    def arn(resource: str) -> str:
        return f"arn:aws:{prefix}:{response.region}:{response.current_account}:{resource}"

    try:
        return resolve(response, response._get_action(), arn)
    except Exception:  # a request moto cannot parse is refused later by moto itself
        return "*"


def _iam_prefixes(cls: Any) -> None:
    """Make moto check `cloudwatch:GetMetricData`, the action AWS checks, not
    `monitoring:GetMetricData`."""
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for signing, iam in SIGNING_TO_IAM.items():
            if self._action.startswith(signing):
                self._action = iam + self._action[len(signing) :]

    cls.__init__ = init


def _json_denials(cls: Any) -> None:
    """Refuse a JSON-protocol call (ECS, CloudWatch Logs) the way AWS does, with a JSON
    AccessDeniedException: moto answers every protocol with the XML error of query APIs, which
    a JSON client cannot read."""
    from moto.core.exceptions import JsonRESTError

    original = cls._raise_access_denied

    def deny(self: Any) -> None:
        headers = {k.lower(): v for k, v in self._headers.items()}
        if "x-amz-target" in headers and "json" in headers.get("content-type", ""):
            raise JsonRESTError(
                "AccessDeniedException",
                f"User: {self._access_key.arn} is not authorized to perform: {self._action}",
            )
        original(self)

    cls._raise_access_denied = deny


# What AWS checks beside the call itself, and moto does not: the roles a task definition names
# are passed to ECS tasks (iam:PassRole, with iam:PassedToService), and tags given to a restore
# are added to the new instance (rds:AddTagsToResource).
PASSED_ROLES = ("taskRoleArn", "executionRoleArn")
PASSED_TO = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}


def _may(request: Any, action: str, resource: str, context: dict[str, str]) -> bool:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    permitted = False
    for policy in request._access_key.collect_policies():
        verdict = IAMPolicy(policy).is_action_permitted(action, resource, None, context)
        if verdict == PermissionResult.DENIED:
            return False
        permitted = permitted or verdict == PermissionResult.PERMITTED
    return permitted


def _also_needed(request: Any, resource: str) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource, condition context) AWS also authorizes for this call."""
    if request._action == "ecs:RegisterTaskDefinition":
        body = json.loads(request._body or b"{}")
        roles = filter(None, (body.get(key) for key in PASSED_ROLES))
        return [("iam:PassRole", role, PASSED_TO) for role in roles]
    if request._action == "rds:RestoreDBInstanceFromDBSnapshot":
        if any(key.startswith("Tags.") for key in request._data):
            return [("rds:AddTagsToResource", resource, {})]
    return []


def _implicit_checks(cls: Any) -> None:
    original = cls.check_action_permitted

    def check(self: Any, resource: str) -> None:
        original(self, resource)
        for action, on, context in _also_needed(self, resource):
            if not _may(self, action, on, context):
                self._action = f"{action} on resource: {on}"
                self._raise_access_denied()

    cls.check_action_permitted = check


def main(port: int) -> None:
    from moto.core.responses import BaseResponse
    from moto.iam.access_control import IAMRequest, IAMRequestBase
    from moto.server import ThreadedMotoServer

    BaseResponse._determine_resource = resource_of  # type: ignore[attr-defined]
    _iam_prefixes(IAMRequestBase)
    _json_denials(IAMRequest)
    _implicit_checks(IAMRequest)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        server._thread.join()  # type: ignore[union-attr]  # until the test session stops us
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]))
