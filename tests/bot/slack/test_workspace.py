"""Which workspace a request may come from: the installation's team, or for an org-wide
install the listed teams of its enterprise."""

from __future__ import annotations

import pytest

from bot.settings import Settings
from bot.slack.workspace import foreign

NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("team", "enterprise", "own_team", "own_enterprise", "allowed", "refused"),
    [
        ("T1", None, "T1", None, NONE, False),
        ("T2", None, "T1", None, NONE, True),
        (None, None, "T1", None, NONE, True),
        ("T1", "E1", "T1", None, NONE, True),  # an enterprise the install is not part of
        ("T1", None, "T1", "E1", NONE, True),
        ("T1", "E1", "T1", "E1", NONE, False),
        ("T1", "E2", "T1", "E1", NONE, True),
        ("T2", "E1", "T1", "E1", frozenset({"T1", "T2"}), False),
        ("T3", "E1", "T1", "E1", frozenset({"T1", "T2"}), True),
        ("T2", "E2", "T1", "E1", frozenset({"T1", "T2"}), True),
        ("T1", None, None, None, NONE, True),  # the installation is unknown: nothing served
    ],
)
def test_foreign(
    team: str | None,
    enterprise: str | None,
    own_team: str | None,
    own_enterprise: str | None,
    allowed: frozenset[str],
    refused: bool,
) -> None:
    why = foreign(team, enterprise, own_team, own_enterprise, allowed)
    assert bool(why) is refused


def test_allowed_teams_and_approval_timeout_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().rollbot_approval_timeout == 1800
    assert Settings().allowed_teams == frozenset()
    monkeypatch.setenv("ROLLBOT_ALLOWED_TEAMS", " T1, T2 ,,")
    monkeypatch.setenv("ROLLBOT_APPROVAL_TIMEOUT", "60")
    assert Settings().allowed_teams == {"T1", "T2"}
    assert Settings().rollbot_approval_timeout == 60
    monkeypatch.setenv("ROLLBOT_APPROVAL_TIMEOUT", "0")
    with pytest.raises(ValueError):
        Settings()
