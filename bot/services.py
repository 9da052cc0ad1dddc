"""The long-lived objects of a process (settings, catalog, store), handed to every listener."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.catalog import Catalog, load_catalog
from bot.settings import Settings
from bot.store import Store, open_store


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: Store
    replica: str = field(default_factory=replica_name)
    _directory: Any = None

    def directory(self, client: Any) -> Any:
        """One approver directory per process, so its user-group cache is shared."""
        from bot.rollback.service import ApproverDirectory

        if self._directory is None:
            self._directory = ApproverDirectory(client)
        return self._directory


async def build_services(settings: Settings) -> Services:
    """Load the catalog (raising ConfigError with every problem) and connect the store."""
    catalog = load_catalog(settings.rollbot_config)
    store = open_store(settings)
    await store.connect()
    return Services(settings=settings, catalog=catalog, store=store)
