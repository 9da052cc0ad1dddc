"""What moto cannot show (stopped tasks with times, percentile statistics), with botocore's
Stubber answering in the shape of real ECS and CloudWatch responses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bot.diagnose import sources
from bot.diagnose.matrix import Thresholds, evaluate, figures
from bot.diagnose.models import SourceResult
from playbooks.aws import AwsError
from playbooks.redact import Redactor

NOW = datetime.now(UTC)
TASK_ARN = "arn:aws:ecs:eu-central-1:123456789012:task/prod/{}"
TD_ARN = "arn:aws:ecs:eu-central-1:123456789012:task-definition/api:7"


def context(client: Any, **options: Any) -> sources.SourceContext:
    return sources.SourceContext(
        params={"cluster": "prod", "service": "api"},
        options=sources.Options(**options),
        start=NOW - timedelta(minutes=10),
        end=NOW,
        timeout=5,
        redactor=Redactor(),
        client=lambda service: client,
    )


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecs", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def stopped_task(n: int, minutes_ago: float | None, group: str = "service:api") -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskArn": TASK_ARN.format(f"{n:032x}"),
        "taskDefinitionArn": TD_ARN,
        "group": group,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [
            {"name": "api", "exitCode": 137, "reason": "OutOfMemoryError: Container killed"}
        ],
    }
    if minutes_ago is not None:
        task["stoppedAt"] = NOW - timedelta(minutes=minutes_ago)
    return task


async def test_restarts_count_tasks_stopped_in_the_window(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    tasks = [stopped_task(i, minutes_ago=i) for i in range(7)]  # 0..6 minutes ago
    tasks += [stopped_task(10, minutes_ago=45), stopped_task(11, None)]
    tasks += [stopped_task(12, minutes_ago=1, group="service:api-worker")]
    stub.add_response(
        "list_tasks",
        {"taskArns": [t["taskArn"] for t in tasks]},
        {"cluster": "prod", "serviceName": "api", "desiredStatus": "STOPPED"},
    )
    stub.add_response(
        "describe_tasks", {"tasks": tasks, "failures": []}, {"cluster": "prod", "tasks": ANY}
    )

    data = await sources.stopped_tasks(context(client))

    assert data["in_window"] == 7 and data["without_time"] == 1
    newest = data["tasks"][0]
    assert newest["reason"] == "Essential container in task exited"
    assert newest["containers"][0] == {
        "name": "api",
        "exit_code": 137,
        "reason": "OutOfMemoryError: Container killed",
    }
    fig = figures({"stopped_tasks": SourceResult(status="ok", data=data)}, Thresholds())
    trigger = evaluate(fig, Thresholds()).triggers[0]
    assert (trigger.rule, trigger.severity) == ("restarts", "high")
    assert trigger.measured == "7 tasks stopped in the window" and trigger.threshold == "> 5"


def metric_result(qid: str, values: list[float]) -> dict[str, Any]:
    stamps = [NOW - timedelta(minutes=i) for i in range(len(values))]
    return {
        "Id": qid,
        "Label": qid,
        "Timestamps": stamps,
        "Values": values,
        "StatusCode": "Complete",
    }


async def test_load_balancer_p95_is_compared_with_yesterday() -> None:
    client = boto3.client(
        "cloudwatch", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    metric_result("cpu", [40.0, 45.0, 50.0, 99.0]),
                    metric_result("memory", [96.0, 97.0, 98.0, 20.0]),
                    metric_result("requests", [600.0, 400.0]),
                    metric_result("target_5xx", [40.0, 20.0]),
                    metric_result("elb_5xx", [10.0]),
                    metric_result("p95", [2.4]),
                ]
            },
            {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": ANY},
        )
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": [metric_result("p95", [0.8])]},
            {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": ANY},
        )
        data = await sources.metrics(context(client, load_balancer="app/prod-alb/0123456789"))

    assert data["cpu"] == {"sustained": 40.0, "max": 99.0, "datapoints": 4}
    assert data["memory"]["sustained"] == 96.0  # the lowest of the newest three minutes
    assert (data["requests"], data["errors_5xx"]) == (1000.0, 70.0)
    assert (data["p95_ms"], data["p95_baseline_ms"]) == (2400.0, 800.0)
    fig = figures({"metrics": SourceResult(status="ok", data=data)}, Thresholds())
    fired = {t.rule: t for t in evaluate(fig, Thresholds()).triggers}
    assert set(fired) == {"error_rate", "p95", "memory"}
    assert fired["error_rate"].severity == "high"  # 7% (000: > 5% errors)
    assert fired["p95"].measured == (
        "2400 ms (load balancer TargetResponseTime), 3.0x baseline 800 ms (same window yesterday)"
    )


def test_load_balancer_arn_or_dimension() -> None:
    arn = "arn:aws:elasticloadbalancing:eu-central-1:1:loadbalancer/app/prod-alb/0123456789"
    assert sources.load_balancer_dimension(arn) == "app/prod-alb/0123456789"
    assert sources.load_balancer_dimension("app/prod-alb/0123") == "app/prod-alb/0123"


def test_nearest_rank_percentile_never_extrapolates() -> None:
    assert sources.nearest_rank([100.0, 110.0, 900.0], 95) == 900.0
    assert sources.nearest_rank(list(map(float, range(1, 101))), 95) == 95.0
    assert sources.nearest_rank([], 95) is None


async def test_a_denied_source_says_which_action_to_grant(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    stub.add_client_error("describe_services", "AccessDeniedException", "User x is not allowed.")
    with pytest.raises(AwsError) as denied:
        await sources.ecs_service(context(client))
    assert sources.describe_error(denied.value) == (
        "the bot's AWS identity may not call ecs.describe_services: User x is not allowed"
        " (grant ecs:DescribeServices to its role)"
    )
