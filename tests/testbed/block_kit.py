"""Slack's Block Kit limits, checked the way Slack checks them: nested all the way into elements,
options and confirm dialogs, lengths counted in UTF-16 code units, and every problem reported
with the JSON pointer Slack puts in its `invalid_blocks` answer.

slack_sdk's own models check the shape of each block but not what lies inside its elements, and
they count code points; this module adds what they leave out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

# Slack's documented limits (docs.slack.dev, Block Kit reference), in UTF-16 code units.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000  # chat.postMessage `text`; longer ones are refused as msg_too_long
MAX_BLOCK_ID = 255
MAX_SECTION_TEXT = 3_000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_INPUT_LABEL = 2_000
MAX_INPUT_HINT = 2_000
MAX_IMAGE_ALT = 2_000
MAX_URL = 3_000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_ACTION_ID = 255
MAX_PLACEHOLDER = 150
MAX_SELECT_OPTIONS = 100
MAX_OPTION_GROUPS = 100
MAX_OVERFLOW_OPTIONS = 5
MAX_CHOICE_OPTIONS = 10  # checkboxes and radio buttons
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTION_DESCRIPTION = 75
MAX_GROUP_LABEL = 75
MAX_INPUT_LENGTH = 3_000  # plain_text_input max_length
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_VIEW_TITLE = 24
MAX_VIEW_BUTTON = 24  # submit and close
MAX_PRIVATE_METADATA = 3_000
MAX_CALLBACK_ID = 255
MAX_EXTERNAL_ID = 255

SELECTS_WITH_OPTIONS = ("static_select", "multi_static_select")
CHOICES = ("checkboxes", "radio_buttons")


def utf16_len(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Problem:
    """One thing Slack would refuse, at a JSON pointer into the request's arguments."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} [json-pointer:{self.pointer}]"


class _Checker:
    """Walks blocks and views, noting every problem (Slack reports them all, not the first)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def note(self, pointer: str, message: str) -> None:
        self.problems.append(Problem(pointer, message))

    # ------------------------------------------------------------------ primitives
    def string(self, value: Any, pointer: str, limit: int, *, minimum: int = 0) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.note(pointer, "must be a string")
            return
        length = utf16_len(value)
        if length > limit:
            self.note(pointer, f"must be less than {limit + 1} characters")
        elif length < minimum:
            self.note(pointer, f"must be more than {minimum - 1} characters")

    def text(self, obj: Any, pointer: str, limit: int, *, plain: bool = False) -> None:
        """A text object: {"type": "plain_text"|"mrkdwn", "text": ...}, never empty."""
        if obj is None:
            return
        if not isinstance(obj, dict):
            self.note(pointer, "must be a text object")
            return
        kind = obj.get("type")
        if kind not in ("plain_text", "mrkdwn") or (plain and kind != "plain_text"):
            allowed = "plain_text" if plain else "plain_text or mrkdwn"
            self.note(f"{pointer}/type", f"must be {allowed}")
        if not isinstance(obj.get("text"), str):
            self.note(f"{pointer}/text", "must provide a string")
            return
        self.string(obj["text"], f"{pointer}/text", limit, minimum=1)

    def count(self, items: Any, pointer: str, limit: int) -> list[Any]:
        """The list at `pointer` (or []), noting when it holds more than `limit` items."""
        if items is None:
            return []
        if not isinstance(items, list):
            self.note(pointer, "must be an array")
            return []
        if len(items) > limit:
            self.note(pointer, f"must contain no more than {limit} items")
        return items

    # ------------------------------------------------------------------ composition objects
    def confirm(self, obj: Any, pointer: str) -> None:
        if obj is None:
            return
        if not isinstance(obj, dict):
            self.note(pointer, "must be a confirmation dialog object")
            return
        self.text(obj.get("title"), f"{pointer}/title", MAX_CONFIRM_TITLE, plain=True)
        self.text(obj.get("text"), f"{pointer}/text", MAX_CONFIRM_TEXT)
        self.text(obj.get("confirm"), f"{pointer}/confirm", MAX_CONFIRM_BUTTON, plain=True)
        self.text(obj.get("deny"), f"{pointer}/deny", MAX_CONFIRM_BUTTON, plain=True)

    def option(self, obj: Any, pointer: str) -> None:
        if not isinstance(obj, dict):
            self.note(pointer, "must be an option object")
            return
        self.text(obj.get("text"), f"{pointer}/text", MAX_OPTION_TEXT)
        if obj.get("value") is None:
            self.note(f"{pointer}/value", "must provide a string")
        self.string(obj.get("value"), f"{pointer}/value", MAX_OPTION_VALUE, minimum=1)
        self.text(obj.get("description"), f"{pointer}/description", MAX_OPTION_DESCRIPTION)
        self.string(obj.get("url"), f"{pointer}/url", MAX_URL)

    def options(self, items: Any, pointer: str, limit: int) -> None:
        for i, option in enumerate(self.count(items, pointer, limit)):
            self.option(option, f"{pointer}/{i}")

    # ------------------------------------------------------------------ elements
    def element(self, obj: Any, pointer: str) -> None:
        if not isinstance(obj, dict):
            self.note(pointer, "must be an element object")
            return
        kind = obj.get("type")
        self.string(obj.get("action_id"), f"{pointer}/action_id", MAX_ACTION_ID, minimum=1)
        self.confirm(obj.get("confirm"), f"{pointer}/confirm")
        self.text(obj.get("placeholder"), f"{pointer}/placeholder", MAX_PLACEHOLDER, plain=True)
        if kind == "button":
            self.text(obj.get("text"), f"{pointer}/text", MAX_BUTTON_TEXT, plain=True)
            self.string(obj.get("value"), f"{pointer}/value", MAX_BUTTON_VALUE)
            self.string(obj.get("url"), f"{pointer}/url", MAX_URL)
            self.string(obj.get("accessibility_label"), f"{pointer}/accessibility_label", 75)
        elif kind in SELECTS_WITH_OPTIONS:
            self._static_select(obj, pointer)
        elif kind in ("external_select", "multi_external_select"):
            if kind == "external_select" and obj.get("initial_option") is not None:
                self.option(obj["initial_option"], f"{pointer}/initial_option")
            for i, option in enumerate(obj.get("initial_options") or []):
                self.option(option, f"{pointer}/initial_options/{i}")
        elif kind == "overflow":
            self.options(obj.get("options"), f"{pointer}/options", MAX_OVERFLOW_OPTIONS)
        elif kind in CHOICES:
            self.options(obj.get("options"), f"{pointer}/options", MAX_CHOICE_OPTIONS)
        elif kind == "plain_text_input":
            max_length = obj.get("max_length")
            if isinstance(max_length, int) and max_length > MAX_INPUT_LENGTH:
                self.note(f"{pointer}/max_length", f"must be less than {MAX_INPUT_LENGTH + 1}")
            if isinstance(max_length, int) and isinstance(obj.get("initial_value"), str):
                if utf16_len(obj["initial_value"]) > max_length:
                    self.note(f"{pointer}/initial_value", "must not be longer than max_length")
        elif kind == "image":
            self.string(obj.get("alt_text"), f"{pointer}/alt_text", MAX_IMAGE_ALT)
        elif kind in ("plain_text", "mrkdwn"):  # a context block's text element
            self.text(obj, pointer, MAX_TEXT)

    def _static_select(self, obj: dict[str, Any], pointer: str) -> None:
        if obj.get("options") is not None:
            self.options(obj["options"], f"{pointer}/options", MAX_SELECT_OPTIONS)
        groups = self.count(obj.get("option_groups"), f"{pointer}/option_groups", MAX_OPTION_GROUPS)
        for g, group in enumerate(groups):
            gp = f"{pointer}/option_groups/{g}"
            if not isinstance(group, dict):
                self.note(gp, "must be an option group object")
                continue
            self.text(group.get("label"), f"{gp}/label", MAX_GROUP_LABEL, plain=True)
            self.options(group.get("options"), f"{gp}/options", MAX_SELECT_OPTIONS)
        if obj.get("initial_option") is not None:
            self.option(obj["initial_option"], f"{pointer}/initial_option")
            offered = [o for o in obj.get("options") or [] if isinstance(o, dict)]
            offered += [
                o
                for g in obj.get("option_groups") or []
                if isinstance(g, dict)
                for o in g.get("options") or []
                if isinstance(o, dict)
            ]
            if obj["initial_option"] not in offered:
                self.note(f"{pointer}/initial_option", "must match one of the options")

    # ------------------------------------------------------------------ blocks
    def blocks(self, blocks: Any, pointer: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self.note(pointer, "must be an array")
            return
        self.count(blocks, pointer, limit)
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            bp = f"{pointer}/{i}"
            if not isinstance(block, dict):
                self.note(bp, "must be a block object")
                continue
            block_id = block.get("block_id")
            self.string(block_id, f"{bp}/block_id", MAX_BLOCK_ID, minimum=1)
            if isinstance(block_id, str):
                if block_id in block_ids:
                    self.note(f"{bp}/block_id", f"must be unique: {block_id!r} is used twice")
                block_ids.add(block_id)
            self.block(block, bp)

    def block(self, block: dict[str, Any], pointer: str) -> None:
        before = len(self.problems)
        self.limits(block, pointer)
        if len(self.problems) == before:  # slack_sdk would only repeat a limit already noted
            self.shape(block, pointer)

    def limits(self, block: dict[str, Any], pointer: str) -> None:
        kind = block.get("type")
        if kind == "section":
            self.text(block.get("text"), f"{pointer}/text", MAX_SECTION_TEXT)
            fields = self.count(block.get("fields"), f"{pointer}/fields", MAX_FIELDS)
            for f, field_ in enumerate(fields):
                self.text(field_, f"{pointer}/fields/{f}", MAX_FIELD_TEXT)
            if block.get("accessory") is not None:
                self.element(block["accessory"], f"{pointer}/accessory")
        elif kind == "header":
            self.text(block.get("text"), f"{pointer}/text", MAX_HEADER_TEXT, plain=True)
        elif kind in ("context", "actions"):
            limit = MAX_CONTEXT_ELEMENTS if kind == "context" else MAX_ACTIONS_ELEMENTS
            elements = self.count(block.get("elements"), f"{pointer}/elements", limit)
            for e, element in enumerate(elements):
                self.element(element, f"{pointer}/elements/{e}")
        elif kind == "input":
            self.text(block.get("label"), f"{pointer}/label", MAX_INPUT_LABEL, plain=True)
            self.text(block.get("hint"), f"{pointer}/hint", MAX_INPUT_HINT, plain=True)
            self.element(block.get("element"), f"{pointer}/element")
        elif kind == "image":
            self.string(block.get("alt_text"), f"{pointer}/alt_text", MAX_IMAGE_ALT)
            self.string(block.get("image_url"), f"{pointer}/image_url", MAX_URL)

    def shape(self, block: dict[str, Any], pointer: str) -> None:
        """What slack_sdk's models know about a block's shape (required fields, known types)."""
        try:
            parsed = Block.parse(block)
            if parsed is None:
                self.note(f"{pointer}/type", f"unknown block type {block.get('type')!r}")
                return
            parsed.validate_json()
        except Exception as exc:  # slack_sdk raises its own formation errors, or TypeError
            self.note(pointer, f"{type(exc).__name__}: {exc}"[:300])

    # ------------------------------------------------------------------ views
    def view(self, view: Any, pointer: str) -> None:
        if not isinstance(view, dict):
            self.note(pointer, "must be a view object")
            return
        self.text(view.get("title"), f"{pointer}/title", MAX_VIEW_TITLE, plain=True)
        self.text(view.get("submit"), f"{pointer}/submit", MAX_VIEW_BUTTON, plain=True)
        self.text(view.get("close"), f"{pointer}/close", MAX_VIEW_BUTTON, plain=True)
        metadata = view.get("private_metadata")
        self.string(metadata, f"{pointer}/private_metadata", MAX_PRIVATE_METADATA)
        self.string(view.get("callback_id"), f"{pointer}/callback_id", MAX_CALLBACK_ID)
        self.string(view.get("external_id"), f"{pointer}/external_id", MAX_EXTERNAL_ID)
        self.blocks(view.get("blocks"), f"{pointer}/blocks", MAX_VIEW_BLOCKS)
        if self.problems:
            return
        try:  # View() takes only its own fields; id/state etc. are read-only but accepted
            View(**view).validate_json()
        except Exception as exc:
            self.note(pointer, f"{type(exc).__name__}: {exc}"[:300])


def message_problems(args: dict[str, Any]) -> list[Problem]:
    """What Slack would refuse in a message's `blocks` (chat.*, response_url posts)."""
    checker = _Checker()
    if args.get("blocks") is not None:
        checker.blocks(args["blocks"], "/blocks", MAX_MESSAGE_BLOCKS)
    return checker.problems


def view_problems(view: Any) -> list[Problem]:
    """What Slack would refuse in a view (views.open, views.update, views.publish)."""
    checker = _Checker()
    checker.view(view, "/view")
    return checker.problems


def suggestion_problems(answer: dict[str, Any]) -> list[Problem]:
    """What Slack would refuse in the options answering a block_suggestion."""
    checker = _Checker()
    if answer.get("options") is not None:
        checker.options(answer["options"], "/options", MAX_SELECT_OPTIONS)
    groups = checker.count(answer.get("option_groups"), "/option_groups", MAX_OPTION_GROUPS)
    for g, group in enumerate(groups):
        if isinstance(group, dict):
            checker.text(group.get("label"), f"/option_groups/{g}/label", MAX_GROUP_LABEL)
            checker.options(group.get("options"), f"/option_groups/{g}/options", 100)
    return checker.problems


def check_block_kit(args: dict[str, Any]) -> str:
    """Why Slack would refuse these `blocks`/`view` (every problem, "; "-joined), or ""."""
    problems = message_problems(args)
    if args.get("view") is not None:
        problems += view_problems(args["view"])
    return "; ".join(str(p) for p in problems)
