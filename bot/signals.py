"""Stop signals: SIGTERM and SIGINT set the event the server waits on before draining."""

from __future__ import annotations

import asyncio
import signal


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Make SIGTERM and SIGINT set `stop` instead of killing the process mid-request."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
