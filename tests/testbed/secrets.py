"""A corpus of planted secrets: each a value that must never leave the bot, and the way it is
planted where real services keep such things (a task definition's environment, a log line,
a health body, a command's output, an API error)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Planted:
    what: str  # the shape or name, for failure messages
    value: str  # what must never leave the process
    line: str  # a free-text line carrying it, as a log or a command would print it
    env_name: str = ""  # set: also planted as this task-definition variable
    env_value: str = ""  # the variable's value when it is not `value` itself (a URL)


PEM_BODY = "MIIEowIBAAKCAQEA7bq0PlantedPemBodyLineZZ9x8w7v6u5t4s3r2q1p0"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY1"  # 40 characters

CORPUS: tuple[Planted, ...] = (
    # shapes, found wherever they appear
    Planted(
        "slack bot token",
        "xoxb-1111111111-2222222222-PlantedBotTok1",
        "auth xoxb-1111111111-2222222222-PlantedBotTok1 rejected",
    ),
    Planted(
        "slack user token",
        "xoxp-3333333333-4444444444-PlantedUsrTok2",
        "user token=xoxp-3333333333-4444444444-PlantedUsrTok2",
    ),
    Planted(
        "slack app token",
        "xapp-1-A0PLANTED-5555555555-plantedapptok3",
        "socket xapp-1-A0PLANTED-5555555555-plantedapptok3 closed",
    ),
    Planted(
        "slack refresh token",
        "xoxe.xoxp-1-PlantedRefreshTok4abcdef",
        "refresh with xoxe.xoxp-1-PlantedRefreshTok4abcdef",
    ),
    Planted(
        "slack webhook",
        "hooks.slack.com/services/T0PLANT/B0PLANT/PlantedHook5xyz",
        "POST https://hooks.slack.com/services/T0PLANT/B0PLANT/PlantedHook5xyz 404",
    ),
    Planted(
        "github classic token",
        "ghp_PlantedGitHubToken6abcdefghijklmnop",
        "remote: invalid credentials ghp_PlantedGitHubToken6abcdefghijklmnop",
    ),
    Planted(
        "github oauth token",
        "gho_PlantedOAuthToken7abcdefghijklmnopq",
        "oauth gho_PlantedOAuthToken7abcdefghijklmnopq expired",
    ),
    Planted(
        "github app token",
        "ghs_PlantedServerToken8abcdefghijklmno",
        "installation ghs_PlantedServerToken8abcdefghijklmno",
    ),
    Planted(
        "github fine-grained token",
        "github_pat_11PLANTED0_PlantedFineGrained9abcdefghijk",
        "using github_pat_11PLANTED0_PlantedFineGrained9abcdefghijk",
    ),
    Planted("aws access key id", "AKIAPLANTED000000010", "signed by AKIAPLANTED000000010 denied"),
    Planted("aws secret key next to its id", AWS_SECRET, f"AKIAPLANTED000000011 {AWS_SECRET}"),
    Planted("aws session key id", "ASIAPLANTED000000012", "assumed ASIAPLANTED000000012 expired"),
    Planted(
        "stripe live secret key",
        "sk_live_PlantedStripe13abcdefghij",
        "charge failed: sk_live_PlantedStripe13abcdefghij",
    ),
    Planted(
        "stripe restricted key",
        "rk_live_PlantedStripe14abcdefghij",
        "key rk_live_PlantedStripe14abcdefghij revoked",
    ),
    Planted(
        "stripe test key",
        "sk_test_PlantedStripe15abcdefghij",
        "test mode sk_test_PlantedStripe15abcdefghij",
    ),
    Planted(
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkMTYifQ.PlantedSig16abc",
        "cookie eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkMTYifQ.PlantedSig16abc",
    ),
    Planted(
        "pem private key",
        PEM_BODY,
        f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----",
    ),
    Planted(
        "url userinfo",
        "S3cretPw17x",
        "connect postgres://app:S3cretPw17x@db.internal:5432/app failed",
    ),
    Planted(
        "url userinfo, empty user",
        "RedisPw18plant",
        "redis://:RedisPw18plant@cache:6379/0 unreachable",
    ),
    Planted("password= pair", "hunter2hunter19", "login password=hunter2hunter19 refused"),
    Planted("token= pair", "tok20-planted-pair", "GET /hook?token=tok20-planted-pair 403"),
    Planted(
        "json password",
        "JsonPw21-planted",
        json.dumps({"user": "app", "password": "JsonPw21-planted"}),
    ),
    Planted(
        "bearer header", "PlantedBearer22abcdef", "Authorization: Bearer PlantedBearer22abcdef"
    ),
    Planted("api key header", "PlantedApiKey23abcdef", "x-api-key: PlantedApiKey23abcdef"),
    # names: values with no shape of their own, hidden under their name and learned
    Planted("DB_PASS", "plantedDbPass24", "DB_PASS=plantedDbPass24", "DB_PASS"),
    Planted("SMTP_PASS", "plantedSmtp25!", "SMTP_PASS=plantedSmtp25!", "SMTP_PASS"),
    Planted("STRIPE_SK", "plantedStripeName26", "STRIPE_SK=plantedStripeName26", "STRIPE_SK"),
    Planted(
        "SENTRY_DSN",
        "https://0123456789abcdef0123456789abcd27@o1.ingest.sentry.io/27",
        "dsn https://0123456789abcdef0123456789abcd27@o1.ingest.sentry.io/27",
        "SENTRY_DSN",
    ),
    Planted(
        "DATABASE_URL password",
        "DbUrlPw28plant",
        "postgres://app:DbUrlPw28plant@db/app",
        "DATABASE_URL",
        "postgres://app:DbUrlPw28plant@db/app",
    ),
    Planted("API_KEY", "plantedApiKey29", "API_KEY=plantedApiKey29", "API_KEY"),
    Planted(
        "CLIENT_SECRET",
        "plantedClientSecret30",
        "CLIENT_SECRET=plantedClientSecret30",
        "CLIENT_SECRET",
    ),
    Planted("MYSQL_PWD", "plantedMysqlPwd31", "MYSQL_PWD: plantedMysqlPwd31", "MYSQL_PWD"),
    Planted("AUTH_HEADER", "plantedAuthHdr32", "AUTH_HEADER=plantedAuthHdr32", "AUTH_HEADER"),
    Planted(
        "PRIVATE_CERT", "plantedCert33value", "PRIVATE_CERT=plantedCert33value", "PRIVATE_CERT"
    ),
    Planted(
        "APP_CREDENTIALS",
        "plantedCreds34value",
        "APP_CREDENTIALS='plantedCreds34value'",
        "APP_CREDENTIALS",
    ),
    Planted(
        "SESSION_TOKEN", "plantedSession35tok", "SESSION_TOKEN=plantedSession35tok", "SESSION_TOKEN"
    ),
    Planted("camelCase apiKey", "plantedCamel36key", '{"apiKey": "plantedCamel36key"}', "apiKey"),
)

VALUES: tuple[str, ...] = tuple(p.value for p in CORPUS)


def environment() -> dict[str, str]:
    """Task-definition variables: every named entry, and every shaped line under a plain name
    (a token in a variable whose name does not look secret)."""
    env = {p.env_name: p.env_value or p.value for p in CORPUS if p.env_name}
    env.update({f"PLAIN_{i}": p.line for i, p in enumerate(CORPUS) if not p.env_name})
    return env


def lines() -> list[str]:
    """Every planted line, one per line of a log or a command's output."""
    return [line for p in CORPUS for line in p.line.splitlines()]


def text() -> str:
    return "\n".join(p.line for p in CORPUS)


def leaks(haystack: str | bytes) -> list[str]:
    """The planted values found in `haystack` (as text or as raw bytes)."""
    if isinstance(haystack, bytes):
        haystack = haystack.decode("utf-8", "replace")
    return [p.what for p in CORPUS if p.value in haystack]
