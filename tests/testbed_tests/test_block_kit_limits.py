"""The fake Slack refuses what Slack refuses, limit by limit: each documented Block Kit limit is
tried at its length (accepted) and one UTF-16 code unit over it (refused with Slack's error and
the JSON pointer of the offending field), through slack_sdk's own client."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.testbed.block_kit import check_block_kit, utf16_len
from tests.testbed.slack_api import TOKEN, FakeSlackApi

EMOJI = "\N{ROCKET}"  # outside the BMP: one code point, two UTF-16 code units


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def option(text: str = "api", value: str = "api") -> dict[str, Any]:
    return {"text": plain(text), "value": value}


def button(**fields: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "go", "text": plain("Go"), "value": "v", **fields}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def confirm(**fields: Any) -> dict[str, Any]:
    dialog = {
        "title": plain("Sure?"),
        "text": plain("This rolls api back."),
        "confirm": plain("Roll back"),
        "deny": plain("Stop"),
    }
    return {**dialog, **fields}


def static_select(options: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": "value",
        "placeholder": plain("Target"),
        "options": options,
    }


def modal(**fields: Any) -> dict[str, Any]:
    view = {
        "type": "modal",
        "callback_id": "rollback_modal",
        "title": plain("Emergency rollback"),
        "submit": plain("Request"),
        "close": plain("Cancel"),
        "blocks": [{"type": "section", "text": mrkdwn("Pick a target")}],
    }
    return {**view, **fields}


# name -> (build(n) giving the chat.postMessage blocks or the view, the limit n, the pointer
# Slack names when n is one over). Each builder puts exactly n UTF-16 units (or items) where
# the limit applies.
Build = Callable[[int], Any]
MESSAGE_LIMITS: dict[str, tuple[Build, int, str]] = {
    "button text": (
        lambda n: [actions(button(text=plain("x" * n)))],
        75,
        "/blocks/0/elements/0/text/text",
    ),
    "button value": (
        lambda n: [actions(button(value="v" * n))],
        2000,
        "/blocks/0/elements/0/value",
    ),
    "action_id": (
        lambda n: [actions(button(action_id="a" * n))],
        255,
        "/blocks/0/elements/0/action_id",
    ),
    "confirm title": (
        lambda n: [actions(button(confirm=confirm(title=plain("t" * n))))],
        100,
        "/blocks/0/elements/0/confirm/title/text",
    ),
    "confirm text": (
        lambda n: [actions(button(confirm=confirm(text=plain("t" * n))))],
        300,
        "/blocks/0/elements/0/confirm/text/text",
    ),
    "confirm button": (
        lambda n: [actions(button(confirm=confirm(confirm=plain("c" * n))))],
        30,
        "/blocks/0/elements/0/confirm/confirm/text",
    ),
    "confirm deny": (
        lambda n: [actions(button(confirm=confirm(deny=plain("d" * n))))],
        30,
        "/blocks/0/elements/0/confirm/deny/text",
    ),
    "section text": (
        lambda n: [{"type": "section", "text": mrkdwn("s" * n)}],
        3000,
        "/blocks/0/text/text",
    ),
    "field text": (
        lambda n: [{"type": "section", "fields": [mrkdwn("ok"), mrkdwn("f" * n)]}],
        2000,
        "/blocks/0/fields/1/text",
    ),
    "fields": (
        lambda n: [{"type": "section", "fields": [mrkdwn(f"f{i}") for i in range(n)]}],
        10,
        "/blocks/0/fields",
    ),
    "header": (
        lambda n: [{"type": "header", "text": plain("h" * n)}],
        150,
        "/blocks/0/text/text",
    ),
    "context elements": (
        lambda n: [{"type": "context", "elements": [mrkdwn(f"c{i}") for i in range(n)]}],
        10,
        "/blocks/0/elements",
    ),
    "blocks per message": (
        lambda n: [{"type": "divider"}] * n,
        50,
        "/blocks",
    ),
    "static select options": (
        lambda n: [actions(static_select([option(f"t{i}", f"t{i}") for i in range(n)]))],
        100,
        "/blocks/0/elements/0/options",
    ),
    "option text": (
        lambda n: [actions(static_select([option("o" * n)]))],
        75,
        "/blocks/0/elements/0/options/0/text/text",
    ),
    "option value": (
        lambda n: [actions(static_select([option(value="v" * n)]))],
        150,
        "/blocks/0/elements/0/options/0/value",
    ),
    "accessory button text": (
        lambda n: [
            {"type": "section", "text": mrkdwn("x"), "accessory": button(text=plain("b" * n))}
        ],
        75,
        "/blocks/0/accessory/text/text",
    ),
}
VIEW_LIMITS: dict[str, tuple[Build, int, str]] = {
    "modal title": (lambda n: modal(title=plain("t" * n)), 24, "/view/title/text"),
    "modal submit": (lambda n: modal(submit=plain("s" * n)), 24, "/view/submit/text"),
    "modal close": (lambda n: modal(close=plain("c" * n)), 24, "/view/close/text"),
    "private_metadata": (
        lambda n: modal(private_metadata="m" * n),
        3000,
        "/view/private_metadata",
    ),
    "blocks per view": (
        lambda n: modal(blocks=[{"type": "section", "text": mrkdwn(f"b{i}")} for i in range(n)]),
        100,
        "/view/blocks",
    ),
    "input hint": (
        lambda n: modal(
            blocks=[
                {
                    "type": "input",
                    "label": plain("Reason"),
                    "hint": plain("h" * n),
                    "element": {"type": "plain_text_input", "action_id": "value"},
                }
            ]
        ),
        2000,
        "/view/blocks/0/hint/text",
    ),
    "select in a modal": (
        lambda n: modal(
            blocks=[
                {
                    "type": "input",
                    "label": plain("Target"),
                    "element": static_select([option(f"t{i}", f"t{i}") for i in range(n)]),
                }
            ]
        ),
        100,
        "/view/blocks/0/element/options",
    ),
}


def client(fake: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.url, token=TOKEN)


def with_emoji(value: Any, limit: int, code_points: int) -> Any:
    """`value` with each run of `limit` equal characters replaced by `code_points` code points
    ending in an emoji (code_points + 1 UTF-16 units); None when there is no such run."""
    found = False

    def swap(v: Any) -> Any:
        nonlocal found
        if isinstance(v, str) and len(v) == limit and len(set(v)) == 1:
            found = True
            return v[0] * (code_points - 1) + EMOJI
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    swapped = swap(value)
    return swapped if found else None


@pytest.mark.parametrize("name", MESSAGE_LIMITS)
async def test_message_limits(fake_slack: FakeSlackApi, name: str) -> None:
    build, limit, pointer = MESSAGE_LIMITS[name]
    web_client = client(fake_slack)
    await web_client.chat_postMessage(channel="C1", text="at the limit", blocks=build(limit))
    assert fake_slack.errors == []

    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_postMessage(channel="C1", text="over", blocks=build(limit + 1))
    answer = refused.value.response
    assert answer["error"] == "invalid_blocks"
    assert any(e.endswith(f"[json-pointer:{pointer}]") for e in answer["errors"]), answer
    assert f"[ERROR] {answer['errors'][0]}" == answer["response_metadata"]["messages"][0]
    assert len(fake_slack.errors) == 1 and pointer in fake_slack.errors[0]


@pytest.mark.parametrize("name", VIEW_LIMITS)
async def test_view_limits(fake_slack: FakeSlackApi, name: str) -> None:
    build, limit, pointer = VIEW_LIMITS[name]
    web_client = client(fake_slack)
    opened = await web_client.views_open(trigger_id="1.2.3", view=build(limit))
    await web_client.views_update(view_id=opened["view"]["id"], view=build(limit))
    assert fake_slack.errors == []

    for call in (
        web_client.views_open(trigger_id="1.2.3", view=build(limit + 1)),
        web_client.views_update(view_id=opened["view"]["id"], view=build(limit + 1)),
    ):
        with pytest.raises(SlackApiError) as refused:
            await call
        answer = refused.value.response
        assert answer["error"] == "invalid_arguments"
        messages = answer["response_metadata"]["messages"]
        assert any(m.endswith(f"[json-pointer:{pointer}]") for m in messages), answer
    assert len(fake_slack.errors) == 2


LENGTHS = [n for n in MESSAGE_LIMITS if with_emoji(MESSAGE_LIMITS[n][0](3), 3, 2) is not None]


@pytest.mark.parametrize("name", LENGTHS)
def test_lengths_are_counted_in_utf16_code_units(name: str) -> None:
    build, limit, pointer = MESSAGE_LIMITS[name]
    # limit - 1 code points, limit UTF-16 units: accepted
    at_limit = with_emoji(build(limit), limit, limit - 1)
    assert check_block_kit({"blocks": at_limit}) == ""
    # limit code points (what a code-point count accepts), limit + 1 UTF-16 units: refused
    over = with_emoji(build(limit), limit, limit)
    text = next(s for s in _strings(over) if s.endswith(EMOJI))
    assert len(text) == limit and utf16_len(text) == limit + 1
    assert check_block_kit({"blocks": over}).endswith(f"[json-pointer:{pointer}]")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


async def test_message_text_limit_is_in_utf16_and_answers_msg_too_long(
    fake_slack: FakeSlackApi,
) -> None:
    web_client = client(fake_slack)
    await web_client.chat_postMessage(channel="C1", text="t" * 39_998 + EMOJI)
    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_postMessage(channel="C1", text="t" * 39_999 + EMOJI)
    assert refused.value.response["error"] == "msg_too_long"
    assert fake_slack.errors == ["chat.postMessage: msg_too_long"]


async def test_every_problem_is_reported_with_its_pointer(fake_slack: FakeSlackApi) -> None:
    blocks = [
        {"type": "header", "text": plain("h" * 151)},
        actions(button(text=plain("b" * 76), value="v" * 2001)),
    ]
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).chat_postMessage(channel="C1", text="x", blocks=blocks)
    assert [e.rsplit("[json-pointer:", 1)[1] for e in refused.value.response["errors"]] == [
        "/blocks/0/text/text]",
        "/blocks/1/elements/0/text/text]",
        "/blocks/1/elements/0/value]",
    ]
    assert refused.value.response["errors"][0].startswith("must be less than 151 characters")


@pytest.mark.parametrize(
    "blocks, pointer",
    [
        ([{"type": "section", "text": mrkdwn("")}], "/blocks/0/text/text"),
        (
            [actions(static_select([option("a", "a")]) | {"initial_option": option("b", "b")})],
            "/blocks/0/elements/0/initial_option",
        ),
        (
            [actions({**button(), "confirm": confirm(title=mrkdwn("*Sure?*"))})],
            "/blocks/0/elements/0/confirm/title/type",
        ),
        ([{"type": "header", "text": mrkdwn("*h*")}], "/blocks/0/text/type"),
    ],
    ids=["empty-text", "initial-option-not-offered", "confirm-title-mrkdwn", "header-mrkdwn"],
)
async def test_shapes_slack_refuses(
    fake_slack: FakeSlackApi, blocks: list[dict[str, Any]], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client(fake_slack).chat_postMessage(channel="C1", text="x", blocks=blocks)
    assert any(pointer in e for e in refused.value.response["errors"])


async def test_updates_ephemerals_and_response_urls_are_checked_too(
    fake_slack: FakeSlackApi,
) -> None:
    import aiohttp

    web_client = client(fake_slack)
    too_long = [actions(button(text=plain("b" * 76)))]
    posted = await web_client.chat_postMessage(channel="C1", text="x")
    for call in (
        web_client.chat_update(channel="C1", ts=posted["ts"], text="x", blocks=too_long),
        web_client.chat_postEphemeral(channel="C1", user="U1", text="x", blocks=too_long),
    ):
        with pytest.raises(SlackApiError) as refused:
            await call
        assert refused.value.response["error"] == "invalid_blocks"
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake_slack.response_url(), json={"blocks": copy.deepcopy(too_long)}),
    ):
        pass
    assert len(fake_slack.errors) == 3
    assert all("/blocks/0/elements/0/text/text" in e for e in fake_slack.errors)
