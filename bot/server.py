"""Process lifecycle for `rollbot serve` and `rollbot socket`: start, run the worker, drain."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.cli import install_signal_handlers
from bot.errors import ConfigError
from bot.scheduler import JobWorker
from bot.services import build_services
from bot.settings import Settings
from bot.slack.app import build_app
from bot.web import build_web_app

log = logging.getLogger(__name__)


async def run(settings: Settings, mode: str, port: int, host: str) -> int:
    socket_mode = mode == "socket"
    problems = settings.problems(socket_mode=socket_mode)
    if problems:
        raise ConfigError.from_lines("environment", problems)
    services = await build_services(settings)
    bolt = build_app(services, socket_mode=socket_mode)
    worker = JobWorker(services.store, services.replica, settings.rollbot_lease_seconds)
    from bot.rollback import jobs

    jobs.register(worker, services, bolt.client)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    worker_task = asyncio.create_task(worker.run())
    runner = web.AppRunner(build_web_app(bolt, services), shutdown_timeout=10.0)
    await runner.setup()
    socket_handler = None
    if socket_mode:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_handler = AsyncSocketModeHandler(bolt, settings.secret("slack_app_token"))
        await socket_handler.connect_async()
    else:
        await web.TCPSite(runner, host, port).start()
    log.info(
        "rollbot %s on %s (store: %s, replica %s)",
        mode,
        "Socket Mode" if socket_mode else f"http://{host}:{port}",
        services.store.backend,
        services.replica,
    )
    await stop.wait()
    log.info("stopping: draining in-flight work")
    if socket_handler is not None:
        await socket_handler.close_async()
    await runner.cleanup()  # waits for in-flight requests up to shutdown_timeout
    await worker.stop()
    worker_task.cancel()
    await services.store.close()
    return 0
