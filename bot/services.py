"""The long-lived objects of a process (settings, catalog, store), handed to every listener."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.catalog import Catalog, load_catalog
from bot.settings import Settings
from bot.slack.notifier import SlackNotifier
from bot.store import Store, open_store


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: Store
    replica: str = field(default_factory=replica_name)
    # listeners still working after their ack; a graceful stop waits for them
    listeners: set[asyncio.Task[Any]] = field(default_factory=set)
    # set by the server to its job worker's wake(): a job due now is claimed at once
    wake_jobs: Callable[[], None] = field(default=lambda: None)
    # one connection pool for every Slack call (Web API and response_url answers)
    http: aiohttp.ClientSession | None = None
    # every Slack Web API call goes through it; bound once the app's client exists
    _slack: SlackNotifier | None = None

    @property
    def slack(self) -> SlackNotifier:
        if self._slack is None:
            raise RuntimeError("no Slack notifier is bound to these services")
        return self._slack

    def bind_slack(self, notifier: SlackNotifier) -> None:
        self._slack = notifier

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.store.close()

    async def drain_listeners(self, within: float) -> int:
        """Wait for in-flight listeners; returns how many were still running at the deadline."""
        pending = {t for t in self.listeners if t is not asyncio.current_task()}
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=within)
        return len(still)


async def build_services(settings: Settings) -> Services:
    """Load the catalog (raising ConfigError with every problem) and connect the store
    (raising StartupError when it cannot be used)."""
    from bot.startup import connect_store

    catalog = load_catalog(settings.rollbot_config)
    store = open_store(settings)
    await connect_store(store, settings)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    return Services(settings=settings, catalog=catalog, store=store, http=http)
