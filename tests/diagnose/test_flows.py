"""flows.diagnose end to end: moto, a local health endpoint, the fake Slack Web API and a real
SQLite store; plus every way it can go wrong after the command was acknowledged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.diagnose import flows
from bot.services import Services
from bot.settings import Settings
from bot.slack.notifier import SlackNotifier
from bot.store.sqlite import SqliteStore
from tests.diagnose.conftest import (
    ALB,
    SECRET_ENV,
    SECRET_TOKEN,
    HealthServer,
    seed_logs,
    seed_metrics,
    seed_service,
    write_catalog,
)
from tests.testbed.aws import Aws
from tests.testbed.slack_api import FakeSlackApi

SECRETS = (SECRET_ENV, SECRET_TOKEN, "api-key-AbCdEf")


class Responder:
    """Records what the flow sends to the command's response_url."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    @property
    def text(self) -> str:
        return json.dumps(self.calls)


@pytest.fixture
async def services(
    aws: Aws, health_server: HealthServer, tmp_path: Path
) -> AsyncIterator[Services]:
    from bot.catalog import load_catalog

    seed_service(aws)
    seed_logs(aws)
    seed_metrics(aws)
    path = write_catalog(
        tmp_path,
        health=[health_server.endpoint(200), health_server.endpoint(503)],
        diagnose={"load_balancer": ALB},
    )
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    yield Services(settings=Settings(), catalog=load_catalog(path), store=store)
    await store.close()


@pytest.fixture
def client(fake_slack: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test-token", base_url=fake_slack.url)


def database_bytes(folder: Path) -> bytes:
    """The SQLite file with its write-ahead log, as stored on disk."""
    return b"".join(p.read_bytes() for p in folder.glob("rollbot.db*"))


async def run(services: Services, client: AsyncWebClient, target: str = "api") -> Responder:
    respond = Responder()
    services.bind_slack(SlackNotifier(services.store, client))
    await flows.diagnose(
        services, target=target, user="U0ASKER", channel="C0ORIGIN", respond=respond
    )
    return respond


async def test_posts_the_verdict_uploads_the_capture_and_stores_it(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi, tmp_path: Path
) -> None:
    respond = await run(services, client)

    assert respond.calls == [] and fake_slack.errors == []
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.args["channel"] == "C0ORIGIN"
    assert post.args["text"].startswith("Diagnosis of api: CRITICAL - Emergency rollback")
    button = post.args["blocks"][-1]["elements"][0]
    value = json.loads(button["value"])
    assert button["action_id"] == "diagnose_rollback" and value["target"] == "api"

    [upload] = fake_slack.uploaded_files
    assert upload.filename == "diagnosis-api.json" and upload.channel == "C0ORIGIN"
    assert upload.thread_ts == post.response["ts"]
    uploaded = json.loads(upload.text)
    assert uploaded["id"] == value["diagnosis"] and uploaded["verdict"]["severity"] == "critical"

    record = await services.store.get(value["diagnosis"])
    assert record is not None and record.id.startswith("dg-")
    assert (record.kind, record.state) == ("diagnosis", "done")
    assert record.data["verdict"]["triggers"][0]["rule"] in ("error_rate", "unavailable")
    # captured by the person asking; the verdict and its file sent (and audited) by the bot
    audits = await services.store.audit_since(subject=record.id)
    assert [(a.actor, a.action) for a in audits] == [
        ("U0ASKER", "diagnosis.captured"),
        ("rollbot", "slack.post"),
        ("rollbot", "slack.upload"),
    ]
    assert audits[1].detail["channel"] == "C0ORIGIN"

    # the planted secrets are nowhere: not in the message, the file, the record, the database
    on_disk = database_bytes(tmp_path)
    for secret in SECRETS:
        assert secret not in json.dumps(post.args)
        assert secret not in upload.text
        assert secret not in record.model_dump_json()
        assert secret.encode() not in on_disk
    assert "DB_PASSWORD" in upload.text and "[redacted]" in upload.text


async def test_not_in_channel_falls_back_to_an_ephemeral_answer(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    fake_slack.answer("chat.postMessage", {"ok": False, "error": "not_in_channel"})
    respond = await run(services, client)

    [answer] = respond.calls
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith("Diagnosis of api")
    blocks = answer["blocks"]
    assert blocks[-1]["elements"][0]["action_id"] == "diagnose_rollback"
    assert "cannot post in this channel (not_in_channel)" in json.dumps(blocks)
    assert fake_slack.uploaded_files == []
    diagnosis = json.loads(blocks[-1]["elements"][0]["value"])["diagnosis"]
    assert await services.store.get(diagnosis) is not None


async def test_a_failed_upload_still_leaves_the_verdict_posted(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    fake_slack.answer("files.getUploadURLExternal", {"ok": False, "error": "missing_scope"})
    respond = await run(services, client)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    [answer] = respond.calls
    assert "could not be attached (missing_scope)" in answer["text"]
    assert "`dg-" in answer["text"] and answer["response_type"] == "ephemeral"


async def test_a_store_failure_does_not_hold_back_the_verdict(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    await services.store.close()
    respond = await run(services, client)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert "could not be stored" in respond.calls[0]["text"]


async def test_unexpected_failures_are_answered_readably(
    services: Services,
    client: AsyncWebClient,
    fake_slack: FakeSlackApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom <!channel> password=hunter2-secret")

    monkeypatch.setattr(flows, "capture", broken)
    respond = await run(services, client)
    [answer] = respond.calls
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == (
        ":warning: /diagnose `api` failed: RuntimeError: boom &lt;!channel&gt; password=[redacted]"
    )
    assert "Traceback" not in respond.text


async def test_slack_refusing_the_post_is_answered_readably(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    fake_slack.answer("chat.postMessage", {"ok": False, "error": "restricted_action"})
    respond = await run(services, client)
    assert respond.calls[-1]["text"] == (
        ":warning: /diagnose `api` failed: Slack answered restricted_action"
    )


async def test_an_unknown_target_is_answered(
    services: Services, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    respond = await run(services, client, target="payments")
    assert respond.calls[0]["text"] == "Unknown target `payments`."
    assert fake_slack.calls_to("chat.postMessage") == []
