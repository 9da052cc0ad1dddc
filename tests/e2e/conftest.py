"""The set-up most end-to-end tests share: the `api` target's ECS service on moto, its health
endpoint, and `rollbot serve` replicas started on the `api` catalog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import CLUSTER, SERVICE, ApiTestBed
from tests.testbed.aws import Aws, make_ecs_service
from tests.testbed.rollbot_process import RollbotProcess


@pytest.fixture
def api_bed(
    aws: Aws, http_backend: Any, rollbot_server: Callable[..., RollbotProcess], tmp_path: Path
) -> ApiTestBed:
    """The `api` target's service on moto and its health endpoint; start bots with
    `api_bed.start_bot(env=...)`."""
    arns = make_ecs_service(aws, CLUSTER, SERVICE, SERVICE)
    return ApiTestBed(aws, http_backend(), arns, tmp_path, rollbot_server)
