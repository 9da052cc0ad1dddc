"""The fake Slack's answer to each Web API method it emulates, and how it reads a request's
arguments; the server and its recording live in slack_api."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

if TYPE_CHECKING:
    from tests.testbed.slack_api import FakeSlackApi

BOT_USER = "U0ROLLBOT"
TEAM = "T0TEAM"


@dataclass
class Upload:
    """A file the bot uploaded: announced by files.getUploadURLExternal, bytes posted to the
    upload_url, shared by files.completeUploadExternal."""

    file_id: str
    filename: str
    length: int = 0
    content: bytes = b""
    received: bool = False
    completed: bool = False
    channel: str = ""
    thread_ts: str = ""
    title: str = ""
    initial_comment: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


# ---------------------------------------------------------------------- answers per method
def _auth_test(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://acme.slack.com/",
        "team": "Acme",
        "user": "rollbot",
        "team_id": TEAM,
        "user_id": BOT_USER,
        "bot_id": "B0ROLLBOT",
        "is_enterprise_install": False,
    }


def dm_channel(user_id: str) -> str:
    """The id of the bot's DM with `user_id`, where a post to the user id lands."""
    return "D" + user_id.removeprefix("U").removeprefix("W")


def _post_message(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    ts = api._next_ts()
    channel = str(args["channel"])
    if channel[:1] in ("U", "W"):
        # a user id as channel: Slack posts in the app's DM with that person (Messages tab)
        channel = dm_channel(channel)
    with api._lock:
        # the very dict recorded as the call's args, so a test can find a call's message by identity
        api.messages[(channel, ts)] = args
    message = {"type": "message", "user": BOT_USER, "ts": ts, "text": args.get("text", "")}
    if args.get("blocks"):
        message["blocks"] = args["blocks"]
    return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _update(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    key = (str(args["channel"]), str(args["ts"]))
    with api._lock:
        if key not in api.messages:
            return {"ok": False, "error": f"message_not_found: {key}"}
        api.messages[key] = {**api.messages[key], **args}
    return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text", "")}


def _delete(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    key = (str(args["channel"]), str(args["ts"]))
    with api._lock:
        if api.messages.pop(key, None) is None:
            return {"ok": False, "error": f"message_not_found: {key}"}
    return {"ok": True, "channel": key[0], "ts": key[1]}


def _permalink(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    ts = str(args["message_ts"]).replace(".", "")
    return {
        "ok": True,
        "channel": args["channel"],
        "permalink": f"https://acme.slack.com/archives/{args['channel']}/p{ts}",
    }


def _ephemeral(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "message_ts": api._next_ts()}


def _view(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    view_id = str(args.get("view_id") or "") or "V" + api._next_ts().replace(".", "")
    view = {**args["view"], "id": view_id, "team_id": TEAM, "app_id": "A0ROLLBOT"}
    view.setdefault("state", {"values": {}})
    with api._lock:
        api.views[view_id] = view
    return {"ok": True, "view": view}


def _publish(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    """A Home tab, kept per user as views["home:USER"]."""
    return _view(api, {"view": args["view"], "view_id": f"home:{args['user_id']}"})


def _upload_url(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(args["length"])
    except (TypeError, ValueError):
        return {"ok": False, "error": f"invalid_arguments: length {args['length']!r}"}
    file_id = "F" + api._next_ts().replace(".", "")
    with api._lock:
        api.uploads[file_id] = Upload(file_id, str(args["filename"]), length)
    return {"ok": True, "file_id": file_id, "upload_url": f"{api.base}/upload/{file_id}"}


def _complete_upload(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    files = args["files"]
    try:
        files = json.loads(files) if isinstance(files, str) else files
        ids = [str(f["id"]) for f in files]
    except (ValueError, TypeError, KeyError):
        return {"ok": False, "error": f"invalid_arguments: files {args['files']!r}"}
    channel = str(args.get("channel_id") or args.get("channels") or "")
    with api._lock:
        unknown = [i for i in ids if i not in api.uploads or not api.uploads[i].received]
        if unknown:
            return {"ok": False, "error": f"file_not_found: never uploaded {unknown}"}
        for f in files:
            upload = api.uploads[str(f["id"])]
            upload.completed = True
            upload.title = str(f.get("title") or upload.filename)
            upload.channel = channel
            upload.thread_ts = str(args.get("thread_ts") or "")
            upload.initial_comment = str(args.get("initial_comment") or "")
        shared = [
            {"id": u.file_id, "name": u.filename, "title": u.title, "size": len(u.content)}
            for u in (api.uploads[i] for i in ids)
        ]
    return {"ok": True, "files": shared}


def _user_info(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    user_id = str(args["user"])
    with api._lock:
        extra = dict(api.users.get(user_id, {}))
    name = user_id.lower()
    user = {
        "id": user_id,
        "team_id": TEAM,
        "name": name,
        "real_name": name,
        "tz": "Europe/Berlin",
        "is_bot": False,
        "deleted": False,
        "profile": {"real_name": name, "display_name": name},
        **extra,
    }
    return {"ok": True, "user": user}


def _usergroup_users(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    group = str(args["usergroup"])
    if not group.startswith("S"):
        # a user or channel id passed as a group: a bug Slack answers the same way
        return {"ok": False, "error": f"no_such_subteam: {group}"}
    with api._lock:
        return {"ok": True, "users": list(api.usergroups.get(group, []))}


def _conversation_info(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    channel = str(args["channel"])
    with api._lock:
        member = channel not in api.refusals
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": channel.lower(),
            "is_channel": channel.startswith("C"),
            "is_private": channel.startswith("G"),
            "is_member": member,
            "is_archived": False,
        },
    }


def _join(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    """Reached only when the join works (a refusal answers before): the bot is a member now."""
    channel = str(args["channel"])
    with api._lock:
        already = channel in api.joined
        api.joined.append(channel)
    answer: dict[str, Any] = {"ok": True, "channel": {"id": channel, "is_member": True}}
    if already:
        answer["warning"] = "already_in_channel"
    return answer


def _open_conversation(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    users = [u for u in str(args["users"]).split(",") if u]
    if len(users) != 1:
        return {"ok": False, "error": f"invalid_arguments: the fake opens 1:1 DMs only {users}"}
    return {"ok": True, "channel": {"id": dm_channel(users[0])}}


def _connections_open(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "url": api.socket.issue_url()}


def _reaction(api: FakeSlackApi, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


ANSWERS: dict[str, Callable[[FakeSlackApi, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.delete": _delete,
    "chat.getPermalink": _permalink,
    "chat.postEphemeral": _ephemeral,
    "views.open": _view,
    "views.update": _view,
    "views.publish": _publish,
    "files.getUploadURLExternal": _upload_url,
    "files.completeUploadExternal": _complete_upload,
    "users.info": _user_info,
    "usergroups.users.list": _usergroup_users,
    "conversations.info": _conversation_info,
    "reactions.add": _reaction,
    "conversations.join": _join,
    "conversations.open": _open_conversation,
    "apps.connections.open": _connections_open,
}


# ---------------------------------------------------------------------- request parsing
async def arguments(request: web.Request) -> dict[str, Any]:
    """Query string, then the body (JSON, form or multipart) on top, as Slack merges them."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "multipart/form-data":
        form = await request.post()
        for key, value in form.items():
            args[key] = value.file.read() if isinstance(value, web.FileField) else value
    else:
        raw = await request.read()
        if raw and request.content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"__unparsable_json__": raw.decode("utf-8", "replace")}
            if isinstance(body, dict):
                args.update(body)
        elif raw:
            args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    # form posts carry structured arguments as JSON strings
    for key in ("blocks", "view", "attachments", "files"):
        if isinstance(args.get(key), str) and args[key][:1] in ("[", "{"):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass  # left as a string; the Block Kit check reports it
    return args
