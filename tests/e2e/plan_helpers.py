"""What the approval-binding tests share: the approval messages posted so far, the Approve
value of one of them, and the text of the first post that says something."""

from __future__ import annotations

from tests.e2e.helpers import MESSAGE_OF
from tests.testbed.slack_api import Call, FakeSlackApi


def approval_messages(fake: FakeSlackApi, count: int) -> list[Call]:
    return fake.wait_for(
        "chat.postMessage", lambda c: "Approval needed" in c.args["text"], count=count
    )


def approve_value(call: Call) -> str:
    actions = next(b for b in call.args["blocks"] if b["type"] == "actions")
    value = str(actions["elements"][0]["value"])
    MESSAGE_OF[value] = call.response["ts"]
    return value


def text_of(fake: FakeSlackApi, needle: str, timeout: float = 30) -> str:
    found = fake.wait_for("chat.postMessage", lambda c: needle in c.args["text"], timeout=timeout)
    return str(found[0].args["text"])
