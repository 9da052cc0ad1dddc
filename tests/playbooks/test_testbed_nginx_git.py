"""The nginx and git test beds behave like the real things the runbook 002/004 playbooks touch."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.testbed.git import STABLE_TAG, GitRepo
from tests.testbed.nginx import AppBackend, Nginx, NginxError
from tests.testbed.ports import wait_until


def get(url: str) -> tuple[int, str, str]:
    """(status, X-App-Version, body) of a GET, HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("X-App-Version", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("X-App-Version", ""), exc.read().decode()


def test_nginx_serves_validates_and_switches_backends(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    good, bad = app_backend("good"), app_backend("bad", status=500, body='{"status":"error"}')
    server = nginx(bad.url)
    assert server.test().returncode == 0
    assert get(f"{server.url}/api/health/") == (500, "bad", '{"status":"error"}')
    assert get(f"{server.url}/elsewhere")[0] == 404

    started = time.monotonic()
    server.write_config(server.config(good.url))
    assert server.test().returncode == 0
    server.reload()
    assert time.monotonic() - started < 3
    status, version, body = get(f"{server.url}/api/health/")
    assert (status, version, json.loads(body)) == (
        200,
        "good",
        {"status": "healthy", "version": "good"},
    )


def test_broken_config_fails_the_test_and_the_old_one_keeps_serving(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    server = nginx(app_backend("good").url)
    server.write_config(server.config("http://127.0.0.1:1").replace("proxy_pass", "proxy_pas"))
    result = server.test()
    assert result.returncode == 1 and "[emerg]" in result.stderr
    assert 'unknown directive "proxy_pas"' in result.stderr
    with pytest.raises(NginxError, match=r"\[emerg\].*proxy_pas"):
        server.reload()
    assert get(f"{server.url}/api/health/")[:2] == (200, "good")


def test_runbook_restore_with_the_nginx_command_line(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    # runbook 004: cp nginx.conf.pre-hybrid.bak nginx.conf && nginx -t && nginx -s reload
    good, bad = app_backend("good"), app_backend("bad", status=502)
    server = nginx(good.url)
    backup = server.prefix / "nginx.conf.pre-hybrid.bak"
    shutil.copy(server.conf_path, backup)
    server.write_config(server.config(bad.url))
    server.reload()
    assert get(f"{server.url}/api/health/")[:2] == (502, "bad")

    shutil.copy(backup, server.conf_path)
    for args in (("-t",), ("-s", "reload")):
        done = subprocess.run(server.command(*args), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    wait_until(lambda: get(f"{server.url}/api/health/")[1] == "good", 5, "reload by nginx -s")


def test_nginx_stops_and_frees_its_port(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    server = nginx(app_backend("good").url)
    assert server.workers()
    server.stop()
    assert server.proc is not None and server.proc.returncode == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{server.url}/api/health/", timeout=2)


def test_git_repo_has_the_stable_tag_and_history(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo(origin=True)
    stable = repo.rev(STABLE_TAG)
    assert repo.git("branch", "--show-current") == "main"
    bad = repo.commit("hybrid migration", {"app/version.txt": "2\n"})
    assert repo.head() == bad != stable
    assert repo.git("log", "--format=%s") == "hybrid migration\nrelease 1"
    assert not repo.exists("no-such-tag") and repo.exists(STABLE_TAG)

    repo.write({"app/version.txt": "local edit\n"})
    assert repo.dirty()  # a checkout now would silently keep this edit
    repo.git("checkout", "--", ".")
    repo.git("checkout", "-q", f"tags/{STABLE_TAG}")
    assert (repo.path / "app/version.txt").read_text() == "1\n"

    repo.git("checkout", "-q", "main")
    repo.push("--tags")
    remote = repo.git("ls-remote", "origin")
    assert f"{bad}\trefs/heads/main" in remote
    assert f"{stable}\trefs/tags/{STABLE_TAG}" in remote


def test_git_repo_without_the_tag(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo(stable=False)
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{STABLE_TAG}^{{commit}}"],
        cwd=repo.path,
        capture_output=True,
    )
    assert done.returncode == 1
    assert repo.tag(STABLE_TAG) == repo.head()


def test_a_missing_nginx_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.testbed import nginx as testbed

    monkeypatch.setattr(testbed.shutil, "which", lambda *a, **k: None)
    with pytest.raises(pytest.fail.Exception, match="nginx is not installed"):
        testbed.nginx_binary()


def test_a_config_nginx_cannot_start_with_fails_fast(nginx: Callable[..., Nginx]) -> None:
    server = nginx()
    server.write_config(server.config("http://127.0.0.1:1").replace("listen", "lisen"))
    started = time.monotonic()
    with pytest.raises(
        NginxError, match=r"(?s)nginx exited 1:.*\[emerg\] .*unknown directive \"lisen\""
    ):
        server.start()
    assert time.monotonic() - started < 2
