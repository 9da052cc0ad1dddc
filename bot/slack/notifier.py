"""The one way Rollbot talks to Slack's Web API: domain code asks the notifier for an effect
(a post, an update, an upload, a form) and never holds the client itself.

Every text leaving the process passes `_outgoing`, so secrets are hidden in one place; posts
and uploads are audited, and a durable one that Slack keeps refusing waits in the store's
outbox and is delivered later, in order per channel.

Channels the bot cannot reach: an upload into a public channel it was not invited to joins the
channel first (channels:join); an ephemeral answer Slack cannot deliver there goes to the
person as a direct message instead."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import outbox, outgoing
from bot.slack.limits import section_block, sections
from bot.slack.text import escape
from bot.store.audit import audit_entry
from bot.store.base import Store
from bot.store.outage import HEALTH, is_unavailable

log = logging.getLogger(__name__)

# How long a user group's members are trusted before Slack is asked again.
GROUP_TTL = 60.0
# Slack's answers for a channel the bot cannot act in (an answer then goes to the person).
UNREACHABLE = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "user_not_in_channel"}
)


def slack_error(exc: BaseException) -> str:
    """Slack's error code of a refused call ("" for anything else)."""
    response = getattr(exc, "response", None) if isinstance(exc, SlackApiError) else None
    return str(response.get("error", "")) if response is not None else ""


class SlackNotifier:
    """Posts, updates, ephemeral answers, uploads, forms and user groups, for one workspace."""

    def __init__(self, store: Store, client: AsyncWebClient, group_ttl: float = GROUP_TTL) -> None:
        self.store = store
        self._client = client
        self._group_ttl = group_ttl
        self._groups: dict[str, tuple[float, set[str]]] = {}

    # -- the one hook every outgoing text passes ------------------------------------------------

    def _outgoing(self, text: str) -> str:
        """Hide secrets in a text about to leave the process."""
        return outgoing.text(text)

    def _outgoing_file(self, content: str) -> str:
        """A file's text; a JSON file is redacted value by value so that it stays JSON."""
        return outgoing.file(content, self._outgoing)

    def _outgoing_blocks(self, blocks: Any) -> Any:
        """Block Kit with each displayed text passed through `_outgoing` (button values kept)."""
        return outgoing.blocks(blocks, self._outgoing)

    # -- effects ---------------------------------------------------------------------------------

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict] | None = None,
        *,
        thread_ts: str | None = None,
        subject: str = "",
        broadcast: bool = False,
        durable: bool = False,
    ) -> str:
        """Post a message and write it to the audit log; returns its ts.

        A durable post that Slack still refuses after retries waits in the outbox and is
        delivered later, in order ("" is returned then); others raise.
        """
        text = self._outgoing(text)
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks:
            kwargs["blocks"] = self._outgoing_blocks(blocks)
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            kwargs["reply_broadcast"] = broadcast
        detail = {"channel": channel, "text": text[:500]}
        response = await self._call("chat_postMessage", kwargs, subject, durable, detail)
        if response is None:
            return ""  # queued, and audited as such
        await self._audit("slack.post", subject, detail)
        return str(response["ts"])

    async def upload(
        self,
        channel: str,
        thread_ts: str,
        *,
        filename: str,
        content: str,
        title: str,
        subject: str,
        durable: bool = False,
    ) -> None:
        """Attach a text file to a thread; audited like a post."""
        kwargs = {
            "channel": channel,
            "thread_ts": thread_ts,
            "filename": filename,
            "content": self._outgoing_file(content),
            "title": self._outgoing(title),
        }
        detail = {"filename": filename}
        try:
            response = await self._call("files_upload_v2", kwargs, subject, durable, detail)
        except SlackApiError as exc:
            # a public channel the bot was not invited to: join it, then once more
            if slack_error(exc) != "not_in_channel" or not await self.join(channel, subject):
                raise
            response = await self._call("files_upload_v2", kwargs, subject, durable, detail)
        if response is not None:
            await self._audit("slack.upload", subject, detail)

    async def attach(
        self,
        channel: str,
        thread_ts: str,
        *,
        filename: str,
        content: str,
        title: str,
        subject: str,
        readable: str = "",
        durable: bool = False,
    ) -> bool:
        """Upload a file to a thread; when Slack refuses it (a channel the bot may not join),
        post its text there instead (`readable`, else the content), saying the file could not
        be attached. Never raises for Slack's refusal: returns whether the file is attached."""
        try:
            await self.upload(
                channel,
                thread_ts,
                filename=filename,
                content=content,
                title=title,
                subject=subject,
                durable=durable,
            )
            return True
        except SlackApiError as exc:
            error = slack_error(exc) or "an error"
            log.warning("%s could not be attached in %s: %s", filename, channel, error)
        head = (
            f":paperclip: *{escape(title)}*: the file could not be attached here (Slack answered "
            f"`{escape(error)}`; invite the bot to this channel to get files). What it holds:"
        )
        where = f"the rest is kept by the bot under {subject}" if subject else "the rest is cut"
        blocks, _ = sections(escape(readable or content), most=8, where=where)
        try:
            await self.post(
                channel,
                head,
                [section_block(head), *blocks],
                thread_ts=thread_ts,
                subject=subject,
                durable=durable,
            )
        except SlackApiError as exc:
            log.warning("%s could not be posted in %s: %s", filename, channel, slack_error(exc))
        return False

    async def join(self, channel: str, subject: str = "") -> bool:
        """Join a public channel (to attach files there); False when Slack will not let us."""
        try:
            await self._client.conversations_join(channel=channel)
        except SlackApiError as exc:
            log.warning("could not join %s: %s", channel, slack_error(exc))
            return False
        await self._audit("slack.joined", subject, {"channel": channel})
        return True

    async def update(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict] | None = None,
        *,
        subject: str = "",
        durable: bool = False,
    ) -> None:
        """Refresh a message (buttons, progress); a failure must never stop the work itself.

        A durable edit goes the way of durable posts: refused by Slack after retries, it waits
        in the outbox behind earlier edits of the same message, so a later edit always lands
        last (and edits never wait behind the channel's posts)."""
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": self._outgoing(text)}
        if blocks is not None:
            kwargs["blocks"] = self._outgoing_blocks(blocks)
        try:
            if durable:
                detail = {"channel": channel, "ts": ts, "text": kwargs["text"][:500]}
                queue = f"{channel}/{ts}"
                await self._call("chat_update", kwargs, subject, True, detail, queue=queue)
            else:
                await self._client.chat_update(**kwargs)
        except Exception as exc:
            log.warning("could not update message %s: %s", ts, exc)

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Show `view` as `user`'s Home tab (views.publish)."""
        await self._client.views_publish(user_id=user, view=self._outgoing_blocks(view))

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A line only `user` sees in `channel`; a direct message when there is no channel or
        the bot cannot post there (a DM between people, a private channel it is not in)."""
        text = self._outgoing(text)
        if channel:
            try:
                await self._client.chat_postEphemeral(channel=channel, user=user, text=text)
                return
            except SlackApiError as exc:
                if slack_error(exc) not in UNREACHABLE:
                    raise
                log.info("cannot answer %s in %s (%s): by DM", user, channel, slack_error(exc))
        await self._client.chat_postMessage(channel=user, text=text)

    def replier(self, channel: str, user: str) -> EphemeralReply:
        """A `respond` look-alike for requests that carry no response_url (form submissions)."""
        return EphemeralReply(self, channel, user)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._client.views_open(trigger_id=trigger_id, view=self._outgoing_blocks(view))

    async def group_members(self, group_id: str, *, fresh: bool = False) -> set[str]:
        """The members of a user group, cached briefly unless `fresh` is asked for."""
        hit = self._groups.get(group_id)
        if not fresh and hit and time.monotonic() - hit[0] < self._group_ttl:
            return hit[1]
        response = await self._client.usergroups_users_list(usergroup=group_id)
        users = set(response.get("users") or [])
        self._groups[group_id] = (time.monotonic(), users)
        return users

    def outbox_drain(self, lease: float) -> outbox.OutboxDrain:
        """The due-job that delivers queued calls once Slack answers again."""
        return outbox.OutboxDrain(self.store, self._client, lease)

    # -- plumbing --------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        kwargs: dict[str, Any],
        subject: str,
        durable: bool,
        detail: dict[str, Any],
        queue: str = "",
    ) -> dict[str, Any] | None:
        if durable:
            queue = queue or kwargs["channel"]
            return await outbox.call_in_order(
                self.store, self._client, queue, method, kwargs, subject, detail
            )
        return dict((await getattr(self._client, method)(**kwargs)).data)

    async def _audit(self, action: str, subject: str, detail: dict[str, Any]) -> None:
        # The message is out: reporting it as failed would only make a caller send it again.
        entry = audit_entry("rollbot", action, subject, **detail)
        try:
            await self.store.audit(entry)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("could not audit %s of %s", action, subject or "a message")
                return
            # the store is away: write the entry once it is back, and say so in one line
            HEALTH.defer(entry)
            log.warning("%s of %s is audited once the state store is back", action, subject)


class EphemeralReply:
    """Called like Bolt's `respond`, answering through the notifier's ephemeral message."""

    def __init__(self, notifier: SlackNotifier, channel: str, user: str) -> None:
        self.notifier, self.channel, self.user = notifier, channel, user

    async def __call__(self, text: str = "", **_: Any) -> None:
        await self.notifier.ephemeral(self.channel, self.user, text)
