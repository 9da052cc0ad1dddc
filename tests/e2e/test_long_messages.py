"""Messages longer than Slack takes: a 41-step plan, a failure printing 5 kB and a diagnosis
with 60 error lines all pass the strict fake Slack, say what they leave out, and the full text
is in a file in the thread. Code fences are closed in every section."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.helpers import LEAD, REQUESTER, ApiTestBed, approval_value, click, has_ended
from tests.testbed.aws import put_log_lines
from tests.testbed.block_kit import utf16_len
from tests.testbed.slack_api import FakeSlackApi, Upload

CHECKS = 40
OUTPUT_LINES = 120  # about 5 kB of output from the failing step
MORE = re.compile(r"… and (\d+) more [a-z ]*— full text in the thread")


def long_playbook(tmp_path: Path) -> Path:
    steps: list[dict[str, Any]] = [
        {
            "id": f"check-{i:02d}",
            "type": "shell.inspect",
            "name": f"Check number {i} of the pre-flight list for the batch workers",
            "argv": ["python3", "-c", f"print('check {i} ok')"],
        }
        for i in range(1, CHECKS + 1)
    ]
    script = (
        "import sys\n"
        f"for i in range({OUTPUT_LINES}): print(f'line {{i:03d}}: worker pool refused the job "
        "(queue depth over the limit)')\n"
        "print('```not a fence of ours')\n"
        "sys.exit(3)"
    )
    steps.append(
        {
            "id": "switch",
            "type": "shell.run",
            "name": "Switch the batch workers back",
            "argv": ["python3", "-c", script],
        }
    )
    path = tmp_path / "long.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "long-checks",
                "description": "forty checks, then a change that fails loudly",
                "params": {"app_dir": {"type": "str", "required": True}},
                "steps": steps,
            }
        )
    )
    return path


def uploaded(fake: FakeSlackApi, prefix: str, timeout: float = 20) -> Upload:
    deadline = time.monotonic() + timeout
    while not (found := [u for u in fake.uploaded_files if u.filename.startswith(prefix)]):
        assert time.monotonic() < deadline, [u.filename for u in fake.uploaded_files]
        time.sleep(0.05)
    (upload,) = found
    return upload


def sections_of(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    for text in sections_of(blocks):
        assert utf16_len(text) <= 3000
        assert text.count("```") % 2 == 0, text


def test_long_plan_and_long_failure(
    api_bed: ApiTestBed, fake_slack: FakeSlackApi, tmp_path: Path
) -> None:
    playbook = long_playbook(tmp_path)
    extra = f"""\
  batch:
    playbook: {playbook}
    app_dir: {tmp_path}
"""
    bot = api_bed.start_bot(extra=extra)
    bot.sender.command("/rollback", "batch because the queue is stuck", user_id=REQUESTER)
    value = approval_value(fake_slack)

    # the approval request holds part of the plan, says how much, and the plan file holds all
    approval = fake_slack.wait_for("chat.postMessage", lambda c: "Approval" in c.args["text"])[0]
    assert_within_limits(approval.args["blocks"])
    plan_text = sections_of(approval.args["blocks"])[1]
    shown = int(re.search(r"the first (\d+) of 41 steps", plan_text).group(1))  # type: ignore[union-attr]
    left_out = int(MORE.search(plan_text).group(1))  # type: ignore[union-attr]
    assert shown + left_out == 41 and left_out > 0
    (plan_file,) = [u for u in fake_slack.uploaded_files if u.filename.startswith("plan-")]
    assert plan_file.thread_ts == approval.args["thread_ts"]
    assert all(f"Check number {i} of" in plan_file.text for i in range(1, CHECKS + 1))
    assert "Switch the batch workers back" in plan_file.text

    assert click(bot, "rollback_approve", value, LEAD)[0] == 200
    ended = fake_slack.wait_for("chat.postMessage", has_ended, timeout=60)[0]
    assert "ROLLBACK FAILED" in ended.args["text"]
    assert_within_limits(ended.args["blocks"])
    shown_text = json.dumps(ended.args["blocks"], ensure_ascii=False)
    assert f"line {OUTPUT_LINES - 1:03d}" in shown_text  # the end of the output is shown
    assert "line 050" not in shown_text  # from the middle: neither the error nor the tail
    # a fence printed by the command neither opens nor closes a code block of the message
    assert "```not a fence" not in shown_text and "'''not a fence of ours" in shown_text
    assert re.search(r"the last 1,200 of [\d,]+ characters — full text in the thread", shown_text)
    assert "(no verification ran)" in shown_text  # the checklist is still there
    output_file = uploaded(fake_slack, "failed-output-")
    assert output_file.thread_ts == approval.args["thread_ts"]
    # the whole output, every line of it: the journal keeps up to 16 kB of a command's output
    assert all(f"line {i:03d}: worker pool" in output_file.text for i in range(OUTPUT_LINES))
    assert len(output_file.text) > 5000 and "left out" not in output_file.text

    # the progress message keeps the failed step, however many steps there are
    progress = next(c for c in fake_slack.calls_to("chat.postMessage") if "Progress" in c.text)
    final = fake_slack.message_of(progress)
    progress_text = json.dumps(final["blocks"], ensure_ascii=False)
    assert "Switch the batch workers back — failed" in progress_text
    assert re.search(r"… and \d+ more steps — every step is in the incident report", progress_text)
    assert_within_limits(final["blocks"])
    assert fake_slack.errors == []


def test_diagnosis_with_60_error_lines(api_bed: ApiTestBed, fake_slack: FakeSlackApi) -> None:
    put_log_lines(
        api_bed.aws,
        "/ecs/sandbox-broker",
        [f"ERROR 500 upstream timeout on request {i:02d}" for i in range(60)],
    )
    bot = api_bed.start_bot()
    bot.sender.command("/diagnose", "api", user_id=REQUESTER)
    verdict = fake_slack.wait_for(
        "chat.postMessage", lambda c: "Diagnosis of api" in c.args["text"], timeout=30
    )[0]
    assert_within_limits(verdict.args["blocks"])
    errors = next(t for t in sections_of(verdict.args["blocks"]) if "Latest errors" in t)
    shown = errors.count("ERROR 500 upstream")
    assert "request 59" in errors  # newest first
    match = re.search(r"… and (\d+) more lines — (.+)$", errors)
    assert match and int(match.group(1)) == 60 - shown, errors
    capture = fake_slack.wait_for("files.completeUploadExternal")[0]
    assert capture.args.get("thread_ts") == verdict.response["ts"]
    (capture_file,) = [u for u in fake_slack.uploaded_files if u.filename.startswith("diagnosis-")]
    assert sum(f"request {i:02d}" in capture_file.text for i in range(60)) == 50
    assert "the latest 50 in the capture file" in match.group(2)
    assert fake_slack.errors == []
