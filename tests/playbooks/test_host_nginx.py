"""nginx steps against a real nginx from a temp prefix, proxying to local app backends."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from playbooks.base import StepContext, StepFailed
from playbooks.steps.nginx import NginxBackup, NginxReload, NginxRestore, NginxTest
from tests.testbed.nginx import AppBackend, Nginx
from tests.testbed.ports import wait_until


def version(server: Nginx) -> str:
    """X-App-Version of the backend nginx proxies /api/health/ to."""
    try:
        with urllib.request.urlopen(f"{server.url}/api/health/", timeout=5) as resp:
            return resp.headers.get("X-App-Version", "")
    except urllib.error.HTTPError as exc:
        return exc.headers.get("X-App-Version", "")


def context(server: Nginx, **params: Any) -> StepContext:
    base = {
        "nginx_conf": str(server.conf_path),
        "nginx_backup": str(server.prefix / "nginx.conf.pre-hybrid.bak"),
        "nginx_command": server.command(),
    }
    return StepContext(target="edge", params={**base, **params}, outputs={"request": {}})


async def test_backup_restore_test_reload_switches_to_the_good_backend(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    good, bad = app_backend("good"), app_backend("bad", status=500)
    server = nginx(good.url)
    ctx = context(server)
    assert (await NginxBackup().run(ctx))["backup"].endswith("nginx.conf.pre-hybrid.bak")
    server.write_config(server.config(bad.url))  # the deployment
    server.reload()
    assert version(server) == "bad"

    restored = await NginxRestore().run(ctx)
    assert restored["unchanged"] is False and "replaced_copy" in restored
    assert (await NginxTest().run(ctx))["test"] == "passed"
    assert (await NginxReload().run(ctx))["reloaded"] is True
    wait_until(lambda: version(server) == "good", 5, "reload to the good backend")
    assert (await NginxRestore().run(ctx))["unchanged"] is True
    assert await NginxRestore().already_done(ctx) is not None


async def test_a_broken_config_fails_the_test_and_is_never_reloaded(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    server = nginx(app_backend("current").url)
    workers = server.workers()
    server.write_config(server.config("http://127.0.0.1:1").replace("proxy_pass", "proxy_pas"))
    ctx = context(server)
    with pytest.raises(StepFailed, match=r'\[emerg\] unknown directive "proxy_pas"') as caught:
        await NginxTest().run(ctx)
    assert caught.value.output["exit_code"] == 1
    with pytest.raises(StepFailed, match="NOT reloaded") as caught:
        await NginxReload().run(ctx)
    assert caught.value.output["reloaded"] is False
    assert "[emerg]" in str(caught.value)
    assert server.workers() == workers  # no new generation of workers: no reload happened
    assert version(server) == "current"


async def test_plans_name_the_exact_commands(nginx: Callable[..., Nginx]) -> None:
    server = nginx()
    ctx = context(server)
    cmd = " ".join(server.command())
    assert await NginxTest().plan(ctx) == [f"{cmd} -t"]
    assert await NginxReload().plan(ctx) == [
        f"{cmd} -t",
        f"{cmd} -s reload  (only if the test passed)",
    ]
    conf, bak = server.conf_path, server.prefix / "nginx.conf.pre-hybrid.bak"
    assert (await NginxRestore().plan(ctx))[-1] == f"cp -- {bak} {conf}"
    assert (await NginxBackup().plan(ctx))[-1] == f"cp -p -- {conf} {bak}"
    default = StepContext(target="x", params={"nginx_conf": "/etc/nginx/nginx.conf"})
    assert await NginxTest().plan(default) == ["nginx -t"]
    assert (await NginxBackup().plan(default))[-1].endswith("/etc/nginx/nginx.conf.pre-deploy.bak")
    with pytest.raises(StepFailed, match="set nginx_conf"):
        await NginxRestore().plan(StepContext(target="x", params={}))


async def test_a_missing_nginx_binary_is_a_clear_failure() -> None:
    ctx = StepContext(target="x", params={"nginx_command": ["/nonexistent/nginx"]})
    with pytest.raises(StepFailed, match="command not found"):
        await NginxReload().run(ctx)
