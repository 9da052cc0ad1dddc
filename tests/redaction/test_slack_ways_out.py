"""Every way to Slack passes the redactor: statically (only the notifier and its outbox call the
Web API, only respond.py answers a response_url, listeners only get a redacting ack) and by
behaviour (each notifier effect, response_url answers and acks, with the planted corpus, seen
by the fake Slack; and each effect routed through the one `_outgoing` hook)."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.notifier import SlackNotifier
from bot.slack.outgoing import RedactingAck
from bot.slack.respond import PooledRespond
from bot.store.sqlite import SqliteStore
from tests.testbed.secrets import environment, leaks, text
from tests.testbed.slack_api import TOKEN, FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]
SLACK = ROOT / "bot" / "slack"
# The modules allowed to hold a way to Slack, and what they may use.
WEB_API_CALLERS = {"notifier.py", "outbox.py"}
WEBHOOK_USERS = {"respond.py"}
WEB_API = ("chat_", "files_", "views_", "usergroups_", "conversations_", "users_", "reactions_")
# The notifier's effects this file exercises; a new one fails the test until it is covered.
EFFECTS = {
    "post",
    "upload",
    "attach",
    "update",
    "ephemeral",
    "replier",
    "open_view",
    "publish_home",
    "group_members",
    "join",
}


def _calls(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.func.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr.startswith(WEB_API) or node.func.attr == "api_call")
    ]


def test_only_the_notifier_and_its_outbox_call_slacks_web_api() -> None:
    found = [
        f"bot/slack/{path.name}:{line} calls {name}"
        for path in sorted(SLACK.glob("*.py"))
        if path.name not in WEB_API_CALLERS
        for name, line in _calls(path)
    ]
    assert not found, found


def test_only_respond_answers_a_response_url() -> None:
    found = []
    for package in ("bot", "handlers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if path.parent == SLACK and path.name in WEBHOOK_USERS:
                continue
            if "WebhookClient" in source or "slack_sdk.webhook" in source:
                found.append(str(path.relative_to(ROOT)))
    assert not found, found


def test_every_web_api_call_of_the_notifier_goes_through_a_redacting_path() -> None:
    """Each notifier method that calls the Web API itself uses an `_outgoing` hook or `_call`
    with kwargs built from them, or sends no text (user groups)."""
    tree = ast.parse((SLACK / "notifier.py").read_text(encoding="utf-8"))
    unguarded = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            calls = [c for c in ast.walk(node) if isinstance(c, ast.Call)]
            names = {c.func.attr for c in calls if isinstance(c.func, ast.Attribute)}
            # user groups and joining a channel send no text of ours
            quiet = {"usergroups_users_list", "conversations_join"}
            talks = {n for n in names if n.startswith(WEB_API)} - quiet
            if talks and not any(n.startswith("_outgoing") for n in names):
                unguarded.append(node.name)
    assert not unguarded, unguarded


def test_the_notifier_effects_are_the_ones_checked_here() -> None:
    public = {
        name
        for name, member in inspect.getmembers(SlackNotifier, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public - {"outbox_drain"} == EFFECTS


def notifier(store: SqliteStore, fake: FakeSlackApi) -> SlackNotifier:
    return SlackNotifier(store, AsyncWebClient(token=TOKEN, base_url=fake.url))


def blocks() -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text()[:2900]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "DB_PASS=plantedDbPass24"}]},
    ]


async def _every_effect(slack: SlackNotifier) -> None:
    ts = await slack.post("C1", text(), blocks(), subject="rb-1")
    await slack.post("C1", text(), thread_ts=ts, subject="rb-1", durable=True)
    await slack.update("C1", ts, text(), blocks())
    await slack.ephemeral("C1", "U1", text())
    await slack.ephemeral("", "U1", text())
    await slack.replier("C1", "U1")(text=text())
    await slack.upload("C1", ts, filename="out.txt", content=text(), title="t", subject="rb-1")
    bundle = json.dumps({"env": environment(), "log": text().splitlines()})
    await slack.upload("C1", ts, filename="d.json", content=bundle, title="d", subject="rb-1")
    await slack.attach("C1", ts, filename="a.txt", content=text(), title="a", subject="rb-1")
    view = {
        "type": "modal",
        "callback_id": "v",
        "title": {"type": "plain_text", "text": "Why"},
        "blocks": blocks(),
    }
    await slack.open_view("trigger-1", view)
    await slack.publish_home("U1", {"type": "home", "blocks": blocks()})


def sent(fake: FakeSlackApi) -> str:
    return json.dumps([c.args for c in fake.calls]) + "".join(u.text for u in fake.uploads.values())


async def test_no_planted_secret_reaches_slack_through_any_effect(
    tmp_path: Path, fake_slack: FakeSlackApi
) -> None:
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        await _every_effect(notifier(store, fake_slack))
    finally:
        await store.close()
    methods = {c.method for c in fake_slack.calls}
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"} <= methods
    assert "views.publish" in methods
    assert len(fake_slack.uploaded_files) == 3
    assert leaks(sent(fake_slack)) == []
    assert leaks((tmp_path / "rollbot.db").read_bytes()) == []


async def test_every_effect_passes_the_one_hook(
    tmp_path: Path, fake_slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `_outgoing` replaced, nothing the fake receives keeps the original text."""
    monkeypatch.setattr(SlackNotifier, "_outgoing", lambda self, t: "HOOKED")
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        await _every_effect(notifier(store, fake_slack))
    finally:
        await store.close()
    assert "planted" not in sent(fake_slack).lower()
    assert "HOOKED" in sent(fake_slack)


async def test_response_url_answers_are_redacted(fake_slack: FakeSlackApi) -> None:
    respond = PooledRespond(fake_slack.response_url(), None)
    await respond(text=text(), response_type="ephemeral")
    await respond({"text": text(), "blocks": blocks(), "replace_original": False})
    assert len(fake_slack.responses) == 2
    assert leaks(json.dumps(fake_slack.responses)) == []


async def test_acknowledgements_are_redacted() -> None:
    said: list[tuple[Any, dict[str, Any]]] = []

    async def ack(text: Any = "", **fields: Any) -> None:
        said.append((text, fields))

    ack.response = None  # type: ignore[attr-defined]
    redacting = RedactingAck(ack)
    await redacting(response_type="ephemeral", text=text())
    await redacting(text(), blocks=blocks())
    await redacting(response_action="errors", errors={"reason": "fine"})
    assert len(said) == 3 and said[2][1]["errors"] == {"reason": "fine"}
    assert leaks(repr(said)) == []
    assert redacting.response is None
