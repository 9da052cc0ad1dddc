"""The catalog and `rollbot check`: valid files pass, every mistake is reported with its path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.catalog import load_catalog
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "rollbot.example.yml"

THREE_MISTAKES = """\
approvers: [U0LEAD]
channel: incidents
targets:
  api:
    playbook: ecs-revision
    cluster: c
    service: s
    helth_urls: [http://127.0.0.1:1/]
  worker:
    playbook: ecs-no-such-playbook
    cluster: c
"""


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ROLLBOT_CONFIG": str(config),
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": "s",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "check"], env=env, capture_output=True, text=True, timeout=60
    )


def test_example_catalog_passes_check() -> None:
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    catalog = load_catalog(EXAMPLE)
    for name in catalog.names():
        assert name in result.stdout


def test_check_reports_every_mistake_with_its_key_path(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yml"
    config.write_text(THREE_MISTAKES)
    result = run_check(config)
    assert result.returncode != 0
    out = result.stderr
    assert "3 problem(s)" in out, out
    assert "channel:" in out and "not a Slack channel id" in out
    assert "targets.api.helth_urls: unknown key" in out
    assert "targets.worker.playbook" in out and "no such playbook" in out


def test_loader_raises_all_problems(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yml"
    config.write_text(THREE_MISTAKES)
    with pytest.raises(ConfigError) as err:
        load_catalog(config)
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["channel", "targets.api.helth_urls", "targets.worker.playbook"]


def test_missing_required_parameter_and_bad_yaml(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yml"
    config.write_text("approvers: [U0A]\nchannel: C0A\ntargets:\n  api: {playbook: ecs-revision}\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(config)
    assert {p.path for p in err.value.problems} == {"targets.api.cluster", "targets.api.service"}
    config.write_text("approvers: [U0A\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(config)
    assert "not valid YAML" in str(err.value)


def test_target_overrides_and_templated_step_fields(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yml"
    config.write_text(
        "approvers: [U0A]\nchannel: C0A\ntargets:\n"
        "  api:\n    playbook: ecs-revision\n    cluster: c\n    service: s\n"
        "    approvers: [S0SRE]\n    allow_self_approval: true\n    channel: C0OTHER\n"
    )
    target = load_catalog(config).targets["api"]
    assert target.approvers == ["S0SRE"]
    assert target.allow_self_approval is True
    assert target.channel == "C0OTHER"
    assert target.params["cluster"] == "c"
    assert target.steps[0].type == "ecs.resolve_revision"


def test_maintenance_names_two_targets_of_the_catalog(tmp_path: Path) -> None:
    # bare on/off keys are YAML 1.1 booleans; they must still mean on and off
    config = tmp_path / "rollbot.yml"
    config.write_text("""\
approvers: [U0LEAD]
channel: C0INC
targets:
  web:
    playbook: ecs-revision
    cluster: c
    service: s
    maintenance: {on: web-503, off: web-back}
  web-503: {playbook: alb-maintenance-on, listener_arn: arn:l}
  web-back: {playbook: alb-maintenance-off, listener_arn: arn:l}
""")
    catalog = load_catalog(config)
    assert catalog.maintenance_target("web", on=True) == "web-503"
    assert catalog.maintenance_target("web", on=False) == "web-back"
    assert catalog.maintenance_target("web-503", on=True) is None
    assert catalog.with_maintenance() == ["web"]

    config.write_text(config.read_text().replace("off: web-back", "off: web-gone"))
    with pytest.raises(ConfigError) as err:
        load_catalog(config)
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("targets.web.maintenance.off", "no target named 'web-gone'")
    ]
