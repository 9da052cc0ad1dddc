"""Redaction: secret names, token shapes in text, learned values, custom patterns."""

from __future__ import annotations

import pytest

from playbooks.redact import HIDDEN, Redactor, redact


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASSWORD",
        "db_passwd",
        "API_KEY",
        "GITHUB_TOKEN",
        "AUTH_HEADER",
        "CLIENT_SECRET",
        "AWS_CREDENTIALS",
        "PRIVATE_CERT",
        "SENTRY_DSN",
        "MYSQL_PWD",
    ],
)
def test_secret_names_are_hidden(name: str) -> None:
    env = Redactor().environment([{"name": name, "value": "s3cr3t-value"}])
    assert env == [{"name": name, "value": HIDDEN}]


@pytest.mark.parametrize("name", ["MODE", "TORNADO_PROCESSES", "LOG_LEVEL", "REGION"])
def test_plain_names_stay_readable(name: str) -> None:
    assert Redactor().environment([{"name": name, "value": "2"}])[0]["value"] == "2"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("auth failed for xoxb-1234567890-abcdefghij", "auth failed for "),
        ("app token xapp-1-A0B1C2-123-abc", "app token "),
        ("key AKIAIOSFODNN7EXAMPLE used", "key  used"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer "),
        ("GET /login?password=hunter2&user=bob", "GET /login?password=&user=bob"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": , "user": "bob"}'),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key="),
        ("dsn postgres://app:hunter2@db:5432/app", "dsn postgres://app:@db:5432/app"),
        ("pushed with ghp_0123456789abcdefghijABCDEFGHIJ", "pushed with "),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "jwt "),
    ],
)
def test_token_shapes_in_text_are_hidden(line: str, kept: str) -> None:
    out = Redactor().text(line)
    assert out.replace(HIDDEN, "") == kept
    assert Redactor().text(out) == out  # a second pass changes nothing


def test_ordinary_log_lines_are_untouched() -> None:
    line = "ERROR 500 GET /api/keys took 2300 ms (auth failed for user 42)"
    assert Redactor().text(line) == line


def test_private_key_blocks_are_hidden() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----"
    assert Redactor().text(f"loaded {pem} ok") == f"loaded {HIDDEN} ok"


def test_values_seen_under_secret_names_vanish_from_any_text() -> None:
    r = Redactor()
    r.environment([{"name": "DB_PASSWORD", "value": "hunter2-secret"}, {"name": "X", "value": "1"}])
    assert r.text("login as hunter2-secret refused") == f"login as {HIDDEN} refused"
    r.environment([{"name": "PIN_TOKEN", "value": "42"}])  # too short to hunt for
    assert r.text("answer 42") == "answer 42"


def test_custom_name_patterns_replace_the_defaults() -> None:
    r = Redactor([r"(?i)^pin$", r"_CERT$"])
    env = r.environment(
        [
            {"name": "PIN", "value": "123456"},
            {"name": "TLS_CERT", "value": "abc"},
            {"name": "DB_PASSWORD", "value": "visible-by-choice"},
        ]
    )
    assert [e["value"] for e in env] == [HIDDEN, HIDDEN, "visible-by-choice"]


def test_walking_data_hides_name_value_pairs_and_scrubs_every_string() -> None:
    data = {
        "containers": [
            {
                "environment": [{"name": "API_TOKEN", "value": "abc"}],
                "events": ["token=xyz123", 5, None],
            }
        ],
        "note (xoxp-1-2-3-abcdef)": True,
    }
    out = redact(data)
    assert out["containers"][0]["environment"][0]["value"] == HIDDEN
    assert out["containers"][0]["events"] == [f"token={HIDDEN}", 5, None]
    assert f"note ({HIDDEN})" in out
    assert redact(out) == out
