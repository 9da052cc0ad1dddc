"""Hostile text into every parser: a clear UsageError or a parsed request, nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import slash as cmd
from bot.slack.text import escape
from handlers.actions.rollback import action_value
from tests import fuzz_counter

ADVERSARIAL = st.sampled_from(
    [
        "<!channel>",
        "<!here|here>",
        "<@U0LEAD>",
        "<https://evil.example|click>",
        "{{ 7*7 }}",
        "{% for x in range(9999999) %}x{% endfor %}",
        "$(rm -rf /)",
        "`whoami`",
        "; reboot",
        "\x00\x1b[31m",
        "\u202e\u200b",
        "api" * 1000,
        "to",
        "because",
        "cancel",
        "rb-",
    ]
)
TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(ADVERSARIAL, st.text(max_size=20)), max_size=8).map(" ".join),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _no_live_markup(text: str) -> None:
    for token in ("<!channel>", "<!here", "<@U", "<http"):
        assert token not in text


@FUZZ
@given(TEXT)
def test_rollback_parser_never_crashes_or_echoes_markup(text: str) -> None:
    fuzz_counter.tried += 1
    try:
        parsed = cmd.parse_rollback(text)
    except cmd.UsageError as exc:
        _no_live_markup(str(exc))
        return
    if isinstance(parsed, cmd.StartRollback):
        assert cmd.REF.match(parsed.ref)
        assert len(parsed.reason) <= cmd.MAX_REASON
        assert all(ord(c) >= 32 for c in parsed.reason)


@FUZZ
@given(TEXT)
def test_diagnose_parser_never_crashes(text: str) -> None:
    fuzz_counter.tried += 1
    try:
        target = cmd.parse_diagnose(text)
    except cmd.UsageError as exc:
        _no_live_markup(str(exc))
        return
    assert target is None or target.replace("-", "").replace("_", "").isalnum()


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(st.text(max_size=5), st.text()).map(json.dumps),
        st.none(),
    )
)
def test_forged_button_values_are_read_safely(raw: str | None) -> None:
    fuzz_counter.tried += 1
    value = action_value({"actions": [{"value": raw}]})
    assert isinstance(value, dict)


@FUZZ
@given(TEXT)
def test_escape_leaves_no_control_characters(text: str) -> None:
    fuzz_counter.tried += 1
    out = escape(text)
    assert "<" not in out and ">" not in out
