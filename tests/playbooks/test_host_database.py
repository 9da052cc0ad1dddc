"""Runbook 004's database snapshot and phase-5 fallback through the engine: real pg_dump and
pg_restore run by `docker compose exec` in a real container (the host's PostgreSQL client tools,
its /usr mounted read-only) against a real PostgreSQL server, real git, nginx and containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks.runner import plan, step_context
from tests.playbooks.test_host_playbooks import _only, run, target
from tests.testbed.host import Host, make_host
from tests.testbed.postgres import SUPERUSER, PostgresServer

SCHEMA = """
CREATE TABLE messages (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO messages VALUES (1, 'hello'), (2, 'world'), (3, 'again');
"""
# what the bad deployment's migration did
MIGRATION = """
ALTER TABLE messages ADD COLUMN model text;
DELETE FROM messages WHERE id = 1;
CREATE TABLE chat_session (id int);
"""


@pytest.fixture
def db_host(
    tmp_path: Path,
    git_repo: Any,
    compose_app: Any,
    nginx: Any,
    postgres_server: PostgresServer,
) -> tuple[Host, PostgresServer, str, dict[str, Any]]:
    host = make_host(tmp_path, git_repo, compose_app, nginx)
    database = postgres_server.create_database()
    postgres_server.psql(database, SCHEMA)
    params = {
        **host.params(),
        "database": database,
        "db_user": SUPERUSER,
        "db_host": postgres_server.host,
        "db_port": postgres_server.port,
        # /backups inside the postgres container is this directory on the host
        "archive": "/backups/pre-migration.dump",
    }
    return host, postgres_server, database, params


def rows(server: PostgresServer, database: str) -> str:
    return server.psql(database, "SELECT * FROM messages ORDER BY id")


def tables(server: PostgresServer, database: str) -> list[str]:
    listed = server.psql(
        database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    return listed.splitlines()


async def test_snapshot_then_fallback_brings_data_and_code_back(
    tmp_path: Path, db_host: tuple[Host, PostgresServer, str, dict[str, Any]]
) -> None:
    host, server, database, params = db_host
    backup = target(tmp_path, "host-database-backup", **_only(params, "host-database-backup"))
    taken = await run(tmp_path, backup, rid="db-backup")
    assert taken.ok, taken.error
    assert taken.steps[0].output["entries"] >= 3  # table, its data, its primary key
    good_commit = host.repo.head()
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(good_commit + "\n")

    host.repo.commit("hybrid WSGI+ASGI", {"app/version.txt": "2\n"})
    host.app.compose("up", "-d", "--build", "--no-deps", "backend-wsgi")
    host.wait_serving("2")
    server.psql(database, MIGRATION)
    assert tables(server, database) == ["chat_session", "messages"]

    fallback_params = {**params, "recorded_commit_file": str(record)}
    tgt = target(
        tmp_path, "host-emergency-fallback", **_only(fallback_params, "host-emergency-fallback")
    )
    assert tgt.playbook.spec.dangerous
    result = await run(tmp_path, tgt)
    assert result.ok, result.error

    assert rows(server, database) == "1|hello\n2|world\n3|again"  # the column is gone too
    # objects the dump does not hold are left alone (pg_restore --clean drops only its own)
    assert tables(server, database) == ["chat_session", "messages"]
    assert host.repo.head() == good_commit
    dump = host.repo.path.parent / "backups" / "pre-migration.dump"
    assert dump.stat().st_size > 0  # written inside the container, to the mounted volume
    out = {s.step_id: s.output for s in result.steps}
    assert "exec -T postgres pg_restore" in out["restore"]["command"]
    assert host.app.running() == {"backend-wsgi": 2, "backend-asgi": 2, "postgres": 1}
    host.wait_serving("1")  # the rebuilt image of the recorded commit, through nginx


async def test_a_missing_dump_ends_the_fallback_while_the_app_still_runs(
    tmp_path: Path, db_host: tuple[Host, PostgresServer, str, dict[str, Any]]
) -> None:
    host, server, database, params = db_host
    server.psql(database, MIGRATION)
    tgt = target(tmp_path, "host-emergency-fallback", **_only(params, "host-emergency-fallback"))
    result = await run(tmp_path, tgt)

    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "check_dump"
    assert "the database dump cannot be read" in result.error
    assert "pre-migration.dump" in result.error  # pg_restore's own words are quoted
    assert [s.step_id for s in result.steps] == ["lock", "check_dump"]
    assert host.app.running()["backend-wsgi"] == 2  # nothing was stopped
    assert rows(server, database) == "2|world|\n3|again|"


async def test_a_restore_that_fails_half_way_is_rolled_back_whole(
    tmp_path: Path, db_host: tuple[Host, PostgresServer, str, dict[str, Any]]
) -> None:
    _, server, database, params = db_host
    backup = target(tmp_path, "host-database-backup", **_only(params, "host-database-backup"))
    assert (await run(tmp_path, backup, rid="db-backup")).ok
    server.psql(database, MIGRATION)
    # a view on the table makes pg_restore's DROP TABLE fail after other statements ran
    server.psql(database, "CREATE VIEW recent AS SELECT id FROM messages")
    tgt = target(tmp_path, "host-emergency-fallback", **_only(params, "host-emergency-fallback"))

    result = await run(tmp_path, tgt)
    assert not result.ok and result.failed_step is not None
    assert result.failed_step.step_id == "restore"
    assert "rolled back" in result.error and "depend" in result.error
    assert rows(server, database) == "2|world|\n3|again|"  # untouched
    assert tables(server, database) == ["chat_session", "messages"]
    assert [s.step_id for s in result.steps][-1] == "restore"  # no checkout, no rebuild


async def test_the_plan_shows_every_command_and_hides_the_password(
    tmp_path: Path, db_host: tuple[Host, PostgresServer, str, dict[str, Any]]
) -> None:
    _, _, database, params = db_host
    tgt = target(tmp_path, "host-emergency-fallback", **_only(params, "host-emergency-fallback"))
    planned = {p.step_id: p.calls for p in await plan(tgt.steps, step_context(tgt, "previous"))}
    restore = planned["restore"][1]
    assert "exec -T postgres pg_restore" in restore and f"--dbname={database}" in restore
    assert "--single-transaction" in restore and "--clean --if-exists" in restore

    secret = target(
        tmp_path,
        "host-database-backup",
        **_only(params, "host-database-backup"),
    )
    dump = secret.steps[0].model_copy(update={"env": {"PGPASSWORD": "s3cret-value"}})
    shown = await dump.plan(step_context(secret, "previous"))
    assert "s3cret-value" not in " ".join(shown) and "PGPASSWORD=" in shown[0]
