"""The runbook 004 playbooks end to end through the engine and a real SQLite store: real nginx
proxying to a good and a bad backend, real git, and compose through the checked `docker` shim."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from bot.catalog import load_catalog
from bot.store.base import JournalEntry, now
from bot.store.sqlite import SqliteStore
from playbooks.loader import load_playbook, shipped_playbooks, step_types
from playbooks.runner import PlaybookRunner, RunResult, plan, step_context
from playbooks.steps import alb, compose, files, git, github, rds, shell  # noqa: F401  (types)
from playbooks.steps import nginx as nginx_steps  # noqa: F401
from tests.testbed.compose_shim import compose_shim_fixture  # noqa: F401
from tests.testbed.host import make_host, version
from tests.testbed.ports import wait_until


def target(tmp_path: Path, playbook: str, **params: Any) -> Any:
    entry = {"playbook": playbook, "poll_delay": 0.05, "poll_timeout": 5, **params}
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"t": entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    return load_catalog(tmp_path / "rollbot.yml").targets["t"]


async def run(tmp_path: Path, tgt: Any, ref: str = "previous", rid: str = "rb-1") -> RunResult:
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        return await PlaybookRunner(store, rid).run(tgt.steps, step_context(tgt, ref))
    finally:
        await store.close()


async def test_backup_then_config_rollback_serves_the_good_backend(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    record = tmp_path / "pre-migration-commit.txt"
    params = {**_only(host.params(), "host-backup"), "recorded_commit_file": str(record)}
    backup = target(tmp_path, "host-backup", **params)
    before = await run(tmp_path, backup, rid="backup")
    assert before.ok, before.error
    assert [s.outcome for s in before.steps] == ["ok"] * 5
    assert before.steps[2].output["skipped"] is True  # no .env in this app
    assert record.read_text() == host.repo.head() + "\n"
    assert (host.repo.path / "docker-compose.yml.backup").exists()

    host.deploy_bad_release()
    assert version(host.server) == "bad"
    tgt = target(tmp_path, "host-config-rollback", **host.params())
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    shown = {p.step_id: p.calls for p in planned}
    assert shown["scale_wsgi"] == [
        f"[in {host.repo.path}] docker compose -p arena -f docker-compose.yml up -d --no-deps"
        " --scale backend-wsgi=4 backend-wsgi"
    ]
    assert shown["reload_nginx"][1].endswith("-s reload  (only if the test passed)")

    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    assert [s.step_id for s in result.steps] == [step.id for step in tgt.steps]
    assert version(host.server) == "good"
    assert result.steps[5].output["checks"][0]["status"] == 200
    assert host.shim.grammar_errors() == []
    assert [c[0] for c in host.shim.commands()] == ["up", "stop", "logs"]
    assert host.shim.running() == {"backend-wsgi": 4, "backend-asgi": 0, "postgres": 1}
    assert (tmp_path / "deployment.lock").exists()
    assert "log line" in result.steps[6].output["stdout"]


async def test_a_broken_backup_stops_the_run_before_any_reload(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    broken = host.server.config(host.good.url).replace("proxy_pass", "proxy_pas")
    (host.server.prefix / "nginx.conf.pre-hybrid.bak").write_text(broken)
    host.deploy_bad_release()
    workers = host.server.workers()
    tgt = target(tmp_path, "host-config-rollback", **host.params())

    result = await run(tmp_path, tgt)
    assert not result.ok
    assert result.failed_step is not None and result.failed_step.step_id == "reload_nginx"
    assert "NOT reloaded" in result.error and 'unknown directive "proxy_pas"' in result.error
    ran = [s.step_id for s in result.steps]
    assert ran == ["lock", "scale_wsgi", "restore_nginx", "reload_nginx"]
    assert host.server.workers() == workers  # never signalled
    assert version(host.server) == "bad"  # the running configuration is untouched
    assert [c[0] for c in host.shim.commands()] == ["up"]  # ASGI was not stopped
    assert host.shim.running()["backend-asgi"] == 2
    # the file nginx runs from is kept next to it for the person who takes over
    kept = host.server.prefix / "nginx.conf.before-rollback"
    assert "proxy_pass " + host.bad.url in kept.read_text()


async def test_full_rollback_checks_out_the_recorded_commit_and_rebuilds(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    shutil.copy(host.server.conf_path, host.server.prefix / "nginx.conf.pre-hybrid.bak")
    good_commit = host.repo.head()
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(good_commit + "\n")
    bad_commit = host.deploy_bad_release()
    tgt = target(tmp_path, "host-full-rollback", **host.params(recorded_commit_file=str(record)))

    planned = {p.step_id: p for p in await plan(tgt.steps, step_context(tgt, "previous"))}
    assert planned["resolve"].output["commit"] == good_commit  # looked up while planning
    assert planned["checkout"].calls[-1].endswith(f"git checkout -q --detach {good_commit}")

    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    out = {s.step_id: s.output for s in result.steps}
    assert out["current"]["commit"] == bad_commit
    assert out["checkout"]["previous_commit"] == bad_commit
    assert host.repo.head() == good_commit
    assert (host.repo.path / "app/version.txt").read_text() == "1\n"
    assert [" ".join(c) for c in host.shim.commands()] == [
        "build backend-wsgi",
        "up -d --no-deps backend-wsgi",
        "stop backend-asgi",
        "logs --no-color --tail 100 backend-wsgi",
    ]
    assert host.shim.grammar_errors() == [] and version(host.server) == "good"


async def test_full_rollback_refuses_local_edits_and_changes_nothing(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    shutil.copy(host.server.conf_path, host.server.prefix / "nginx.conf.pre-hybrid.bak")
    bad_commit = host.deploy_bad_release()
    host.repo.write({"app/version.txt": "edited on the server\n"})
    tgt = target(tmp_path, "host-full-rollback", **host.params())

    result = await run(tmp_path, tgt, ref="last-stable-release")
    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "checkout" and "local edits" in result.error
    assert host.repo.head() == bad_commit and host.shim.commands() == []
    assert version(host.server) == "bad"


async def test_database_rollback_is_dangerous_and_migrates_inside_the_container(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    params = _only(host.params(), "host-database-rollback")
    params["migrations"] = {"ai_model": "0010", "chat_session": "0010"}
    tgt = target(tmp_path, "host-database-rollback", **params)
    assert tgt.playbook.spec.dangerous is True
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    migrate = next(p for p in planned if p.step_id == "migrate")
    assert migrate.calls[1].endswith(
        "docker compose -p arena -f docker-compose.yml exec -T backend-wsgi python manage.py"
        " migrate ai_model 0010"
    )
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    assert [" ".join(c[3:]) for c in host.shim.commands()][:4] == [
        "python manage.py showmigrations ai_model chat_session",
        "python manage.py migrate ai_model 0010",
        "python manage.py migrate chat_session 0010",
        "python manage.py showmigrations ai_model chat_session",
    ]
    assert host.shim.commands()[-1] == ["restart", "backend-wsgi"]


async def test_a_run_that_died_in_the_reload_reloads_again_and_finishes(
    tmp_path: Path, git_repo, compose_shim, nginx, app_backend
) -> None:
    host = make_host(tmp_path, git_repo, compose_shim, nginx, app_backend)
    shutil.copy(host.server.conf_path, host.server.prefix / "nginx.conf.pre-hybrid.bak")
    host.deploy_bad_release()
    tgt = target(tmp_path, "host-config-rollback", **host.params())
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        first = await PlaybookRunner(store, "rb-9").run(tgt.steps[:3], step_context(tgt, "x"))
        assert first.ok
        # the replica died after journaling the reload's start
        entry = JournalEntry(at=now(), step=3, step_id="reload_nginx", event="start")
        await store.journal_append("rb-9", entry)
        result = await PlaybookRunner(store, "rb-9").run(tgt.steps, step_context(tgt, "x"))
    finally:
        await store.close()
    assert result.ok, result.error
    assert [s.outcome for s in result.steps] == ["skipped"] * 3 + ["ok"] * 4
    wait_until(lambda: version(host.server) == "good", 5, "good backend")
    assert [c[0] for c in host.shim.commands()] == ["up", "stop", "logs"]


def test_every_playbook_with_a_dangerous_step_is_marked_dangerous() -> None:
    kinds = step_types()
    for name in shipped_playbooks():
        book = load_playbook(name)
        risky = [s["type"] for s in book.spec.steps if kinds[s["type"]].dangerous]
        if risky:
            assert book.spec.dangerous, f"{name} runs {risky} but is not dangerous: true"
    assert load_playbook("rds-restore").spec.dangerous


def _only(params: dict[str, Any], playbook: str) -> dict[str, Any]:
    """The subset of `params` a playbook accepts (unknown target keys are errors)."""
    known = load_playbook(playbook).spec.params
    return {k: v for k, v in params.items() if k in known}
