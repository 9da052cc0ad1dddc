"""The one way Rollbot talks to Slack's Web API: domain code asks the notifier for an effect
(a post, an update, an upload, a form) and never holds the client itself.

Every text leaving the process passes `_outgoing`, so secrets are hidden in one place; posts
and uploads are audited, and a durable one that Slack keeps refusing waits in the store's
outbox and is delivered later, in order per channel."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import outbox
from bot.store.audit import audit
from bot.store.base import Store
from playbooks.redact import redact, redact_text

log = logging.getLogger(__name__)

# How long a user group's members are trusted before Slack is asked again.
GROUP_TTL = 60.0


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
        return redact_text(text)

    def _outgoing_file(self, content: str) -> str:
        """A file's text; a JSON file is redacted value by value so that it stays JSON."""
        try:
            data = json.loads(content)
        except ValueError:
            return self._outgoing(content)
        return json.dumps(redact(data), indent=2)

    def _outgoing_blocks(self, blocks: Any) -> Any:
        """Block Kit with each displayed text passed through `_outgoing` (button values kept)."""
        if isinstance(blocks, list):
            return [self._outgoing_blocks(b) for b in blocks]
        if isinstance(blocks, dict):
            return {
                k: self._outgoing(v)
                if k == "text" and isinstance(v, str)
                else self._outgoing_blocks(v)
                for k, v in blocks.items()
            }
        return blocks

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
        response = await self._call("files_upload_v2", kwargs, subject, durable, detail)
        if response is not None:
            await self._audit("slack.upload", subject, detail)

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
        """A line only `user` sees in `channel`; a direct message when there is no channel."""
        text = self._outgoing(text)
        if channel:
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
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
        try:
            await audit(self.store, "rollbot", action, subject, **detail)
        except Exception:
            log.exception("could not audit %s of %s", action, subject or "a message")


class EphemeralReply:
    """Called like Bolt's `respond`, answering through the notifier's ephemeral message."""

    def __init__(self, notifier: SlackNotifier, channel: str, user: str) -> None:
        self.notifier, self.channel, self.user = notifier, channel, user

    async def __call__(self, text: str = "", **_: Any) -> None:
        await self.notifier.ephemeral(self.channel, self.user, text)
