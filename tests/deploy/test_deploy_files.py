"""The deployment files: the Dockerfile passes hadolint, the Kubernetes manifests pass
kubernetes-validate --strict, and the settings that make a drain safe agree with each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.testbed.rollbot_process import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'", pytrace=False)
    return found


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(KUBERNETES.glob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=" in text and "FROM ${BASE_IMAGE}" in text
    assert "\nUSER 10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["rollbot"]' in text  # exec form: SIGTERM reaches the bot


def test_kubernetes_manifests_validate_strictly() -> None:
    files = sorted(str(p) for p in KUBERNETES.glob("*.yml"))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *files], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files), result.stdout


def test_deployment_drains_within_its_grace_period() -> None:
    found = manifests()
    deployment = found["Deployment"]["spec"]
    assert deployment["replicas"] == 2
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    drain = float(env["ROLLBOT_DRAIN_SECONDS"]["value"])
    assert pod["terminationGracePeriodSeconds"] > drain + 10  # drain + the HTTP shutdown
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    for secret in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL"):
        assert "secretKeyRef" in env[secret]["valueFrom"], secret
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["catalog"]["configMap"]["name"] == found["ConfigMap"]["metadata"]["name"]


def test_configmap_catalog_passes_check(tmp_path: Path) -> None:
    catalog = tmp_path / "rollbot.yml"
    catalog.write_text(manifests()["ConfigMap"]["data"]["rollbot.yml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLBOT_", "REDIS_"))}
    env.update(ROLLBOT_CONFIG=str(catalog), ROLLBOT_DB=str(tmp_path / "rollbot.db"))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_keeps_redis_appendonly_and_drains() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yml").read_text())
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    bot = compose["services"]["rollbot"]
    assert bot["environment"]["REDIS_URL"].startswith("redis://redis:")
    grace = int(bot["stop_grace_period"].rstrip("s"))
    assert grace > float(bot["environment"]["ROLLBOT_DRAIN_SECONDS"])
