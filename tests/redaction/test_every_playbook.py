"""The planted-secret corpus through every shipped playbook: each counterpart carries the
planted values where a real one keeps them (task-definition environments on moto, listener
tags and a maintenance page on the ALB, RDS tags and the master password, a GitHub API error
echoing the requested ref, health bodies, nginx configurations, git commit messages, compose
service output and a migration's output). The plan and the run go through the real runner
and a real SQLite store; no planted value may be in `rollbot plan` output, the approval
request and plan file, the journal, the raw store file, the completion or failure message,
the failure output file or the incident report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bot.catalog import load_catalog
from bot.cli import plan_target
from bot.rollback import messaging as msg
from bot.rollback import records, report
from bot.rollback.execution import Execution, _checklist, _verification_start
from bot.rollback.models import RollbackData, State, StepRecord
from bot.settings import Settings
from bot.slack import outgoing
from bot.store.audit import audit_entry
from bot.store.sqlite import SqliteStore
from playbooks.base import NothingToDo, StepFailed
from playbooks.loader import load_playbook, shipped_playbooks
from playbooks.runner import PlaybookRunner, RunResult, plan, step_context
from playbooks.steps.http import BODY_EXCERPT
from tests.playbooks.test_host_playbooks import _only
from tests.testbed import secrets
from tests.testbed.alb import make_listener
from tests.testbed.aws import Aws, make_ecs_service, register_revisions
from tests.testbed.github_api import TOKEN, FakeGitHub, sha
from tests.testbed.host import APP_DIR_NAME, PROJECT, Host, make_host
from tests.testbed.podman import IDLE, PG_CLIENT_IMAGE
from tests.testbed.postgres import SUPERUSER, PostgresServer
from tests.testbed.secrets import leaks

CLUSTER = "planted-cluster"
RID = "rb-planted"
GITHUB_REPO = "example-org/planted"
PLANTED_REF = "ghp_PlantedGitHubToken6abcdefghijklmnop"  # echoed back by GitHub's 422
PLANTED_SNAPSHOT = "sk_live_PlantedStripe13abcdefghij"
MAINTENANCE_PAGE = secrets.text()[:1024]  # the most a fixed response's body may hold

CLOUD = [
    "alb-maintenance-off",
    "alb-maintenance-on",
    "ecs-env-override",
    "ecs-env-rollback",
    "ecs-image",
    "ecs-multi-service",
    "ecs-restart",
    "ecs-revision",
    "ecs-scale",
    "github-rollback",
    "rds-restore",
]
HOST = [
    "host-backup",
    "host-config-rollback",
    "host-database-backup",
    "host-database-rollback",
    "host-emergency-fallback",
    "host-full-rollback",
]
# ecs-scale reads only the service's counts and rollout state (moto gives no failure reason
# to plant in): its planted task definition is never read, so it sees nothing planted
READS_NOTHING_PLANTED = {"ecs-scale"}


@dataclass
class Bed:
    """One planted target: its catalog parameters, the ref asked for, the bot's settings."""

    params: dict[str, Any]
    ref: str = "previous"
    settings: dict[str, Any] = field(default_factory=dict)


def test_every_shipped_playbook_is_planted() -> None:
    assert sorted(CLOUD + HOST) == shipped_playbooks()


def test_the_corpus_is_large_enough() -> None:
    assert len(secrets.CORPUS) >= 25 and len(set(secrets.VALUES)) == len(secrets.CORPUS)


# -- planting -------------------------------------------------------------------------------------


def planted_health(http_backend: Callable[[], Any]) -> list[str]:
    """Health endpoints that fail, answering with the planted lines between them: each body
    within what a failing check keeps of it, so every planted value reaches the bot."""
    bodies = [""]
    for p in secrets.CORPUS:
        if len(bodies[-1]) + len(p.line) + 1 > BODY_EXCERPT:
            bodies.append("")
        bodies[-1] += p.line + "\n"
    urls = []
    for body in bodies:
        backend = http_backend()
        backend.status, backend.body = 503, body
        urls.append(backend.url)
    return urls


def ecs_bed(aws: Aws, playbook: str, health: list[str]) -> Bed:
    env = secrets.environment()
    common = {"cluster": CLUSTER, "region": aws.region, "health_urls": health}
    if playbook == "ecs-env-rollback":
        # the revision before the running one holds the planted environment
        register_revisions(aws, "api", 1, environment=env)
        make_ecs_service(aws, CLUSTER, "api", "api", revisions=1, environment={"MODE": "fast"})
        return Bed({**common, "service": "api"})
    if playbook == "ecs-env-override":
        make_ecs_service(aws, CLUSTER, "api", "api", revisions=2, environment={"MODE": "fast"})
        return Bed({**common, "service": "api", "environment": env})
    make_ecs_service(aws, CLUSTER, "api", "api", revisions=3, environment=env)
    params: dict[str, Any] = {**common, "service": "api"}
    if playbook == "ecs-multi-service":
        make_ecs_service(aws, CLUSTER, "worker", "worker", revisions=3, environment=env)
        params["worker_service"] = "worker"
    if playbook == "ecs-restart":
        params["desired_count"] = 2
    if playbook == "ecs-scale":
        params.pop("health_urls")
    return Bed(params, "v7" if playbook == "ecs-image" else "previous")


def alb_bed(aws: Aws, playbook: str, health: list[str]) -> Bed:
    arns = make_listener(aws, with_rule=True)
    elb = aws.client("elbv2")
    named = [p for p in secrets.CORPUS if p.env_name][:9]  # ELB keeps at most 10 tags
    tags = [{"Key": p.env_name, "Value": p.value} for p in named]
    elb.add_tags(ResourceArns=[arns["listener"]], Tags=tags)
    params = {"listener_arn": arns["listener"], "region": aws.region, "health_urls": health}
    if playbook == "alb-maintenance-on":
        return Bed({**params, "message": MAINTENANCE_PAGE})
    # maintenance is on, by hand: the page in the listener's configuration carries the lines
    page = {"StatusCode": "503", "ContentType": "text/plain", "MessageBody": MAINTENANCE_PAGE}
    elb.modify_listener(
        ListenerArn=arns["listener"],
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": page}],
    )
    return Bed({**params, "restore_target_group_arn": arns["api"]})


def rds_bed(aws: Aws) -> Bed:
    rds = aws.client("rds")
    named = [p for p in secrets.CORPUS if p.env_name]
    rds.create_db_instance(
        DBInstanceIdentifier="planted-db",
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword=named[0].value,
        AllocatedStorage=20,
        Tags=[{"Key": p.env_name, "Value": p.value} for p in named],
    )
    rds.create_db_snapshot(
        DBInstanceIdentifier="planted-db",
        DBSnapshotIdentifier="nightly",
        Tags=[{"Key": f"note-{i}", "Value": p.line[:256]} for i, p in enumerate(secrets.CORPUS)],
    )
    # a snapshot asked for by a name that is a pasted key: refused, and the refusal names it
    params = {"db_instance": "planted-db", "region": aws.region, "wait_minutes": 1}
    return Bed(params, PLANTED_SNAPSHOT)


def github_bed(github: FakeGitHub, health: list[str]) -> Bed:
    github.add_repo(GITHUB_REPO, tags={"v1": sha("v1")})
    github.add_workflow(GITHUB_REPO, "rollback.yml", required=["environment", "rollback_to_tag"])
    settings = {"github_api_url": github.url, "github_token": TOKEN}
    return Bed({"github_repo": GITHUB_REPO, "health_urls": health}, PLANTED_REF, settings)


# -- running and looking everywhere ---------------------------------------------------------------


def write_catalog(tmp_path: Path, playbook: str, bed: Bed) -> Path:
    entry = {"playbook": playbook, "poll_delay": 0.05, "poll_timeout": 5, **bed.params}
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"planted": entry}}
    path = tmp_path / "rollbot.yml"
    path.write_text(yaml.safe_dump(catalog))
    return path


def quick_checks(tgt: Any) -> None:
    """One attempt per health check: the planted endpoint fails, retrying shows nothing new."""
    for i, step in enumerate(tgt.steps):
        if step.type == "http.check":
            tgt.steps[i] = step.model_copy(update={"attempts": 1})


async def plan_and_run(
    tmp_path: Path, playbook: str, bed: Bed, capsys: pytest.CaptureFixture[str]
) -> dict[str, str | bytes]:
    """Plan and run `playbook` as Rollbot would; every text it would let out, by where."""
    config = write_catalog(tmp_path, playbook, bed)
    settings = Settings(rollbot_config=config, **bed.settings)
    await plan_target(settings, "planted", bed.ref)
    cli_output = capsys.readouterr()
    tgt = load_catalog(config).targets["planted"]
    quick_checks(tgt)
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        return await _through_the_store(store, tgt, bed, settings, cli_output.out + cli_output.err)
    finally:
        await store.close()


async def _through_the_store(
    store: SqliteStore, tgt: Any, bed: Bed, settings: Settings, cli_output: str
) -> dict[str, str | bytes]:
    ctx = step_context(tgt, bed.ref, settings)
    try:
        planned = await plan(tgt.steps, ctx)
        plan_error = ""
    except (StepFailed, NothingToDo) as exc:  # the request would be answered with this
        planned, plan_error = [], str(exc)
    data = RollbackData(
        target="planted",
        playbook=tgt.playbook.name,
        ref=bed.ref,
        requester="U0REQ",
        approver="U0LEAD",
        channel="C0INC",
        plan=[p.to_dict() for p in planned],
    )
    record = await records.create(store, RID, data)
    shown = records.data_of(record)
    places: dict[str, str | bytes] = {
        "what the bot saw": json.dumps([p.to_dict() for p in planned]) + plan_error,
        "rollbot plan": cli_output,
        "the answer to the request": outgoing.text(plan_error),
        "the approval request": json.dumps(
            outgoing.blocks(msg.approval_blocks(RID, shown, ["U0LEAD"]))
        ),
        "the plan file": outgoing.file(msg.plan_document(RID, shown)),
    }
    if planned:
        result = await PlaybookRunner(store, RID, approved=planned).run(
            tgt.steps, step_context(tgt, bed.ref, settings)
        )
        places.update(await _ended(store, tgt, result, shown))
        seen = [s.output for s in result.steps] + [result.error]
        places["what the bot saw"] += json.dumps(seen, default=str)
    places["the journal"] = json.dumps([e.model_dump() for e in await store.journal(RID)])
    return places


async def _ended(
    store: SqliteStore, tgt: Any, result: RunResult, data: RollbackData
) -> dict[str, str]:
    """The completion message, the files in the thread and the incident report."""
    steps = [
        StepRecord(
            index=s.index,
            step_id=s.step_id,
            title=s.title,
            outcome=s.outcome,
            seconds=s.seconds,
            error=s.error,
            output=s.output,
        )
        for s in result.steps
    ]
    checklist = _checklist(result, _verification_start(tgt.steps))
    outcome = State.SUCCEEDED if result.ok else State.FAILED
    patch = {"steps": [s.model_dump() for s in steps], "checklist": checklist}
    ended = audit_entry("rollbot", f"rollback.{outcome.value}", RID, error=result.error)
    record = await store.transition(
        RID, {State.REQUESTED.value}, outcome.value, {**patch, "error": result.error}, ended
    )
    assert record is not None
    execution = SimpleNamespace(
        id=RID,
        step_ids=[s.id for s in tgt.steps],
        mutating={s.id for s in tgt.steps if s.mutating},
    )
    failure = Execution._failure(execution, result)  # type: ignore[arg-type]
    changes = Execution._changes(execution, result)  # type: ignore[arg-type]
    full = msg.completion(
        None,
        record,
        records.data_of(record),
        outcome=outcome,
        error=result.error,
        checklist=checklist,
        changes=changes,
        **failure,
    )
    text, blocks, complete = msg.completion_message(full)
    files = Execution._full_texts(execution, result, full, complete)  # type: ignore[arg-type]
    services = SimpleNamespace(store=store, settings=SimpleNamespace(rollbot_templates=None))
    return {
        "the completion message": outgoing.text(text) + json.dumps(outgoing.blocks(blocks)),
        "the files in the thread": "".join(outgoing.file(c) + t for _, t, c in files),
        "the incident report": await report.incident_report(services, RID),  # type: ignore[arg-type]
    }


def assert_nothing_leaked(
    tmp_path: Path, places: dict[str, str | bytes], playbook: str = "", least: int = 1
) -> None:
    """No planted value anywhere it could leave by; and the bot did see planted values (so
    this can fail: with the redactor gone they would be in the places looked at)."""
    saw = leaks(places.pop("what the bot saw"))
    if playbook not in READS_NOTHING_PLANTED:
        assert len(saw) >= least, f"only these planted values reached the bot: {saw}"
    places["the raw store file"] = b"".join(p.read_bytes() for p in tmp_path.glob("rollbot.db*"))
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert not found, found


# -- the cloud playbooks --------------------------------------------------------------------------


@pytest.mark.parametrize("playbook", CLOUD)
async def test_planted_secrets_never_leave_a_cloud_playbook(
    playbook: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    http_backend: Callable[[], Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    if playbook.startswith("github"):
        bed = github_bed(request.getfixturevalue("github_api"), planted_health(http_backend))
    elif playbook.startswith("rds"):
        bed = rds_bed(request.getfixturevalue("aws"))
    else:
        aws = request.getfixturevalue("aws")
        make = alb_bed if playbook.startswith("alb") else ecs_bed
        bed = make(aws, playbook, planted_health(http_backend))
    places = await plan_and_run(tmp_path, playbook, bed, capsys)
    # GitHub and RDS refuse the planted ref while planning; the others reach their health check
    refused = playbook.startswith(("github", "rds"))
    assert refused or "the completion message" in places
    least = 1 if refused else len(secrets.CORPUS)
    if playbook == "alb-maintenance-on":  # its check wants the 503: only the page carries them
        least = len(leaks(MAINTENANCE_PAGE))
    assert_nothing_leaked(tmp_path, places, playbook, least)


# -- the host playbooks ---------------------------------------------------------------------------

NGINX_TOKEN = "xoxb-1111111111-2222222222-PlantedBotTok1"  # nginx quotes an unknown directive
MISSING_DATABASE = "sk_live_PlantedStripe13abcdefghij"  # PostgreSQL names a database it lacks
FAILING_MANAGE_PY = f"import sys\nprint({secrets.text()!r})\nsys.exit(1)\n"


def planted_commit(host: Host, files: dict[str, str]) -> str:
    """A commit whose subject (no blank line: git joins the lines) carries every planted line."""
    return host.repo.commit(secrets.text(), files)


def planted_nginx(host: Host, broken: bool) -> None:
    """The saved nginx configuration, with planted comments and, if `broken`, a directive
    named by a token (nginx quotes it when it refuses the file)."""
    comments = "".join(f"# {line}\n" for line in secrets.lines())
    conf = host.server.config(host.app.url("backend-wsgi")[0])
    if broken:
        conf = conf.replace("proxy_pass", NGINX_TOKEN, 1)
    (host.server.prefix / "nginx.conf.pre-hybrid.bak").write_text(comments + conf)


def host_bed(playbook: str, tmp_path: Path, request: pytest.FixtureRequest) -> Bed:
    if playbook == "host-database-rollback":
        return migration_bed(tmp_path, request)
    fixtures = [request.getfixturevalue(n) for n in ("git_repo", "compose_app", "nginx")]
    database = "database" in load_playbook(playbook).spec.params
    host = make_host(tmp_path, *fixtures, postgres=database)
    record = tmp_path / "pre-migration-commit.txt"
    record.write_text(planted_commit(host, {"notes.txt": "planted\n"}) + "\n")
    planted_commit(host, {"app/version.txt": "2\n"})  # the release that went wrong
    planted_nginx(host, broken=playbook != "host-backup")
    params = {**host.params(), "recorded_commit_file": str(record)}
    if playbook == "host-backup":
        (host.server.prefix / "nginx.conf.pre-hybrid.bak").unlink()
        host.server.write_config(host.server.conf_path.read_text() + "# " + secrets.text()[:200])
        env = "".join(f"{k}={v!r}\n" for k, v in secrets.environment().items())
        (host.repo.path / ".env").write_text(env)
    if database:
        params.update(database_params(tmp_path, host, playbook, request))
    return Bed(_only(params, playbook))


def database_params(
    tmp_path: Path, host: Host, playbook: str, request: pytest.FixtureRequest
) -> dict[str, Any]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = server.create_database()
    server.psql(database, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('x');")
    archive = host.repo.path.parent / "backups" / "pre-migration.dump"
    if playbook == "host-database-backup":
        database = MISSING_DATABASE
    else:  # the fallback restores a real archive first
        pg_dump = server.bin_dir / "pg_dump"
        subprocess.run(
            [str(pg_dump), "-Fc", "-f", str(archive), *server.connection(database)], check=True
        )
    return {
        "database": database,
        "db_user": SUPERUSER,
        "db_host": server.host,
        "db_port": server.port,
        "archive": "/backups/pre-migration.dump",
    }


def migration_bed(tmp_path: Path, request: pytest.FixtureRequest) -> Bed:
    """The WSGI container's manage.py prints every planted line and fails."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "python").symlink_to("/usr/bin/python3")
    app_dir = tmp_path / APP_DIR_NAME
    (app_dir / "app").mkdir(parents=True)
    (app_dir / "app" / "version.txt").write_text("1\n")
    (app_dir / "manage.py").write_text(FAILING_MANAGE_PY)
    wsgi = {
        "image": PG_CLIENT_IMAGE,
        "pull_policy": "never",
        "network_mode": "host",
        "command": ["/bin/sh", "-c", IDLE.replace("$", "$$")],
        "working_dir": "/app",
        "environment": {
            "PATH": "/opt/py:/usr/bin:/bin",
            **dict(list(secrets.environment().items())[:5]),
        },
        "volumes": ["/usr:/usr:ro", f"{tools}:/opt/py:ro", f"{app_dir}:/app"],
    }
    request.getfixturevalue("compose_app")(
        app_dir,
        web={"backend-asgi": 1},
        postgres=False,
        project=PROJECT,
        extra={"backend-wsgi": wsgi},
    )
    params = {
        "app_dir": str(app_dir),
        "migrations": {"ai_model": "0010"},
        "lock_file": str(tmp_path / "deployment.lock"),
        "health_urls": ["http://127.0.0.1:9/api/health/"],
    }
    return Bed(params)


@pytest.mark.parametrize("playbook", HOST)
async def test_planted_secrets_never_leave_a_host_playbook(
    playbook: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bed = host_bed(playbook, tmp_path, request)
    places = await plan_and_run(tmp_path, playbook, bed, capsys)
    assert "the completion message" in places
    # these stop at the one planted value nginx or PostgreSQL quotes back; the others read
    # the planted commit subjects, the .env or the migration's output
    one = playbook in ("host-config-rollback", "host-database-backup")
    assert_nothing_leaked(tmp_path, places, playbook, 1 if one else len(secrets.CORPUS))
