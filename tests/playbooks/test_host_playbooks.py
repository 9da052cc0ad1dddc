"""The runbook 004 playbooks end to end through the engine and a real SQLite store: real nginx
proxying to real containers (podman's Docker API driven by Compose v2), and real git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.testbed.host import APP_DIR_NAME, PROJECT, make_host, routed_to, version
from tests.testbed.podman import IDLE, PG_CLIENT_IMAGE


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


async def test_backup_then_config_rollback_serves_wsgi_at_the_asked_scale(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx)
    (host.server.prefix / "nginx.conf.pre-hybrid.bak").unlink()  # the backup playbook makes it
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
    tgt = target(tmp_path, "host-config-rollback", **host.params())
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    shown = {p.step_id: p.calls for p in planned}
    assert shown["scale_wsgi"][0] == (
        f"[in {host.repo.path}] docker compose -f docker-compose.yml up -d --no-deps"
        " --scale backend-wsgi=4 backend-wsgi"
    )
    assert shown["scale_wsgi"][1] == (
        f"(compose project '{PROJECT}', from the directory name '{APP_DIR_NAME}')"
    )
    assert shown["reload_nginx"][1].endswith("-s reload  (only if the test passed)")

    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    assert [s.step_id for s in result.steps] == [step.id for step in tgt.steps]
    assert version(host.server) == "1"
    assert result.steps[5].output["checks"][0]["status"] == 200
    assert host.app.running() == {"backend-wsgi": 4, "backend-asgi": 0, "postgres": 1}
    assert (tmp_path / "deployment.lock").exists()
    assert result.steps[1].output["project"] == PROJECT


async def test_a_broken_backup_stops_the_run_before_any_reload(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
    broken = routed_to(host.server, host.app.ports["backend-wsgi"]).replace(
        "proxy_pass", "proxy_pas"
    )
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
    assert version(host.server) == "asgi"  # the running configuration is untouched
    assert host.app.running() == {"backend-wsgi": 4, "backend-asgi": 2}  # ASGI not stopped
    # the file nginx runs from is kept next to it for the person who takes over
    kept = host.server.prefix / "nginx.conf.before-rollback"
    assert f"server 127.0.0.1:{host.app.ports['backend-asgi'][0]}" in kept.read_text()


async def test_full_rollback_serves_the_recorded_commit_and_keeps_the_scale(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
    good_commit = host.repo.head()
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(good_commit + "\n")
    bad_commit = host.deploy_bad_release(rebuild=True)
    host.app.compose("up", "-d", "--no-deps", "--scale", "backend-wsgi=3", "backend-wsgi")
    tgt = target(tmp_path, "host-full-rollback", **host.params(recorded_commit_file=str(record)))

    planned = {p.step_id: p for p in await plan(tgt.steps, step_context(tgt, "previous"))}
    assert planned["resolve"].output["commit"] == good_commit  # looked up while planning
    assert planned["checkout"].calls[-1].endswith(f"git checkout -q --detach {good_commit}")
    assert "keeps its current number of containers" in planned["up_wsgi"].calls[-1]

    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    out = {s.step_id: s.output for s in result.steps}
    assert out["current"]["commit"] == bad_commit
    assert out["checkout"]["previous_commit"] == bad_commit
    assert host.repo.head() == good_commit
    assert "--scale backend-wsgi=3" in out["up_wsgi"]["command"]
    # the image rebuilt from the recorded commit answers through nginx, at the scale set before
    host.route_to("backend-wsgi")  # (the restored backup routes there too; make it certain)
    host.wait_serving("1")
    assert host.app.running() == {"backend-wsgi": 3, "backend-asgi": 0}


async def test_full_rollback_refuses_local_edits_and_changes_nothing(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
    bad_commit = host.deploy_bad_release()
    host.repo.write({"app/version.txt": "edited on the server\n"})
    tgt = target(tmp_path, "host-full-rollback", **host.params())

    result = await run(tmp_path, tgt, ref="last-stable-release")
    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "checkout" and "local edits" in result.error
    assert host.repo.head() == bad_commit
    assert host.app.running() == {"backend-wsgi": 2, "backend-asgi": 2}
    assert version(host.server) == "asgi"


async def test_a_wrong_project_name_fails_before_changing_anything(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
    host.deploy_bad_release()
    tgt = target(tmp_path, "host-config-rollback", **host.params(compose_project="chat-arena"))
    planned = {p.step_id: p.calls for p in await plan(tgt.steps, step_context(tgt, "previous"))}
    assert (
        "compose project 'chat-arena' has no containers for backend-wsgi"
        in (planned["scale_wsgi"][1])
    )

    result = await run(tmp_path, tgt)
    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "scale_wsgi"
    assert (
        "compose project 'chat-arena' has no containers for backend-wsgi"
        " — is compose_project right?"
    ) in result.error
    assert host.app.running() == {"backend-wsgi": 2, "backend-asgi": 2}
    assert (
        host.app.engine.docker(
            "ps", "-a", "-q", "--filter", "label=com.docker.compose.project=chat-arena"
        ).strip()
        == ""
    )  # no second project was created
    assert version(host.server) == "asgi"


async def test_a_run_that_died_in_the_reload_reloads_again_and_finishes(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
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
    host.wait_serving("1")
    assert host.app.running() == {"backend-wsgi": 4, "backend-asgi": 0}


MANAGE_PY = """import json, pathlib, sys
state = pathlib.Path("/app/migrations.json")
applied = json.loads(state.read_text())
if sys.argv[1] == "showmigrations":
    for app in sys.argv[2:]:
        print(app)
        for n in sorted(applied[app]):
            print(f" [X] {n}")
elif sys.argv[1] == "migrate":
    app, target = sys.argv[2], sys.argv[3]
    applied[app] = [n for n in applied[app] if n <= target]
    state.write_text(json.dumps(applied))
"""


async def test_database_rollback_migrates_inside_the_container(
    tmp_path: Path, compose_app, app_backend
) -> None:
    # backend-wsgi: a container with the host's /usr (its python) and a stand-in manage.py
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "python").symlink_to("/usr/bin/python3")
    app_dir = tmp_path / "Chat-Arena-Backend"
    (app_dir / "app").mkdir(parents=True)
    (app_dir / "app" / "version.txt").write_text("1\n")
    (app_dir / "manage.py").write_text(MANAGE_PY)
    migrations = {"ai_model": ["0010", "0011"], "chat_session": ["0009", "0010", "0011"]}
    (app_dir / "migrations.json").write_text(json.dumps(migrations))
    wsgi = {
        "image": PG_CLIENT_IMAGE,
        "pull_policy": "never",
        "network_mode": "host",
        "command": ["/bin/sh", "-c", IDLE.replace("$", "$$")],
        "working_dir": "/app",
        "environment": {"PATH": "/opt/py:/usr/bin:/bin"},
        "volumes": ["/usr:/usr:ro", f"{tools}:/opt/py:ro", f"{app_dir}:/app"],
    }
    app = compose_app(
        app_dir,
        web={"backend-asgi": 1},
        postgres=False,
        project=PROJECT,
        extra={"backend-wsgi": wsgi},
    )
    health = app_backend("good")
    params = {
        "app_dir": str(app_dir),
        "migrations": {"ai_model": "0010", "chat_session": "0010"},
        "lock_file": str(tmp_path / "deployment.lock"),
        "health_urls": [f"{health.url}/api/health/"],
    }
    tgt = target(tmp_path, "host-database-rollback", **params)
    assert tgt.playbook.spec.dangerous is True
    planned = await plan(tgt.steps, step_context(tgt, "previous"))
    migrate = next(p for p in planned if p.step_id == "migrate")
    assert migrate.calls[1].endswith(
        "docker compose -f docker-compose.yml exec -T backend-wsgi python manage.py"
        " migrate ai_model 0010"
    )
    result = await run(tmp_path, tgt)
    assert result.ok, result.error
    out = {s.step_id: s.output for s in result.steps}
    assert " [X] 0011" in out["migrate"]["before"]
    assert json.loads((app_dir / "migrations.json").read_text()) == {
        "ai_model": ["0010"],
        "chat_session": ["0009", "0010"],
    }
    assert app.running() == {"backend-asgi": 1, "backend-wsgi": 1}  # restarted, running


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


def test_rollbot_check_online_names_the_target_whose_project_has_no_containers(
    tmp_path: Path, git_repo, compose_app, nginx
) -> None:
    host = make_host(tmp_path, git_repo, compose_app, nginx, postgres=False)
    right = host.params()
    wrong = host.params(compose_project="chat-arena")
    catalog = {
        "approvers": ["U0LEAD"],
        "channel": "C0INC",
        "targets": {
            "chat-right": {"playbook": "host-config-rollback", **right},
            "chat-wrong": {"playbook": "host-config-rollback", **wrong},
        },
    }
    config = tmp_path / "rollbot.yml"
    config.write_text(yaml.safe_dump(catalog))
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--online"],
        env={**os.environ, "ROLLBOT_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "chat-wrong: step scale_wsgi: compose project 'chat-arena' has no containers for"
        " backend-wsgi — is compose_project right? (name from compose_project (-p))"
    ) in done.stderr
    assert "chat-right" not in done.stderr and "Traceback" not in done.stderr
    assert host.app.running() == {"backend-wsgi": 2, "backend-asgi": 2}
