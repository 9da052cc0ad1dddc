"""Captures are costly (AWS calls, a channel post): a recent capture of the same target is
reused, captures of one target already running are joined, and one replica collects at most
`ROLLBOT_MAX_CAPTURES` at once (the others are told to try again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.diagnose.models import Capture
from bot.store.base import Store, now

log = logging.getLogger(__name__)
KIND = "diagnosis"
RECENT_LOOKED_AT = 50  # newest diagnoses searched for one of the same target


class CapturesBusy(Exception):
    """This replica already collects as many captures as it may."""

    def __init__(self, running: int) -> None:
        super().__init__(f"{running} captures are already being collected")
        self.running = running


async def recent_capture(store: Store, target: str, max_age: float) -> Capture | None:
    """The newest stored capture of `target` younger than `max_age` seconds, if any (None
    too when the store cannot say: a fresh capture is then collected)."""
    if max_age <= 0:
        return None
    oldest = now() - max_age
    try:
        records = await store.list_records(KIND, limit=RECENT_LOOKED_AT)
    except Exception as exc:
        log.warning("recent diagnoses of %s not read (store: %s)", target, exc)
        return None
    for record in records:
        if record.created_at < oldest:
            return None  # newest first: the rest are older still
        if record.data.get("target") == target:
            return Capture.model_validate(record.data)
    return None


class CaptureGate:
    """One replica's captures in flight: at most `limit` at once, one per target."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Capture]] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(
        self, target: str, limit: int, collect: Callable[[], Awaitable[Capture]]
    ) -> tuple[Capture, bool]:
        """(capture, True) when this call collected it; (capture, False) when it joined one
        of the same target already running. Raises CapturesBusy when `limit` run already."""
        joined = self._running.get(target)
        if joined is not None:
            return await asyncio.shield(joined), False
        if len(self._running) >= limit:
            raise CapturesBusy(len(self._running))
        done: asyncio.Future[Capture] = asyncio.get_running_loop().create_future()
        self._running[target] = done
        try:
            result = await collect()
        except BaseException as exc:
            # those who joined learn it failed (a cancelled capture cannot be handed on as is)
            handed = exc if isinstance(exc, Exception) else RuntimeError("the capture stopped")
            done.set_exception(handed)
            done.exception()  # marked as retrieved: nobody may have joined
            raise
        finally:
            del self._running[target]
        done.set_result(result)
        return result, True


# the gate of this process (one process is one replica)
GATE = CaptureGate()
