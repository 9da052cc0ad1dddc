"""`rollbot plan` prints a plan for every target of rollbot.example.yml, with the AWS side on
moto, GitHub on its fake and the host paths in a temporary git checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.loader import load_playbook
from playbooks.steps.alb import TAG
from tests.testbed.alb import make_listener
from tests.testbed.aws import Aws, make_ecs_service
from tests.testbed.git import GitRepo
from tests.testbed.github_api import TOKEN, FakeGitHub, sha

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "rollbot.example.yml").read_text())
TARGETS = sorted(EXAMPLE["targets"])


def in_region(aws: Aws, region: str) -> Aws:
    return Aws(aws.endpoint, region=region)


def aws_side(aws: Aws, targets: dict[str, dict[str, Any]]) -> None:
    """The clusters, services, listener and database the example names, in its regions."""
    made: set[tuple[str, str]] = set()
    for t in targets.values():
        if "cluster" in t:
            for service in (t["service"], t.get("worker_service")):
                if service and (t["region"], service) not in made:
                    region = in_region(aws, t["region"])
                    family = t.get("container", service)  # moto's container = family name
                    make_ecs_service(region, t["cluster"], service, family, revisions=3)
                    made.add((t["region"], service))
    east = in_region(aws, "us-east-1")
    arns = make_listener(east)
    for name in ("replaydash-maintenance-on", "replaydash-maintenance-off"):
        targets[name]["listener_arn"] = arns["listener"]
    # as alb-maintenance-on leaves it: the forward action to restore, kept in a tag
    east.client("elbv2").add_tags(
        ResourceArns=[arns["listener"]], Tags=[{"Key": TAG, "Value": arns["api"]}]
    )
    rds = east.client("rds")
    db = targets["replaydash-db"]["db_instance"]
    rds.create_db_instance(
        DBInstanceIdentifier=db,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
    )
    rds.create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier="nightly")


def github_side(github: FakeGitHub, target: dict[str, Any]) -> None:
    repo = target["github_repo"]
    github.add_repo(repo, tags={"v1.2.3": sha("v1.2.3")})
    github.add_workflow(repo, "rollback.yml")
    github.add_workflow(repo, "deploy-prod.yml")
    github.add_run(repo, "deploy-prod.yml", sha("good"), minutes_ago=60)
    github.add_run(repo, "deploy-prod.yml", sha("live"), minutes_ago=5)


def host_side(repo: GitRepo, tmp_path: Path, targets: dict[str, dict[str, Any]]) -> None:
    (tmp_path / "nginx.conf").write_text("events {}\n")
    (tmp_path / "nginx.conf.pre-hybrid.bak").write_text("events {}\n")
    recorded = tmp_path / "pre-migration-commit.txt"
    recorded.write_text(repo.head() + "\n")
    for t in targets.values():
        if "app_dir" in t:
            t["app_dir"] = str(repo.path)
            for key in ("nginx_conf", "nginx_backup"):
                if key in t:
                    t[key] = str(tmp_path / Path(t[key]).name)
        if t["playbook"] in ("host-backup", "host-full-rollback", "host-emergency-fallback"):
            t["recorded_commit_file"] = str(recorded)


@pytest.fixture
def example(aws: Aws, github_api: FakeGitHub, git_repo: Any, tmp_path: Path) -> dict[str, str]:
    """The example catalog, pointed at the test bed; returns the environment for `plan`."""
    catalog = yaml.safe_load((ROOT / "rollbot.example.yml").read_text())
    targets = catalog["targets"]
    aws_side(aws, targets)
    github_side(github_api, targets["conflicto"])
    host_side(git_repo(), tmp_path, targets)
    config = tmp_path / "rollbot.yml"
    config.write_text(yaml.safe_dump(catalog))
    return {
        **os.environ,
        **aws.env,
        "ROLLBOT_CONFIG": str(config),
        "GITHUB_API_URL": github_api.url,
        "GITHUB_TOKEN": TOKEN,
    }


@pytest.mark.parametrize("name", TARGETS)
def test_plan_prints_every_step_of_each_example_target(name: str, example: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "plan", name],
        env=example,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    playbook = load_playbook(EXAMPLE["targets"][name]["playbook"], ROOT)
    assert f"Plan for {name} ({playbook.name}" in result.stdout
    assert "nothing will be changed" in result.stdout
    for n in range(1, len(playbook.spec.steps) + 1):
        assert f"\n {n}. [" in result.stdout or f"\n{n}. [" in result.stdout, result.stdout
