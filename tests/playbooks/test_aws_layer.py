"""The AWS layer's error sentences: one wording for steps and diagnose sources alike."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoRegionError

from playbooks.aws import AwsError, failure, iam_action, translated


def client_error(code: str, operation: str, retries: int = 0) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "User x is not authorized."},
        "ResponseMetadata": {"RetryAttempts": retries},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def test_iam_actions_use_the_iam_prefix_not_the_client_name() -> None:
    assert iam_action("elbv2", "ModifyListener") == "elasticloadbalancing:ModifyListener"
    assert iam_action("rds", "DescribeDBInstances") == "rds:DescribeDBInstances"
    assert iam_action("logs", "FilterLogEvents") == "logs:FilterLogEvents"


def test_a_denied_call_names_the_action_to_grant() -> None:
    denied = failure(client_error("AccessDenied", "ModifyListener"), "elbv2.modify_listener", "r")
    assert str(denied) == (
        "the bot's AWS identity may not call elbv2.modify_listener: User x is not authorized"
        " (grant elasticloadbalancing:ModifyListener to its role)"
    )
    assert (denied.code, denied.output) == ("AccessDenied", {"aws_error": "AccessDenied"})


def test_a_hint_explains_a_code_for_its_caller() -> None:
    error = client_error("DBInstanceNotFound", "DescribeDBInstances")
    hints = {"DBInstanceNotFound": "DB instance db was not found in r (DBInstanceNotFound)"}
    found = failure(error, "rds.describe_db_instances", "r", hints)
    assert str(found) == "DB instance db was not found in r (DBInstanceNotFound)"
    plain = failure(error, "rds.describe_db_instances", "r")
    assert str(plain) == (
        "rds.describe_db_instances failed: DBInstanceNotFound: User x is not authorized"
    )


def test_translated_turns_botocore_errors_into_one_sentence_without_a_chain() -> None:
    with pytest.raises(AwsError) as caught, translated("logs.filter_log_events", "r"):
        raise NoRegionError()
    assert str(caught.value) == "logs.filter_log_events: no AWS region: set `region` on the target"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
