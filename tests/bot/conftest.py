"""Fixtures of the bot's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.catalog import load_catalog
from bot.services import Services
from bot.settings import Settings
from bot.slack.notifier import SlackNotifier
from bot.store.base import Store
from bot.store.sqlite import SqliteStore
from tests.testbed.slack_api import FakeSlackApi

# one ECS target, for the rollback flows' unit tests
CATALOG = """
approvers: [U0APPROVE]
channel: C0INCIDENT
targets:
  api:
    playbook: ecs-revision
    cluster: prod
    service: api
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A connected store on a new SQLite file."""
    s = SqliteStore(tmp_path / "rollbot.db")
    await s.connect()
    yield s
    await s.close()


@pytest.fixture
def services(store: Store, tmp_path: Path, fake_slack: FakeSlackApi) -> Services:
    """Services on that store with the one-target catalog and a notifier to the fake Slack."""
    path = tmp_path / "rollbot.yml"
    path.write_text(CATALOG)
    services = Services(settings=Settings(), catalog=load_catalog(path), store=store)
    client = AsyncWebClient(token="xoxb-test-token", base_url=fake_slack.url)
    services.bind_slack(SlackNotifier(store, client))
    return services
