"""moto in server mode for the AWS APIs, reset between tests, plus ECS/logs builders."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

REGION = "eu-central-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass
class Aws:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """For a bot subprocess: the standard AWS variables pointing at moto."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_server}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    api = Aws(moto_server)
    api.reset()
    return api


def container(name: str, image: str, environment: dict[str, str] | None = None) -> dict:
    return {
        "name": name,
        "image": image,
        "memory": 512,
        "essential": True,
        "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
    }


def make_ecs_service(
    aws: Aws,
    cluster: str,
    service: str,
    family: str,
    revisions: int = 3,
    running_revision: int | None = None,
    desired: int = 2,
    image: str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/api",
    environment: dict[str, str] | None = None,
) -> list[str]:
    """Register `revisions` revisions (image tags v1..vN) and run the service on one of them,
    scaled so that moto reports it as running. Returns the task-definition ARNs."""
    ecs = aws.client("ecs")
    if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
        ecs.create_cluster(clusterName=cluster)
    arns = []
    for n in range(1, revisions + 1):
        td = ecs.register_task_definition(
            family=family, containerDefinitions=[container(family, f"{image}:v{n}", environment)]
        )
        arns.append(td["taskDefinition"]["taskDefinitionArn"])
    running = running_revision or revisions
    ecs.create_service(
        cluster=cluster, serviceName=service, desiredCount=0, taskDefinition=f"{family}:{running}"
    )
    # moto reports runningCount only after a desiredCount update
    ecs.update_service(cluster=cluster, service=service, desiredCount=desired)
    return arns


def service_state(aws: Aws, cluster: str, service: str) -> dict[str, Any]:
    return aws.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]


def put_log_lines(aws: Aws, group: str, lines: list[str], stream: str = "api/1") -> None:
    logs = aws.client("logs")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now_ms = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": now_ms - (len(lines) - i) * 10, "message": line}
            for i, line in enumerate(lines)
        ],
    )
