"""What a process needs before it serves (Slack token, store, port, AWS, GitHub), checked with
one readable line per outcome: `rollbot serve` stops on the first failure, `rollbot check`
prints them all."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bot.settings import Settings
from bot.slack.auth import verify_bot_token
from bot.store import Store
from playbooks.aws import AwsClients, call

TIMEOUT = 10.0  # seconds for each reachability check


class StartupError(Exception):
    """A reason not to start, as one line: what is wrong and what to do about it."""


@dataclass(frozen=True)
class Check:
    """The outcome of one check: `name: ok (detail)` or `name: FAILED: detail`."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return (
            f"{self.name}: ok ({self.detail})" if self.ok else f"{self.name}: FAILED: {self.detail}"
        )


# -- Slack
async def slack_token(settings: Settings) -> Check:
    """auth.test with SLACK_BOT_TOKEN: is the token accepted, and by which workspace."""
    token = settings.secret("slack_bot_token")
    if not token:
        return Check("slack", False, "SLACK_BOT_TOKEN is not set")
    ok, detail = await verify_bot_token(token, settings.slack_api_url, TIMEOUT)
    return Check("slack", ok, detail)


# -- store
def redis_address(url: str) -> str:
    """host:port/db of a Redis URL, without its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


async def redis_reachable(url: str) -> Check:
    """PING the Redis server of REDIS_URL on a connection of its own."""
    import redis.asyncio as aioredis
    from redis.exceptions import AuthenticationError, RedisError

    where = redis_address(url)
    client = aioredis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        await client.ping()
    except AuthenticationError as exc:
        return Check(
            "redis", False, f"Redis at {where} refused the credentials in REDIS_URL ({exc})"
        )
    except (RedisError, OSError, TimeoutError) as exc:
        return Check(
            "redis",
            False,
            f"cannot reach Redis at {where} ({_reason(exc)}): start Redis or fix REDIS_URL",
        )
    finally:
        await client.aclose()
    return Check("redis", True, where)


def sqlite_writable(path: Path) -> Check:
    """Can this user create or write the SQLite file (checked without creating it)?"""
    existing = path if path.exists() else _nearest_existing(path.parent)
    problem = None
    if path.exists() and not path.is_file():
        problem = "it is not a file"
    elif not existing.is_dir() and existing != path:
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK):
        problem = f"{existing} is not writable by this user"
    if problem:
        return Check("store", False, _store_advice(path, problem))
    return Check("store", True, f"SQLite file {path}")


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _store_advice(path: Path, problem: str) -> str:
    return (
        f"cannot write the store file {path} ({problem}): make it writable by this user "
        "or set ROLLBOT_DB to another path (or REDIS_URL to use Redis)"
    )


async def store_check(settings: Settings) -> Check:
    url = settings.secret("redis_url")
    if url:
        return await redis_reachable(url)
    return sqlite_writable(settings.rollbot_db)


async def connect_store(store: Store, settings: Settings) -> None:
    """Connect the store, raising StartupError with the reason when it cannot be used."""
    checked = await store_check(settings)
    if not checked.ok:
        raise StartupError(checked.detail)
    try:
        await store.connect()
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(_store_advice(settings.rollbot_db, _reason(exc))) from exc


# -- port
def listen_error(host: str, port: int, exc: OSError) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} on {host} is already in use: stop the program using it "
            "or choose another with --port"
        )
    if exc.errno == errno.EACCES:
        return StartupError(f"not allowed to listen on port {port}: use a port above 1023")
    return StartupError(f"cannot listen on {host}:{port} ({_reason(exc)}): check --host and --port")


# -- AWS and GitHub, for `rollbot check --online`
async def aws_identity() -> Check:
    """sts get-caller-identity with the credentials the playbooks would use."""
    try:
        sts = AwsClients(endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None).client("sts")
        identity = await asyncio.wait_for(call(sts, "get_caller_identity"), TIMEOUT * 3)
    except Exception as exc:  # the AWS layer's sentences are one line and carry no secrets
        return Check(
            "aws",
            False,
            f"{_reason(exc)}: set AWS credentials (environment, profile or role) and AWS_REGION",
        )
    return Check("aws", True, str(identity.get("Arn")))


async def github_token(settings: Settings) -> Check | None:
    """GET /rate_limit with GITHUB_TOKEN (any valid token may read it); None when unset."""
    token = settings.secret("github_token")
    if not token:
        return None
    url = settings.github_api_url.rstrip("/") + "/rate_limit"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as resp,
        ):
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Check("github", False, f"cannot reach {settings.github_api_url} ({_reason(exc)})")
    if status == 401:
        return Check("github", False, "GitHub rejected GITHUB_TOKEN (401): issue a new token")
    if status != 200:
        return Check("github", False, f"{url} answered {status}: check GITHUB_API_URL")
    return Check("github", True, settings.github_api_url)


async def online_checks(settings: Settings) -> list[Check]:
    """Store, Slack, AWS and (when configured) GitHub, concurrently, in that order."""
    found = await asyncio.gather(
        store_check(settings), slack_token(settings), aws_identity(), github_token(settings)
    )
    return [check for check in found if check is not None]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__
