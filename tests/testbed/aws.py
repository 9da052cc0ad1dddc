"""moto in server mode for the AWS APIs, reset between tests, plus ECS and Logs builders."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from playbooks.aws import AwsClients

REGION = "eu-central-1"
ACCOUNT = "123456789012"  # moto's default account id, as it appears in every ARN
IMAGE_FMT = ACCOUNT + ".dkr.ecr.eu-central-1.amazonaws.com/{family}:v{n}"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # never read a developer's ~/.aws profile, and never wait for an instance metadata lookup
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# moto reads this when a service is created: that many tasks "run" at once (see make_ecs_service)
RUNNING_ENV = "MOTO_ECS_SERVICE_RUNNING"


@dataclass
class Aws:
    """The moto endpoint of one test: clients for the test itself and env for a bot process."""

    endpoint: str
    region: str = REGION
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """For a bot subprocess: the standard AWS variables pointing at moto."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]

    def step_clients(self) -> AwsClients:
        """What a StepContext needs to talk to this moto server."""
        return AwsClients(region=self.region, endpoint_url=self.endpoint)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One in-process moto server for the session (its backends start lazily, ~0.8 s once)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A freshly reset moto, with the process environment pointing boto3 at it.

    The server runs in this process, so a test may `monkeypatch.setenv(RUNNING_ENV, "2")`
    before creating a service itself; it starts unset so no outside value changes results.
    """
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_server}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", RUNNING_ENV):
        monkeypatch.delenv(key, raising=False)
    api = Aws(moto_server)
    api.reset()
    return api


def container(name: str, image: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "memory": 512,
        "essential": True,
        "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
    }


def register_revisions(
    aws: Aws,
    family: str,
    count: int,
    image_fmt: str = IMAGE_FMT,
    environment: dict[str, str] | None = None,
) -> list[str]:
    """Register `count` more revisions of `family`; image n is image_fmt.format(family, n)."""
    ecs = aws.client("ecs")
    start = len(ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"])
    start += len(
        ecs.list_task_definitions(familyPrefix=family, status="INACTIVE")["taskDefinitionArns"]
    )
    arns = []
    for n in range(start + 1, start + count + 1):
        image = image_fmt.format(family=family, n=n)
        td = ecs.register_task_definition(
            family=family, containerDefinitions=[container(family, image, environment)]
        )
        arns.append(td["taskDefinition"]["taskDefinitionArn"])
    return arns


def make_ecs_service(
    aws: Aws,
    cluster: str,
    service: str,
    family: str,
    revisions: int = 3,
    running_revision: int | None = None,
    desired: int = 2,
    image_fmt: str = IMAGE_FMT,
    running: bool = True,
    environment: dict[str, str] | None = None,
) -> list[str]:
    """Register revisions 1..N (image tags v1..vN) and a service on revision N (or
    `running_revision`). Returns the task-definition ARNs, index 0 being revision 1.

    running=True: `desired` tasks run and the rollout is COMPLETED, as after a finished deploy.
    running=False: no task ever starts and the rollout stays IN_PROGRESS (moto never moves it).
    """
    ecs = aws.client("ecs")
    if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
        ecs.create_cluster(clusterName=cluster)
    arns = register_revisions(aws, family, revisions, image_fmt, environment)
    on = running_revision or revisions
    # moto fixes runningCount and rolloutState at creation from this variable, read in-process
    previous = os.environ.get(RUNNING_ENV)
    os.environ[RUNNING_ENV] = str(desired if running else 0)
    try:
        ecs.create_service(
            cluster=cluster, serviceName=service, desiredCount=desired, taskDefinition=arns[on - 1]
        )
    finally:
        if previous is None:
            os.environ.pop(RUNNING_ENV, None)
        else:
            os.environ[RUNNING_ENV] = previous
    return arns


def service_state(aws: Aws, cluster: str, service: str) -> dict[str, Any]:
    return aws.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]


def put_log_events(
    aws: Aws, group: str, events: Sequence[tuple[int, str]], stream: str = "api/1"
) -> None:
    """Write (timestamp_ms, message) events, creating the group and stream when missing."""
    logs = aws.client("logs")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    ordered = sorted(events)  # CloudWatch Logs wants a batch in time order
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": ts, "message": msg} for ts, msg in ordered],
    )


def put_log_lines(
    aws: Aws, group: str, lines: list[str], stream: str = "api/1", ago_seconds: float = 0
) -> None:
    """Lines that were logged just now (or `ago_seconds` ago), 10 ms apart, in order."""
    end_ms = int((time.time() - ago_seconds) * 1000)
    put_log_events(
        aws,
        group,
        [(end_ms - (len(lines) - i) * 10, line) for i, line in enumerate(lines)],
        stream,
    )
