"""The /diagnose flow: capture, keep it in the store, post the verdict with the capture file
(through the notifier, audited like every post)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.diagnose.capture import capture
from bot.diagnose.messaging import headline, verdict_blocks
from bot.diagnose.models import Capture
from bot.diagnose.reuse import GATE, CapturesBusy, recent_capture
from bot.diagnose.sources import describe_error
from bot.services import Services
from bot.slack.respond import Reply
from bot.slack.text import code, escape, truncate
from bot.store.audit import audit
from bot.store.base import Record, now
from playbooks.redact import redact_text

log = logging.getLogger(__name__)
KIND = "diagnosis"
# the bot cannot post there: answer the person who asked instead
UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived"}
BUSY = ":hourglass_flowing_sand: I am already collecting {running} diagnoses; try again in 10 s."


async def diagnose(
    services: Services, *, target: str, user: str, channel: str, respond: Reply
) -> None:
    """Run /diagnose TARGET after the command was acknowledged; never raises."""
    try:
        await _diagnose(services, target, user, channel, respond)
    except Exception as exc:
        log.exception("/diagnose %s failed", target)
        await _tell(respond, f":warning: /diagnose {code(target)} failed: {_readable(exc)}")


async def _diagnose(
    services: Services, target: str, user: str, channel: str, respond: Reply
) -> None:
    tgt = services.catalog.targets.get(target)
    if tgt is None:
        await _tell(respond, f"Unknown target {code(target)}.")
        return
    settings = services.settings
    reused = await recent_capture(services.store, target, settings.rollbot_capture_reuse_seconds)
    if reused is not None:
        await _reuse(services, reused, user, respond)
        return
    stored = ""

    async def collect_and_keep() -> Capture:
        # stored before the gate lets go, so a request arriving later finds it to reuse
        nonlocal stored
        result = await capture(tgt, settings)
        stored = await _store(services, result, user)
        return result

    try:
        result, fresh = await GATE.run(target, settings.rollbot_max_captures, collect_and_keep)
    except CapturesBusy as busy:
        await _tell(respond, BUSY.format(running=busy.running))
        await _note(services, user, "diagnosis.busy", target, running=busy.running)
        return
    if not fresh:  # joined a capture of the same target someone else asked for
        await _reuse(services, result, user, respond)
        return
    blocks, text = verdict_blocks(result), headline(result)
    try:
        ts = await services.slack.post(channel, text, blocks, subject=result.id)
    except SlackApiError as exc:
        if _slack_error(exc) not in UNREACHABLE:
            raise
        note = (
            f"I cannot post in this channel ({escape(_slack_error(exc))}), so only you see this: "
            f"invite me to get the full capture file in a thread. {stored}"
        )
        blocks.insert(-1, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        await respond(response_type="ephemeral", replace_original=False, blocks=blocks, text=text)
        return
    problem = await _upload(services, channel, ts, result)
    if problem or stored:
        await _tell(respond, f"{problem} {stored}".strip())


async def _reuse(services: Services, result: Capture, user: str, respond: Reply) -> None:
    """Answer with a capture made moments ago, only to the person asking (it was posted)."""
    age = max(0, round(now() - result.started_at.timestamp()))
    note = (
        f"Captured {age} s ago ({code(result.id)}), reused rather than collected again; "
        "the verdict and the capture file are in the channel."
    )
    blocks = verdict_blocks(result)
    blocks.insert(-1, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    try:
        await respond(
            response_type="ephemeral", replace_original=False, blocks=blocks, text=headline(result)
        )
    except Exception:
        log.warning("could not answer a /diagnose request with capture %s", result.id)
    await _note(services, user, "diagnosis.reused", result.id, target=result.target)


async def _note(services: Services, user: str, action: str, subject: str, **detail: Any) -> None:
    """Audit an answer that was already given; a store failure is only logged."""
    try:
        await audit(services.store, user, action, subject, **detail)
    except Exception as exc:
        log.warning("could not audit %s of %s: %s", action, subject, exc)


async def _store(services: Services, result: Capture, user: str) -> str:
    """Keep the redacted capture (the Roll back button links to it); "" or what went wrong."""
    t = now()
    record = Record(
        id=result.id,
        kind=KIND,
        state="done",
        data=json.loads(result.to_json()),
        created_at=t,
        updated_at=t,
    )
    try:
        await services.store.create(record)
        await audit(
            services.store,
            user,
            "diagnosis.captured",
            result.id,
            target=result.target,
            severity=result.verdict.severity,
        )
    except Exception as exc:  # the verdict still matters more than its bookkeeping
        log.exception("storing diagnosis %s failed", result.id)
        return f"The diagnosis could not be stored ({_readable(exc)})."
    return ""


async def _upload(services: Services, channel: str, thread_ts: str, result: Capture) -> str:
    try:
        await services.slack.upload(
            channel,
            thread_ts,
            filename=f"diagnosis-{result.target}.json",
            title=f"Diagnosis of {result.target} ({result.id})",
            content=result.to_json(),
            subject=result.id,
        )
    except SlackApiError as exc:
        log.warning("upload of diagnosis %s failed: %s", result.id, _slack_error(exc))
        return (
            f"The verdict is posted, but the capture file could not be attached "
            f"({escape(_slack_error(exc))}); it is stored as {code(result.id)}."
        )
    return ""


async def _tell(respond: Reply, text: str) -> None:
    try:
        await respond(response_type="ephemeral", replace_original=False, text=text)
    except Exception:  # the response_url may have expired; the log has the rest
        log.warning("could not answer the /diagnose request: %s", text)


def _slack_error(exc: SlackApiError) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("error", "")) if response is not None else ""


def _readable(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack answered {escape(_slack_error(exc))}"
    return escape(truncate(redact_text(describe_error(exc)), 300))
