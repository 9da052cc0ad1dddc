"""Parsing of /rollback and /diagnose text."""

import pytest

from bot import slash as cmd


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", cmd.OpenModal()),
        ("   ", cmd.OpenModal()),
        ("help", cmd.Help()),
        ("status", cmd.Status()),
        ("history", cmd.History()),
        ("history API", cmd.History("api")),
        ("cancel rb-1a2b3c4d", cmd.Cancel("rb-1a2b3c4d")),
        ("api", cmd.StartRollback("api")),
        ("api to 9", cmd.StartRollback("api", "9")),
        ("api to v1.2.3 because 5xx spike", cmd.StartRollback("api", "v1.2.3", "5xx spike")),
        ("api because  error   rate >10%", cmd.StartRollback("api", "previous", "error rate >10%")),
        ("maintenance web on", cmd.Maintenance("web", True)),
        ("Maintenance WEB Off because db restored", cmd.Maintenance("web", False, "db restored")),
    ],
)
def test_rollback_text_parses(text: str, expected: object) -> None:
    assert cmd.parse_rollback(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("status now", "takes no arguments"),
        ("cancel 12", "rb-"),
        ("api to", "needs a revision"),
        ("api to $(rm -rf /)", "characters"),
        ("api please", "did not understand"),
        ("api because", "needs a reason"),
        ("maintenance web", "on|off"),
        ("maintenance web sideways", "on|off"),
        ("maintenance <!here> on", "not a target name"),
        ("maintenance web on now", "did not understand"),
        ("<!channel>", "not a target name"),
        ("x" * 3000, "under 2000"),
    ],
)
def test_bad_rollback_text_says_why(text: str, fragment: str) -> None:
    with pytest.raises(cmd.UsageError) as err:
        cmd.parse_rollback(text)
    assert fragment in str(err.value)


def test_user_text_echoed_in_errors_cannot_become_markup() -> None:
    with pytest.raises(cmd.UsageError) as err:
        cmd.parse_rollback("api <!here>")
    assert "<!here>" not in str(err.value)
    assert "&lt;!here&gt;" in str(err.value)


def test_control_characters_are_neutralised() -> None:
    assert cmd.parse_rollback("api\x00 to\x1b 9") == cmd.StartRollback("api", "9")


def test_diagnose_text() -> None:
    assert cmd.parse_diagnose("") is None
    assert cmd.parse_diagnose("help") is None
    assert cmd.parse_diagnose("API") == "api"
    with pytest.raises(cmd.UsageError):
        cmd.parse_diagnose("api worker")
