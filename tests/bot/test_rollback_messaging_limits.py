"""Rollback messages that grow stay within Slack's limits (UTF-16), keep what matters, close
their code fences and say what they leave out; each is checked by the strict Block Kit check."""

from __future__ import annotations

import re

from bot.rollback import messaging as msg
from bot.rollback.models import RollbackData, State, StepRecord
from bot.store.base import Record
from tests.testbed.block_kit import check_block_kit, utf16_len

ROCKET = "\N{ROCKET}"


def data_with_plan(steps: int) -> RollbackData:
    plan = [
        {
            "step_id": f"s{i}",
            "title": f"{ROCKET} Step {i} of the long playbook",
            "mutating": i % 2 == 0,
            "calls": [f"ecs.describe_services(cluster='c{i}', services=['svc-{i}'])"] * 2,
        }
        for i in range(steps)
    ]
    return RollbackData(target="api", playbook="p", requester="U0REQ", plan=plan)


def test_a_plan_that_fits_is_shown_whole() -> None:
    block, complete = msg.plan_section(data_with_plan(3))
    assert complete and "every call that will be made:*" in block["text"]["text"]
    assert "… and" not in block["text"]["text"]


def test_a_long_plan_says_how_much_it_shows_and_names_the_rest() -> None:
    data = data_with_plan(40)
    blocks = msg.approval_blocks("rb-1", data, ["U0LEAD"])
    assert check_block_kit({"blocks": blocks}) == ""
    # the plan's section follows the summary section and its divider
    plan = next(b["text"]["text"] for b in blocks if "*Plan" in b.get("text", {}).get("text", ""))
    shown = int(re.search(r"the first (\d+) of 40 steps", plan).group(1))  # type: ignore[union-attr]
    left = int(re.search(r"… and (\d+) more steps — full text in the thread", plan).group(1))  # type: ignore[union-attr]
    assert shown + left == 40 and plan.count("Step ") == shown
    assert utf16_len(plan) <= 3000 and not msg.plan_section(data)[1]
    document = msg.plan_document("rb-1", data)
    assert all(f"Step {i} of" in document for i in range(40))


def test_progress_keeps_the_failed_and_running_steps() -> None:
    data = data_with_plan(80)
    data.steps = [
        StepRecord(index=i, step_id=f"s{i}", title=f"s{i}", outcome="ok", seconds=1.0)
        for i in range(70)
    ] + [
        StepRecord(index=70, step_id="s70", title="s70", outcome="failed", error="```" + "E" * 400)
    ]
    blocks = msg.progress_blocks("rb-1", data, [f"s{i}" for i in range(80)], running="")
    assert check_block_kit({"blocks": blocks}) == ""
    text = blocks[0]["text"]["text"]
    assert "Step 70 of the long playbook — failed" in text
    assert re.search(r"… and \d+ more steps", text) and text.count("```") % 2 == 0


def test_a_long_completion_keeps_its_checklist_and_closes_its_fences() -> None:
    data = data_with_plan(2)
    record = Record(id="rb-1", kind="rollback", state="failed", data={}, created_at=0, updated_at=0)
    output = {"stderr": "\n".join(f"line {i:03d} " + "x" * 40 for i in range(120)) + "\n```"}
    text = msg.completion(
        None,
        record,
        data,
        outcome=State.FAILED,
        error="the step failed: " + "why " * 600,
        checklist=[{"name": f"check {i}", "ok": False, "detail": "d" * 80} for i in range(30)],
        changes=[],
        failed_step="2 of 2, deploy",
        failed_output=msg.output_tail(output),
        failed_output_note=msg.output_note(output),
    )
    fallback, blocks, complete = msg.completion_message(text)
    assert check_block_kit({"blocks": blocks}) == ""
    assert all(b["text"]["text"].count("```") % 2 == 0 for b in blocks)
    shown = "\n".join(b["text"]["text"] for b in blocks)
    assert complete and "check 29" in shown  # nothing hidden: the checklist survives
    assert "line 119" in shown and "line 000" not in shown
    assert re.search(r"the last 1,200 of [\d,]+ characters — full text in the thread", shown)
    assert utf16_len(fallback) <= 40_000 and fallback.count("```") % 2 == 0


def test_status_list_counts_what_it_cannot_show() -> None:
    rows = []
    for i in range(300):
        record = Record(
            id=f"rb-{i:04d}", kind="rollback", state="running", data={}, created_at=0, updated_at=0
        )
        data = RollbackData(
            target=f"svc-{i}", playbook="p", requester="U0REQ", channel="C1", thread_ts="1.2"
        )
        rows.append((record, data))
    text = msg.status_list(rows, 60.0)
    assert utf16_len(text) <= 4000
    left = int(re.search(r"… and (\d+) more — ", text).group(1))  # type: ignore[union-attr]
    assert text.count("• ") + left == 300
