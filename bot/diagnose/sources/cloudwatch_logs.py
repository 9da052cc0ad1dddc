"""Evidence from CloudWatch Logs: how many lines match the error filter, and the latest ones."""

from __future__ import annotations

import time
from contextlib import aclosing
from datetime import datetime
from typing import Any

from bot.diagnose.sources.context import SourceContext, ms
from playbooks import aws

ACTIONS = ("logs:FilterLogEvents",)
LOG_EVENTS_CAP = 10_000  # past this many matches the count says "at least"
LATEST_KEPT = 50  # the newest matching lines kept in the capture (the message shows fewer)


async def logs(ctx: SourceContext, group: str) -> dict[str, Any]:
    # stop paging a little before the source's timeout, so a huge group still reports a count
    deadline = time.monotonic() + ctx.timeout * 0.8
    pattern = ctx.options.log_filter_pattern
    pages = aws.pages(
        ctx.client("logs"),
        "filter_log_events",
        logGroupName=group,
        filterPattern=pattern,
        startTime=ms(ctx.start),
        endTime=ms(ctx.end),
    )
    count, latest, stopped = 0, [], ""
    async with aclosing(pages):
        async for page in pages:
            events = page.get("events", [])
            count += len(events)
            latest = sorted(latest + events, key=lambda e: e.get("timestamp", 0))[-LATEST_KEPT:]
            if count >= LOG_EVENTS_CAP:
                stopped = f"stopped counting at {LOG_EVENTS_CAP}"
                break
            if time.monotonic() > deadline:
                stopped = "stopped counting at the time limit"
                break
    return {
        "group": group,
        "filter_pattern": pattern,
        "minutes": ctx.options.window_minutes,
        "count": count,
        "partial": stopped,
        "latest": [
            {
                "at": datetime.fromtimestamp(
                    e.get("timestamp", 0) / 1000, ctx.start.tzinfo
                ).isoformat(),
                "message": str(e.get("message", "")).rstrip()[:500],
            }
            for e in latest[::-1]
        ],
    }
