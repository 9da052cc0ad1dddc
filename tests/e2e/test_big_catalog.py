"""A catalog of 500 targets: the form's target picker becomes a type-ahead that searches names
and descriptions, and every way into the form finds its target pre-filled, the 437th too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.aws import Aws
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import (
    block_action,
    block_suggestion,
    slash_command,
    view_submission,
)

REQUESTER = "U0REQUESTER"
SEARCH = "rollback_target_search"


def big_catalog(tmp_path: Path, count: int = 500) -> Path:
    targets: dict[str, Any] = {}
    for i in range(count):
        description = f"payments ledger shard {i}"
        if i == 437:
            description += " serving the reykjavik region"
        targets[f"ledger-{i:03d}"] = {
            "playbook": "ecs-revision",
            "description": description,
            "cluster": f"ledger-{i:03d}",
            "service": f"ledger-{i:03d}",
            "region": "eu-central-1",
        }
    path = tmp_path / "rollbot.yml"
    path.write_text(
        yaml.safe_dump({"approvers": ["U0LEAD"], "channel": "C0INC", "targets": targets})
    )
    return path


def target_element(view: dict[str, Any]) -> dict[str, Any]:
    (block,) = [b for b in view["blocks"] if b.get("block_id") == "target"]
    return block["element"]


def test_500_targets_type_ahead_and_prefill(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Any, tmp_path: Path
) -> None:
    bot = rollbot_server(config=big_catalog(tmp_path), env=aws.env)

    # /rollback alone opens the form: a type-ahead, since a static select holds 100
    assert bot.sender.post(*slash_command("/rollback", "", user_id=REQUESTER)).status == 200
    opened = fake_slack.wait_for("views.open")[0].args["view"]
    picker = target_element(opened)
    assert picker["type"] == "external_select" and picker["action_id"] == SEARCH
    assert "options" not in picker and "initial_option" not in picker

    # a word of the description only (the name holds no "reykjavik")
    reply = bot.sender.post(*block_suggestion(SEARCH, "Reykjavik", REQUESTER, view=opened))
    assert reply.status == 200 and reply.elapsed < 3
    assert [o["value"] for o in reply.json["options"]] == ["ledger-437"]
    # two words, both needed; and a word every target has: one answer's worth
    reply = bot.sender.post(*block_suggestion(SEARCH, "ledger shard 437", REQUESTER))
    assert [o["value"] for o in reply.json["options"]] == ["ledger-437"]
    reply = bot.sender.post(*block_suggestion(SEARCH, "payments", REQUESTER))
    assert len(reply.json["options"]) == 100
    reply = bot.sender.post(*block_suggestion(SEARCH, "ledger-43", REQUESTER))
    values = [o["value"] for o in reply.json["options"]]
    assert values == [f"ledger-{i}" for i in range(430, 440)]

    # /diagnose of the 437th target, then its Roll back button: the form, pre-filled
    bot.sender.post(*slash_command("/diagnose", "ledger-437", user_id=REQUESTER))
    verdict = fake_slack.wait_for(
        "chat.postMessage", lambda c: "ledger-437" in c.args["text"], timeout=30
    )[0]
    actions = next(b for b in verdict.args["blocks"] if b["type"] == "actions")
    button = actions["elements"][0]
    assert button["text"]["text"] == "Roll back"
    click = block_action(
        button["action_id"],
        button["value"],
        REQUESTER,
        channel_id=verdict.args["channel"],
        message_ts=verdict.response["ts"],
    )
    assert bot.sender.post(*click).status == 200
    prefilled = fake_slack.wait_for("views.open", count=2)[1].args["view"]
    picker = target_element(prefilled)
    assert picker["initial_option"]["value"] == "ledger-437"
    assert json.loads(prefilled["private_metadata"])["diagnosis"]

    # the choice comes back as an external select's state: accepted
    state = {
        "target": {
            SEARCH: {"type": "external_select", "selected_option": picker["initial_option"]}
        },
        "ref": {"value": {"type": "plain_text_input", "value": "previous"}},
        "reason": {"value": {"type": "plain_text_input", "value": "5xx after deploy"}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "high"}}},
    }
    body, headers = view_submission_of(prefilled, state)
    reply = bot.sender.post(body, headers)
    assert reply.status == 200 and not reply.text  # no inline errors
    assert fake_slack.errors == []


def view_submission_of(view: dict[str, Any], state: dict[str, Any]) -> tuple[bytes, dict]:
    return view_submission(
        view["callback_id"], state, REQUESTER, private_metadata=view["private_metadata"]
    )
