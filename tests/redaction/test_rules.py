"""The redactor's rules over the planted-secret corpus: names, shapes, learned values,
fingerprints, and the lines it must leave alone."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from bot.redaction import RedactingFilter, learn_settings
from bot.settings import Settings
from playbooks.redact import (
    HIDDEN,
    Redactor,
    fingerprint,
    is_secret_name,
    learn_config,
    redact,
    redact_text,
)
from playbooks.steps.env_changes import shown_changes
from tests.testbed.secrets import CORPUS, VALUES, Planted, environment, leaks, text

NAMED = [p for p in CORPUS if p.env_name]


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 25
    assert len(set(VALUES)) == len(VALUES)


@pytest.mark.parametrize("planted", CORPUS, ids=lambda p: p.what)
def test_every_planted_line_is_hidden_by_its_shape_or_name_alone(planted: Planted) -> None:
    out = redact_text(planted.line)
    assert planted.value not in out, out
    assert HIDDEN in out
    assert redact_text(out) == out  # a second pass changes nothing


@pytest.mark.parametrize("planted", NAMED, ids=lambda p: p.what)
def test_a_value_seen_under_a_secret_name_vanishes_from_any_later_text(planted: Planted) -> None:
    echo = f"connecting with {planted.value} now"
    assert planted.value in redact_text(echo) or HIDDEN in redact_text(echo)
    variable = {"name": planted.env_name, "value": planted.env_value or planted.value}
    shown = Redactor().environment([variable])
    assert planted.value not in repr(shown)
    if is_secret_name(planted.env_name):
        assert shown == [{"name": planted.env_name, "value": HIDDEN}]
    assert planted.value not in redact_text(echo)


def test_learning_is_process_wide_across_redactors() -> None:
    Redactor(["(?i)^pin$"]).environment([{"name": "PIN", "value": "pin-991122"}])
    assert "pin-991122" not in Redactor().text("pin-991122 used")
    assert "pin-991122" not in redact_text("pin-991122 used")


def test_a_pair_inside_a_plain_value_is_still_found() -> None:
    assert redact_text("PLAIN_23=x-api-key: abcdef123456 MODE=fast") == (
        f"PLAIN_23=x-api-key: {HIDDEN} MODE=fast"
    )


def test_structured_data_hides_values_under_secret_keys_and_pairs() -> None:
    data = {
        "environment": [{"name": k, "value": v} for k, v in environment().items()],
        "flat": environment(),
        "lines": text().splitlines(),
        "health": {"body": text()},
    }
    out = redact(data)
    assert leaks(repr(out)) == []
    assert out["flat"]["PLAIN_0"] != HIDDEN  # a plain name keeps its (scrubbed) value
    assert redact(out) == out


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASS", "SMTP_PASS", "STRIPE_SK", "SENTRY_DSN", "dbPassword", "DBPASS", "apiKey",
        "X-Api-Key", "MYSQL_PWD", "AUTH", "Authorization", "CLIENT_CERT", "PRIVATE_KEY",
        "GITHUB_TOKEN", "aws_secret_access_key", "APP_CREDENTIALS", "SLACK_SIGNING_SECRET",
        "db.passwd", "session-token", "JWT",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "keyboard", "KEYBOARD_LAYOUT", "monkey", "MONKEY_PATCH", "AUTHOR", "passenger",
        "CACHE_BYPASS", "compass", "TOKENIZER_MODEL", "private_metadata", "MODE", "REGION",
        "TORNADO_PROCESSES", "LOG_LEVEL", "skip", "DISK_SIZE",
    ],
)  # fmt: skip
def test_names_that_only_look_secret_stay_readable(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "line",
    [
        "monkey=banana keyboard: us-intl",
        "GET /api/keys took 2300 ms (auth failed for user 42)",
        "see https://example.com/path?q=1 and ssh://git@github.com/org/repo",
        "Deployed revision api:7 in 41 s",
        "DB_PASSWORD=sha256:1a2b3c4d",
    ],
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact_text(line) == line


def test_a_fingerprint_is_short_stable_and_not_the_value() -> None:
    fp = fingerprint("hunter2hunter2")
    assert re.fullmatch(r"sha256:[0-9a-f]{8}", fp)
    assert fp == fingerprint("hunter2hunter2") != fingerprint("hunter3hunter3")
    assert "hunter2" not in fp


def test_environment_plans_show_only_changes_with_secrets_as_fingerprints() -> None:
    before = [
        {"name": "MODE", "value": "fast"},
        {"name": "DB_PASS", "value": "old-pass-1"},
        {"name": "KEEP_TOKEN", "value": "same-token-1"},
        {"name": "GONE", "value": "x"},
    ]
    after = [
        {"name": "MODE", "value": "slow"},
        {"name": "DB_PASS", "value": "new-pass-2"},
        {"name": "KEEP_TOKEN", "value": "same-token-1"},
        {"name": "NEW", "value": "y"},
    ]
    shown = shown_changes(before, after)
    assert shown == (
        f"[DB_PASS: {fingerprint('old-pass-1')} -> {fingerprint('new-pass-2')}, "
        "GONE: 'x' -> (unset), MODE: 'fast' -> 'slow', NEW: (unset) -> 'y']"
    )
    assert "KEEP_TOKEN" not in shown and "same-token" not in shown
    assert redact_text(shown) == shown  # the fingerprints survive the way out


def test_the_bots_own_secrets_are_learned_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "awsSecretAtStart41")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "awsSessionAtStart42")
    settings = Settings(
        slack_bot_token="botTokenAtStart43",
        slack_signing_secret="signingAtStart44",
        slack_app_token="appTokenAtStart45",
        github_token="githubAtStart46",
        redis_url="redis://:redisPwAtStart47@cache:6379/0",
    )
    learn_settings(settings)
    planted = [f"{w}AtStart{n}" for w, n in [("awsSecret", 41), ("awsSession", 42),
               ("botToken", 43), ("signing", 44), ("appToken", 45), ("github", 46),
               ("redisPw", 47)]]  # fmt: skip
    out = redact_text(" ".join(planted))
    assert not [p for p in planted if p in out], out


def test_catalog_passwords_are_learned() -> None:
    learn_config(
        {
            "targets": {
                "db": {
                    "database_url": "postgresql://app:CatalogPw48@db:5432/app",
                    "env": {"PGPASSWORD": "catalogPgPw49"},
                    "mode": "fast-mode",
                }
            }
        }
    )
    out = redact_text("CatalogPw48 catalogPgPw49 fast-mode")
    assert out == f"{HIDDEN} {HIDDEN} fast-mode"


def test_the_log_filter_hides_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("rollbot.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("step said %s", text())
        try:
            raise RuntimeError(f"failed: {text()}")
        except RuntimeError:
            logger.exception("step crashed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "step said" in written and "RuntimeError" in written
    assert leaks(written) == []


@pytest.mark.parametrize(
    "line",
    [
        "see https://slack.com/archives/C0INCIDENTS/p1764412345678901 for the thread",
        "arn:aws:ecs:eu-central-1:123456789012:task-definition/sandbox-broker:3",
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com/api@sha256:" + "ab12" * 16,
        "commit 3f2a9c0d1e4b5a6978f0e1d2c3b4a5968778695a on main",
    ],
)
def test_links_arns_images_and_digests_are_not_taken_for_key_material(line: str) -> None:
    assert redact_text(line) == line


def test_json_text_keeps_its_structure() -> None:
    line = '{"secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:x"}], "auth": {"mode": "on"}}'
    assert redact_text(line) == line


@pytest.mark.parametrize(
    "hostile", ["a=" * 100_000, "a." * 100_000, "token=" * 30_000, "http://a:b@" * 20_000]
)
def test_hostile_text_costs_linear_time(hostile: str) -> None:
    started = time.perf_counter()
    redact_text(hostile)
    assert time.perf_counter() - started < 3.0  # quadratic work took minutes here
