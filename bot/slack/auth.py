"""Is the bot token accepted? One auth.test, worded for the person starting the bot."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

# Slack's answers that mean the token itself is wrong, not that Slack is unwell
TOKEN_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


async def verify_bot_token(token: str, base_url: str, wait_seconds: float) -> tuple[bool, str]:
    """(accepted, one line: the bot and workspace, or what is wrong and what to do)."""
    # one attempt: a failed start is reported at once, and its retries would only log noise
    client = AsyncWebClient(
        token=token, base_url=base_url, timeout=int(wait_seconds), retry_handlers=[]
    )
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        if error in TOKEN_ERRORS:
            return False, (
                f"Slack rejected SLACK_BOT_TOKEN (auth.test: {error}): set it to the app's "
                "Bot User OAuth Token (xoxb-...) from its OAuth & Permissions page"
            )
        return (
            False,
            f"auth.test failed ({error or f'HTTP {exc.response.status_code}'}): try again later",
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines and lines[0] else type(exc).__name__
        return False, (
            f"cannot reach Slack at {base_url} ({reason}): check the network and SLACK_API_URL"
        )
    return True, f"bot {answer.get('user')} in workspace {answer.get('team')}"
