"""Process lifecycle for `rollbot serve` and `rollbot socket`: start, run the worker, drain."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

import handlers
from bot import retention
from bot.diagnose.sources.context import CAPTURE_PACE
from bot.errors import ConfigError
from bot.rollback import jobs
from bot.scheduler import JobWorker
from bot.services import Services, build_services
from bot.settings import Settings
from bot.signals import install_signal_handlers
from bot.slack import outbox
from bot.slack.app import build_app
from bot.slack.socket import EnvelopeSocketModeHandler
from bot.startup import StartupError, listen_error, slack_token
from bot.web import build_metrics_app, build_web_app

log = logging.getLogger(__name__)


async def run(
    settings: Settings,
    mode: str,
    port: int,
    host: str,
    *,
    metrics_at: tuple[str, int] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; `metrics_at` (host, port) moves /metrics off the public
    port onto its own listener."""
    socket_mode = mode == "socket"
    problems = settings.problems(socket_mode=socket_mode)
    if problems:
        raise ConfigError.from_lines("environment", problems)
    token = await slack_token(settings)
    if not token.ok:
        raise StartupError(token.detail)
    services = await build_services(settings)
    CAPTURE_PACE.configure(settings.rollbot_aws_pace)
    try:
        return await _serve(services, settings, socket_mode, port, host, metrics_at)
    finally:
        # also on a failed start: the store's connection thread must not keep the process up
        await services.close()


async def _serve(
    services: Services,
    settings: Settings,
    socket_mode: bool,
    port: int,
    host: str,
    metrics_at: tuple[str, int] | None = None,
) -> int:
    bolt = build_app(services, socket_mode=socket_mode)
    handlers.register(bolt)
    worker = JobWorker(services.store, services.replica, settings.rollbot_lease_seconds)
    jobs.register(worker, services)
    retention.register(worker, services)
    await retention.ensure_scheduled(services.store)
    services.wake_jobs = worker.wake
    if stranded := await outbox.schedule_stranded(services.store):
        log.warning("Slack calls waiting without a drain job in %s: draining them", stranded)
    app = build_web_app(bolt, services, with_metrics=metrics_at is None)
    runner = web.AppRunner(app, shutdown_timeout=10.0)
    await runner.setup()
    metrics_runner = await _metrics_listener(metrics_at)
    socket_handler = None
    # listen before anything runs in the background, so a port in use stops a quiet process
    if socket_mode:
        socket_handler = EnvelopeSocketModeHandler(
            bolt,
            settings.secret("slack_app_token") or "",
            ping_interval=settings.rollbot_socket_ping_seconds,
        )
        await socket_handler.connect_async()
    else:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            raise listen_error(host, port, exc) from exc
    stop = asyncio.Event()
    install_signal_handlers(stop)
    worker_task = asyncio.create_task(worker.run())
    log.info(
        "rollbot %s on %s (store: %s, replica %s)",
        "socket" if socket_mode else "serve",
        "Socket Mode" if socket_mode else f"http://{host}:{port}",
        services.store.backend,
        services.replica,
    )
    await stop.wait()
    log.info("stopping: draining in-flight work")
    if socket_handler is not None:
        await socket_handler.close_async()
    await runner.cleanup()  # waits for in-flight requests up to shutdown_timeout
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    drain = settings.rollbot_drain_seconds
    left, _ = await asyncio.gather(services.drain_listeners(drain), worker.stop(drain))
    if left:
        log.warning("%d listener(s) still running after %ss; stopping anyway", left, drain)
    worker_task.cancel()
    log.info("stopped")
    return 0


async def _metrics_listener(at: tuple[str, int] | None) -> web.AppRunner | None:
    """GET /metrics on its own address (for `--metrics-port`), or None when not asked."""
    if at is None:
        return None
    host, port = at
    runner = web.AppRunner(build_metrics_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise listen_error(host, port, exc) from exc
    log.info("metrics on http://%s:%s/metrics", host, port)
    return runner
