"""One compose + nginx host for the host playbooks: the app checkout (git), its compose
project, nginx and two app backends (good and bad)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed.compose_shim import ComposeShim
from tests.testbed.git import GitRepo
from tests.testbed.nginx import AppBackend, Nginx


def version(server: Nginx) -> str:
    try:
        with urllib.request.urlopen(f"{server.url}/api/health/", timeout=5) as resp:
            return resp.headers.get("X-App-Version", "")
    except urllib.error.HTTPError as exc:
        return exc.headers.get("X-App-Version", "")


@dataclass
class Host:
    """One compose + nginx host: the app checkout (git), its compose project, nginx, backends."""

    repo: GitRepo
    shim: ComposeShim
    server: Nginx
    good: AppBackend
    bad: AppBackend
    state: Path

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "app_dir": str(self.repo.path),
            "compose_project": "arena",
            "nginx_conf": str(self.server.conf_path),
            "nginx_backup": str(self.server.prefix / "nginx.conf.pre-hybrid.bak"),
            "nginx_command": self.server.command(),
            "lock_file": str(self.state / "deployment.lock"),
            "health_urls": [f"{self.server.url}/api/health/"],
            **extra,
        }

    def deploy_bad_release(self, config: str | None = None) -> str:
        """The deployment that goes wrong: new code, nginx routed to the bad backend."""
        self.server.write_config(config or self.server.config(self.bad.url))
        self.server.reload()
        return self.repo.commit("hybrid WSGI+ASGI", {"app/version.txt": "2\n"})


def make_host(
    tmp_path: Path,
    git_repo: Callable[..., GitRepo],
    compose_shim: Callable[..., ComposeShim],
    nginx: Callable[..., Nginx],
    app_backend: Callable[..., AppBackend],
) -> Host:
    repo = git_repo()
    shim = compose_shim(app_dir=repo.path)
    repo.commit("compose file", {})
    good, bad = app_backend("good"), app_backend("bad", status=500)
    return Host(repo, shim, nginx(good.url), good, bad, tmp_path)
