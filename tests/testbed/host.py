"""One compose + nginx host for the host playbooks: the app checkout (git) holding its compose
project on the real engine, and nginx in front of it."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed.git import GitRepo
from tests.testbed.nginx import Nginx
from tests.testbed.podman import ComposeApp
from tests.testbed.ports import wait_until

# the directory the runbook's operators run compose in, and the project name compose gives it
APP_DIR_NAME = "Chat-Arena-Backend"
PROJECT = "chat-arena-backend"


def version(server: Nginx) -> str:
    """Which release answers /api/health/ through nginx: a stand-in backend's X-App-Version
    header, else the body the test containers serve (the checkout's app/version.txt)."""
    try:
        with urllib.request.urlopen(f"{server.url}/api/health/", timeout=5) as resp:
            return resp.headers.get("X-App-Version") or resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.headers.get("X-App-Version", "") or f"HTTP {exc.code}"
    except OSError as exc:
        return f"unreachable: {exc}"


def routed_to(server: Nginx, ports: list[int]) -> str:
    """An nginx.conf proxying to every port of a service's replicas (never marked down, so a
    recreated container is used again at once)."""
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=0;\n" for p in ports)
    text = server.config("http://app")
    return text.replace("http {\n", "http {\n    upstream app {\n" + servers + "    }\n", 1)


@dataclass
class Host:
    """One compose + nginx host: the app checkout (git) holding its compose project, and nginx
    in front of it."""

    repo: GitRepo
    app: ComposeApp
    server: Nginx
    state: Path

    def params(self, **extra: Any) -> dict[str, Any]:
        # no compose_project: the name is resolved from the directory, as compose does
        return {
            "app_dir": str(self.repo.path),
            "nginx_conf": str(self.server.conf_path),
            "nginx_backup": str(self.server.prefix / "nginx.conf.pre-hybrid.bak"),
            "nginx_command": self.server.command(),
            "lock_file": str(self.state / "deployment.lock"),
            "health_urls": [f"{self.server.url}/api/health/"],
            **extra,
        }

    def route_to(self, service: str) -> None:
        self.server.write_config(routed_to(self.server, self.app.ports[service]))
        self.server.reload()

    def deploy_bad_release(self, rebuild: bool = False) -> str:
        """The deployment that goes wrong: new code (rebuilt into WSGI if asked), nginx routed
        to the ASGI containers."""
        commit = self.repo.commit("hybrid WSGI+ASGI", {"app/version.txt": "2\n"})
        if rebuild:
            self.app.compose("up", "-d", "--build", "--no-deps", "backend-wsgi")
        self.route_to("backend-asgi")
        wait_until(lambda: version(self.server) == "asgi", 60, "nginx routed to ASGI", 0.1)
        return commit

    def wait_serving(self, expected: str) -> None:
        wait_until(lambda: version(self.server) == expected, 60, f"release {expected}", 0.1)


def make_host(
    tmp_path: Path,
    git_repo: Callable[..., GitRepo],
    compose_app: Callable[..., ComposeApp],
    nginx: Callable[..., Nginx],
    postgres: bool = True,
) -> Host:
    repo = git_repo(name=APP_DIR_NAME)
    app = compose_app(repo.path, postgres=postgres, project=PROJECT, start=False)
    repo.commit("compose file", {})
    app.up()
    host = Host(repo, app, nginx("http://127.0.0.1:9"), tmp_path)
    host.route_to("backend-wsgi")
    host.wait_serving("1")
    shutil.copy(host.server.conf_path, host.server.prefix / "nginx.conf.pre-hybrid.bak")
    return host
