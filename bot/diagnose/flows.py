"""The /diagnose flow: capture, keep it, post the verdict and the full capture file."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.diagnose.capture import capture
from bot.diagnose.messaging import headline, verdict_blocks
from bot.rollback.service import audit
from bot.services import Services
from bot.slack.text import code
from bot.store.base import Record, now

log = logging.getLogger(__name__)


async def diagnose(
    services: Services, client: Any, *, target: str, user: str, channel: str, respond: Any
) -> None:
    tgt = services.catalog.targets[target]
    try:
        result = await capture(tgt, services.settings)
    except Exception:
        log.exception("diagnosis of %s failed", target)
        await respond(
            response_type="ephemeral",
            text=f":warning: Could not diagnose {code(target)}; see the bot's log.",
        )
        return
    diagnosis_id = "dg-" + secrets.token_hex(4)
    await services.store.create(
        Record(
            id=diagnosis_id,
            kind="diagnosis",
            state="done",
            data=json.loads(result.to_json()),
            created_at=now(),
            updated_at=now(),
        )
    )
    await audit(
        services.store,
        user,
        "diagnosis.captured",
        diagnosis_id,
        target=target,
        severity=result.verdict.severity,
    )
    blocks = verdict_blocks(result, diagnosis_id)
    try:
        posted = await client.chat_postMessage(
            channel=channel, blocks=blocks, text=headline(result)
        )
        await client.files_upload_v2(
            channel=channel,
            thread_ts=posted["ts"],
            filename=f"diagnosis-{target}.json",
            content=result.to_json(),
            title=f"Diagnosis of {target}",
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in ("not_in_channel", "channel_not_found"):
            raise
        await respond(response_type="ephemeral", blocks=blocks, text=headline(result))
