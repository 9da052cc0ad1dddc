"""Fixtures for /diagnose: a local aiohttp health endpoint, catalogs and a seeded moto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.catalog import Target, load_catalog
from tests.testbed.aws import Aws, make_ecs_service, put_log_lines

CLUSTER, SERVICE = "sandbox-broker-cluster", "sandbox-broker"
ALB = "app/sandbox-alb/50dc6c495c0c9188"
LOG_GROUP = "/ecs/sandbox-broker"
SECRET_ENV = "hunter2-secret"  # planted as DB_PASSWORD
SECRET_TOKEN = "xoxb-123456789012-planted-token"  # planted in a log line
SECRET_ARN = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:api-key-AbCdEf"


@dataclass
class HealthServer:
    """GET /health?status=503&delay_ms=250 answers as told; /hang waits until teardown."""

    url: str = ""
    hits: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def endpoint(self, status: int = 200, delay_ms: int = 0) -> str:
        return f"{self.url}/health?status={status}&delay_ms={delay_ms}"

    @property
    def hanging(self) -> str:
        return f"{self.url}/hang"


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    server = HealthServer()

    async def answer(request: web.Request) -> web.Response:
        server.hits += 1
        await asyncio.sleep(int(request.query.get("delay_ms", "0")) / 1000)
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, text="ok" if status < 400 else "upstream db down")

    async def hang(request: web.Request) -> web.Response:
        server.hits += 1
        await server.release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/health", answer)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    server.release.set()
    await runner.cleanup()


def write_catalog(
    tmp_path: Path,
    *,
    health: list[str] | None = None,
    log_groups: list[str] | None = None,
    diagnose: dict[str, Any] | None = None,
    service: str = SERVICE,
) -> Path:
    target: dict[str, Any] = {
        "playbook": "ecs-revision",
        "cluster": CLUSTER,
        "service": service,
        "region": "eu-central-1",
        "health_urls": health or [],
        "log_groups": [LOG_GROUP] if log_groups is None else log_groups,
    }
    if diagnose is not None:
        target["diagnose"] = diagnose
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INCIDENTS", "targets": {"api": target}}
    path = tmp_path / "rollbot.yml"
    path.write_text(json.dumps(catalog))  # JSON is YAML
    return path


def target_of(path: Path) -> Target:
    return load_catalog(path).targets["api"]


def seed_service(aws: Aws, revisions: int = 6) -> list[str]:
    """The service on its last revision, a secret in its environment and in its secrets."""
    arns = make_ecs_service(
        aws,
        CLUSTER,
        SERVICE,
        SERVICE,
        revisions=revisions - 1,
        environment={"DB_PASSWORD": SECRET_ENV, "MODE": "single"},
    )
    ecs = aws.client("ecs")
    latest = ecs.register_task_definition(
        family=SERVICE,
        containerDefinitions=[
            {
                "name": SERVICE,
                "image": f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/{SERVICE}:v{revisions}",
                "memory": 512,
                "environment": [
                    {"name": "DB_PASSWORD", "value": SECRET_ENV},
                    {"name": "MODE", "value": "multi"},
                ],
                "secrets": [{"name": "API_KEY", "valueFrom": SECRET_ARN}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=latest)
    return [*arns, latest]


def seed_logs(aws: Aws, errors: int = 3) -> None:
    """`errors` ERROR lines carrying a Slack token, the newest repeating the DB password."""
    lines = [f"ERROR 500 auth failed token={SECRET_TOKEN}"] * (errors - 1)
    lines += ["INFO fine", f"ERROR db login as {SECRET_ENV} refused"]
    put_log_lines(aws, LOG_GROUP, lines)


def put_metric(
    aws: Aws,
    namespace: str,
    name: str,
    value: float,
    dims: dict[str, str],
    ago_minutes: float = 0,
    unit: str = "Count",
) -> None:
    aws.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Value": value,
                "Unit": unit,
                "Timestamp": datetime.now(UTC) - timedelta(minutes=ago_minutes),
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            }
        ],
    )


def seed_metrics(
    aws: Aws,
    *,
    requests: float = 1000,
    errors: float = 150,
    memory: float = 97.5,
    cpu: tuple[float, ...] = (82.0, 90.0, 85.0),
) -> None:
    alb = {"LoadBalancer": ALB}
    put_metric(aws, "AWS/ApplicationELB", "RequestCount", requests, alb)
    put_metric(aws, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", errors, alb)
    ecs = {"ClusterName": CLUSTER, "ServiceName": SERVICE}
    put_metric(aws, "AWS/ECS", "MemoryUtilization", memory, ecs, unit="Percent")
    for minutes_ago, value in enumerate(cpu):
        put_metric(aws, "AWS/ECS", "CPUUtilization", value, ecs, minutes_ago, "Percent")
