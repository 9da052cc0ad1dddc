"""A target's approval terms in rollbot.yml: how many approvers, and how long a request waits."""

from pathlib import Path

import pytest

from bot.catalog import Catalog, load_catalog
from bot.errors import ConfigError

CATALOG = """\
approvers: [U0LEAD]
channel: C0INCIDENTS
targets:
  api:
    playbook: ecs-revision
    cluster: c
    service: s
{extra}"""


def load(tmp_path: Path, extra: str = "") -> Catalog:
    path = tmp_path / "rollbot.yml"
    path.write_text(CATALOG.format(extra=extra))
    return load_catalog(path)


def test_one_approval_and_the_process_timeout_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path).targets["api"].settings
    assert settings.approvals == 1 and settings.approval_timeout is None


def test_a_target_sets_its_approvals_and_timeout(tmp_path: Path) -> None:
    settings = load(tmp_path, "    approvals: 2\n    approval_timeout: 600\n").targets["api"]
    assert settings.settings.approvals == 2 and settings.settings.approval_timeout == 600
    assert "approvals" not in settings.params  # Rollbot's own keys, not playbook parameters


@pytest.mark.parametrize("extra", ["    approvals: 0\n", "    approval_timeout: 0\n"])
def test_nonsense_terms_are_refused_with_their_key(tmp_path: Path, extra: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, extra)
    assert "targets.api.approval" in str(err.value)
