"""Each changing step says its change in words, before -> after, from the real state read while
planning: ECS revision, image and environment, scale, nginx restore, git checkout, GitHub
workflow, RDS restore. A look-up that fails costs only the sentence, never the plan."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bot.catalog import load_catalog
from playbooks.base import StepContext
from playbooks.changes import env_changes, fingerprint
from playbooks.redact import redact_text
from playbooks.runner import describe, plan, step_context
from playbooks.steps.compose import ComposeScale, ComposeStop
from playbooks.steps.ecs import EcsResolveRevision, EcsUpdateService
from playbooks.steps.ecs_taskdef import EcsRegisterRevision, EcsScaleService
from playbooks.steps.git import GitCheckout, GitResolveRef
from playbooks.steps.nginx import NginxRestore
from tests.playbooks.test_github import REPO, settings
from tests.playbooks.test_rds import SOURCE, make_database
from tests.testbed.aws import REGION, Aws, make_ecs_service
from tests.testbed.git import STABLE_TAG, GitRepo
from tests.testbed.github_api import FakeGitHub, sha
from tests.testbed.nginx import AppBackend, Nginx
from tests.testbed.podman import ComposeApp

CLUSTER = "sandbox-broker-cluster"


def ecs_context(aws: Aws, ref: str = "previous") -> StepContext:
    return StepContext(
        target="api",
        params={"cluster": CLUSTER, "service": "svc-api", "region": REGION},
        ref=ref,
        outputs={"request": {"ref": ref}},
        aws=aws.step_clients(),
    )


async def test_ecs_revision_names_both_revisions_their_images_and_the_task_count(
    aws: Aws,
) -> None:
    make_ecs_service(aws, CLUSTER, "svc-api", "api", revisions=42, desired=2)
    steps = [
        EcsResolveRevision(id="resolve"),
        EcsUpdateService(id="update", use={"task_definition": "resolve.target_task_definition"}),
    ]
    planned = await plan(steps, ecs_context(aws))
    assert planned[0].change is None  # a lookup changes nothing
    assert planned[1].change == (
        "svc-api: `api:42` (image `api:v42`) -> `api:41` (image `api:v41`), 2 tasks"
    )


async def test_ecs_env_rollback_shows_each_variable_and_secrets_only_as_fingerprints(
    aws: Aws,
) -> None:
    make_ecs_service(aws, CLUSTER, "svc-api", "api", revisions=1)
    ecs = aws.client("ecs")
    base = ecs.describe_task_definition(taskDefinition="api:1")["taskDefinition"]

    def register(env: dict[str, str]) -> str:
        container = {**base["containerDefinitions"][0]}
        container["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        made = ecs.register_task_definition(family="api", containerDefinitions=[container])
        return made["taskDefinition"]["taskDefinitionArn"]

    good = register({"TORNADO_PROCESSES": "1", "DB_PASSWORD": "old-secret-value"})
    bad = register({"TORNADO_PROCESSES": "4", "DB_PASSWORD": "new-secret-value", "X": "y"})
    ecs.update_service(cluster=CLUSTER, service="svc-api", taskDefinition=bad)

    change = await EcsRegisterRevision(environment_from=good).describe_change(ecs_context(aws))
    assert change is not None
    assert change.startswith("api (new revision of `api:3`): ")
    assert "TORNADO_PROCESSES: 4 -> 1" in change and "X: y -> (unset)" in change
    new, old = fingerprint("new-secret-value"), fingerprint("old-secret-value")
    assert f"DB_PASSWORD changed ({new} -> {old})" in change
    assert redact_text(change) == change  # the one redactor leaves the fingerprints alone
    assert "secret-value" not in change


def test_many_changed_variables_are_counted_not_listed() -> None:
    before = {f"V{i}": "a" for i in range(9)}
    after = {f"V{i}": "b" for i in range(9)}
    assert env_changes(before, after).endswith("; and 4 more")
    assert env_changes(before, before) == "environment unchanged"


async def test_ecs_scale_says_from_how_many_to_how_many(aws: Aws) -> None:
    make_ecs_service(aws, CLUSTER, "svc-api", "api", revisions=1, desired=3)
    change = await EcsScaleService(desired_count=0).describe_change(ecs_context(aws))
    assert change == "svc-api: 3 -> 0"


async def test_nginx_restore_dates_the_backup_and_counts_the_lines_that_differ(
    nginx: Callable[..., Nginx], app_backend: Callable[..., AppBackend]
) -> None:
    good, bad = app_backend("good"), app_backend("bad")
    server = nginx(good.url)
    backup = server.prefix / "nginx.conf.pre-hybrid.bak"
    backup.write_text(server.conf_path.read_text())
    stamp = time.mktime((2026, 11, 20, 14, 2, 0, 0, 0, 0)) - time.timezone
    os.utime(backup, (stamp, stamp))
    server.write_config(server.config(bad.url))
    ctx = StepContext(
        target="edge",
        params={"nginx_conf": str(server.conf_path), "nginx_backup": str(backup)},
        outputs={"request": {}},
    )
    differ = _differing_lines(backup.read_text(), server.conf_path.read_text())
    assert await NginxRestore().describe_change(ctx) == (
        f"nginx config restored from backup of 2026-11-20 14:02 ({differ} lines differ)"
    )
    server.write_config(backup.read_text())
    assert "already equals its backup" in (await NginxRestore().describe_change(ctx) or "")


def _differing_lines(a: str, b: str) -> int:
    import difflib

    return sum(
        1 for line in difflib.ndiff(a.splitlines(), b.splitlines()) if line[:2] in ("- ", "+ ")
    )


async def test_git_checkout_names_both_commits_and_how_far_back(
    git_repo: Callable[..., GitRepo],
) -> None:
    repo = git_repo()
    stable = repo.rev(STABLE_TAG)
    subject = repo.git("log", "-1", "--format=%s", stable)
    for n in range(13):
        repo.commit(f"change {n}", {"app/version.txt": f"{n}\n"})
    bad = repo.commit("feat: hybrid", {"app/version.txt": "2\n"})
    steps = [
        GitResolveRef(id="resolve", use={"ref": "request.ref"}),
        GitCheckout(id="checkout", use={"ref": "resolve.commit"}),
    ]
    ctx = StepContext(
        target="app",
        params={"app_dir": str(repo.path)},
        ref=STABLE_TAG,
        outputs={"request": {"ref": STABLE_TAG}},
    )
    planned = await plan(steps, ctx)
    assert planned[1].change == (
        f"`{bad[:7]}` feat: hybrid -> `{stable[:7]}` {subject} (14 commits back)"
    )


async def test_github_names_the_workflow_and_the_commit(
    github_api: FakeGitHub, tmp_path: Path
) -> None:
    github_api.add_repo(REPO, tags={"v1.4": sha("v1.4")})
    github_api.add_workflow(REPO, "rollback.yml", name="Emergency Rollback")
    entry = {"playbook": "github-rollback", "github_repo": REPO, "poll_delay": 0.01}
    tgt = _target(tmp_path, "web", entry)
    planned = await plan(tgt.steps, step_context(tgt, "v1.4", settings(github_api)))
    assert planned[1].change == f"workflow Emergency Rollback on `{sha('v1.4')[:7]}` (v1.4)"


async def test_github_without_a_workflow_name_shows_its_file(
    github_api: FakeGitHub, tmp_path: Path
) -> None:
    github_api.add_repo(REPO)
    github_api.add_workflow(REPO, "rollback.yml")
    commit = sha("some commit")
    entry = {"playbook": "github-rollback", "github_repo": REPO, "poll_delay": 0.01}
    tgt = _target(tmp_path, "web", entry)
    ctx = step_context(tgt, commit, settings(github_api))
    ctx.outputs["resolve"] = {"ref": commit, "commit": commit}
    step = tgt.steps[1].model_copy(update={"rollback_to": commit})
    assert await step.describe_change(ctx) == f"workflow rollback.yml on `{commit[:12]}`"


async def test_rds_restore_names_the_new_instance_and_the_snapshot_time(
    aws: Aws, tmp_path: Path
) -> None:
    make_database(aws)
    entry = {
        "playbook": "rds-restore",
        "db_instance": SOURCE,
        "region": REGION,
        "restored_instance_id": "replaydash-restore-0224",
    }
    tgt = _target(tmp_path, "db", entry)
    planned = await plan(tgt.steps, step_context(tgt, "nightly"))
    created = planned[0].output["created"][:16].replace("T", " ")  # type: ignore[index]
    assert planned[1].change == (
        f"new instance `replaydash-restore-0224` from snapshot of {created}"
        f" (`{SOURCE}` stays as it is)"
    )


async def test_a_failed_lookup_costs_the_sentence_not_the_plan(aws: Aws) -> None:
    ctx = ecs_context(aws)  # no such service
    assert await describe(EcsScaleService(desired_count=0), ctx) is None
    waiting = EcsUpdateService(task_definition="<register.task_definition>")
    assert await describe(waiting, ctx) is None  # known only once the run registered it


def _target(tmp_path: Path, name: str, entry: dict[str, Any]) -> Any:
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {name: entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    return load_catalog(tmp_path / "rollbot.yml").targets[name]


def test_a_fingerprint_compares_values_without_showing_them() -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{8}", fingerprint("hunter2"))
    assert fingerprint("hunter2") == fingerprint("hunter2") != fingerprint("hunter3")


async def test_ecs_deployment_without_a_resolve_step_describes_both_revisions_itself(
    aws: Aws,
) -> None:
    arns = make_ecs_service(aws, CLUSTER, "svc-api", "api", revisions=3, desired=1)
    step = EcsUpdateService(task_definition=arns[0])
    assert await step.describe_change(ecs_context(aws)) == (
        "svc-api: `api:3` (image `api:v3`) -> `api:1` (image `api:v1`), 1 task"
    )


async def test_compose_steps_count_the_running_containers_before_and_after(
    compose_app: Callable[..., ComposeApp],
) -> None:
    app = compose_app(postgres=False)
    ctx = StepContext(
        target="web",
        params={
            "app_dir": str(app.app_dir),
            "compose_project": app.project,
            "compose_file": "docker-compose.yml",
        },
        outputs={"request": {}},
    )
    scale = ComposeScale(service="backend-wsgi", replicas=4)
    assert await scale.describe_change(ctx) == "backend-wsgi: 2 -> 4 containers"
    stop = ComposeStop(services=["backend-asgi"], stop_timeout=5)
    assert await stop.describe_change(ctx) == "backend-asgi: 2 running -> stopped"
    await stop.run(ctx)
    assert await stop.describe_change(ctx) == "backend-asgi: 0 running -> stopped"
