"""A refusal names the action AWS refused, which is not always the call's own."""

from __future__ import annotations

from botocore.exceptions import ClientError

from playbooks.aws import failure


def refused(message: str, operation: str) -> ClientError:
    error = {"Error": {"Code": "AccessDeniedException", "Message": message}}
    return ClientError(error, operation)  # type: ignore[arg-type]


def test_a_refused_pass_role_asks_for_pass_role() -> None:
    role = "arn:aws:iam::123456789012:role/api-task"
    message = (
        "User: arn:aws:iam::123456789012:user/rollbot is not authorized to perform:"
        f" iam:PassRole on resource: {role}"
    )
    denied = failure(
        refused(message, "RegisterTaskDefinition"), "ecs.register_task_definition", "r"
    )
    assert str(denied).endswith("(grant iam:PassRole to its role)")
    assert role in str(denied)


def test_without_a_named_action_the_call_s_own_is_asked_for() -> None:
    denied = failure(refused("Access denied", "UpdateService"), "ecs.update_service", "r")
    assert str(denied).endswith("(grant ecs:UpdateService to its role)")
