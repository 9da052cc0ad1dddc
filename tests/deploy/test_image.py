"""The container image, for real: started with podman, its /healthz answers 200 from inside,
it runs as the unprivileged user, and `podman stop` (SIGTERM) lets the bot drain and exit 0.

Runs when ROLLBOT_IMAGE names a built image (.ci/image-build makes one; .ci/deploy-checks
sets it with podman's configuration); skipped otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.testbed.ports import free_port
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import SIGNING_SECRET

IMAGE = os.environ.get("ROLLBOT_IMAGE", "")
HEALTHZ = (
    "import os, sys, urllib.request; "
    "r = urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['ROLLBOT_PORT'], "
    "timeout=3); sys.stdout.write(str(r.status))"
)

pytestmark = pytest.mark.skipif(
    not IMAGE or shutil.which("podman") is None,
    reason="ROLLBOT_IMAGE is not set (or podman is missing): build one with .ci/image-build",
)


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def container(fake_slack: FakeSlackApi) -> Iterator[tuple[str, int]]:
    port = free_port()
    started = podman(
        *("run", "-d", "--network", "host"),
        *("-e", f"SLACK_BOT_TOKEN={TOKEN}", "-e", f"SLACK_SIGNING_SECRET={SIGNING_SECRET}"),
        *("-e", f"SLACK_API_URL={fake_slack.url}", "-e", f"ROLLBOT_PORT={port}"),
        *("-e", "ROLLBOT_DRAIN_SECONDS=5"),
        IMAGE,
    )
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    try:
        yield name, port
    finally:
        podman("rm", "-f", "-t", "0", name)


def wait_healthy(name: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    answer = None
    while time.monotonic() < deadline:
        answer = podman("exec", name, "python3", "-c", HEALTHZ)
        if answer.returncode == 0:
            return answer.stdout
        if (
            podman("container", "exists", name).returncode != 0
            or "Exited"
            in podman("ps", "-a", "--filter", f"id={name}", "--format", "{{.Status}}").stdout
        ):
            break
        time.sleep(0.5)
    logs = podman("logs", name).stdout + podman("logs", name).stderr
    pytest.fail(f"no 200 from /healthz inside the container: {answer}\n{logs[-3000:]}")


def test_image_serves_healthz_and_drains_on_sigterm(container: tuple[str, int]) -> None:
    name, _ = container
    assert wait_healthy(name) == "200"
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    assert podman("healthcheck", "run", name).returncode == 0  # the image's own HEALTHCHECK
    stopped = podman("stop", "-t", "30", name, timeout=45)
    assert stopped.returncode == 0, stopped.stderr
    code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = podman("logs", name)
    text = logs.stdout + logs.stderr
    assert code == "0", text[-3000:]
    assert "draining in-flight work" in text and "stopped" in text, text[-3000:]
    assert "Traceback" not in text
