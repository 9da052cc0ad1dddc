"""The diagnosis message: valid Block Kit, escaped text, the Roll back button, limits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot.diagnose.matrix import Thresholds, evaluate, figures
from bot.diagnose.messaging import headline, markdown, verdict_blocks
from bot.diagnose.models import Capture, SourceResult
from tests.testbed.slack_api import check_block_kit


def make_capture(sources: dict[str, SourceResult], **thresholds: Any) -> Capture:
    th = Thresholds(**thresholds)
    fig = figures(sources, th)
    return Capture(
        id="dg-0123456789",
        target="api",
        started_at=datetime.now(UTC),
        seconds=1.234,
        timeout=8,
        window_minutes=10,
        sources=sources,
        figures=fig,
        verdict=evaluate(fig, th),
    )


def busy_capture() -> Capture:
    return make_capture(
        {
            "ecs_service": SourceResult(
                status="ok",
                data={"running": 1, "desired": 2, "task_definition": "api:7", "deployments": []},
            ),
            "task_definitions": SourceResult(
                status="ok",
                data={"history": [{"current": True, "containers": [{"image": "r/api:v7"}]}]},
            ),
            "metrics": SourceResult(
                status="ok",
                data={
                    "load_balancer": "a",
                    "requests": 100.0,
                    "errors_5xx": 40.0,
                    "memory": {"sustained": 97.0},
                },
            ),
            "logs /ecs/api": SourceResult(
                status="ok",
                data={"count": 3, "latest": [{"at": "2026-01-01T00:00:00", "message": "ERROR x"}]},
            ),
            "health https://api/healthz": SourceResult(
                status="timeout", error="timed out after 8s"
            ),
            "stopped_tasks": SourceResult(status="error", error="AccessDeniedException: no"),
        }
    )


def validate(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
    assert check_block_kit({"blocks": blocks}) == ""


def test_blocks_pass_slack_sdk_validation_and_carry_the_verdict() -> None:
    capture = busy_capture()
    blocks = verdict_blocks(capture)
    validate(blocks)
    text = json.dumps(blocks)
    assert blocks[0]["text"]["text"].startswith(":red_circle: *Diagnosis of `api`: CRITICAL*")
    assert "Emergency rollback" in text and "40.0% (40 of 100)" in text
    assert "*Task definition*\\napi:7 (api:v7)" in text
    assert "*Triggers fired*" in text and "Immediate rollback" in text
    assert "*Not collected*" in text and "timed out after 8s" in text
    assert "AccessDeniedException" in text
    assert "*Not evaluated*" in text
    assert "ERROR x" in text  # the latest error line


def test_the_roll_back_button() -> None:
    capture = busy_capture()
    actions = verdict_blocks(capture)[-1]
    assert actions["type"] == "actions"
    button = actions["elements"][0]
    assert button["action_id"] == "diagnose_rollback"
    assert button["text"]["text"] == "Roll back" and button["style"] == "danger"
    value = json.loads(button["value"])
    assert value["target"] == "api" and value["diagnosis"] == "dg-0123456789"
    assert value["reason"].startswith("/diagnose dg-0123456789: critical (")
    other = json.loads(verdict_blocks(capture, "dg-from-rollback")[-1]["elements"][0]["value"])
    assert other["diagnosis"] == "dg-from-rollback"


def test_aws_text_is_escaped() -> None:
    hostile = "<!channel> see <https://evil.example|here> & <@U123>"
    capture = make_capture(
        {
            "logs /ecs/<!here>": SourceResult(status="error", error=hostile),
            "logs /ecs/api": SourceResult(
                status="ok", data={"count": 1, "latest": [{"at": "t", "message": hostile + "```"}]}
            ),
        }
    )
    blocks = verdict_blocks(capture)
    validate(blocks)
    text = json.dumps(blocks)
    for raw in ("<!channel>", "<!here>", "<https://evil", "<@U123>"):
        assert raw not in text
    assert "&lt;!channel&gt;" in text


def test_long_lists_stay_within_slack_limits() -> None:
    sources = {
        f"logs /ecs/group-{i}": SourceResult(status="error", error="x" * 900) for i in range(60)
    }
    blocks = verdict_blocks(make_capture(sources))
    validate(blocks)
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert re.search(
        r"… and \d+ more — full text in the thread", json.dumps(blocks, ensure_ascii=False)
    )


def test_quiet_capture_and_fallback_text() -> None:
    capture = make_capture({"logs /ecs/api": SourceResult(status="ok", data={"count": 0})})
    blocks = verdict_blocks(capture)
    validate(blocks)
    assert capture.verdict.severity == "ok"
    assert blocks[0]["text"]["text"].startswith(":large_green_circle:")
    assert "style" not in blocks[-1]["elements"][0]
    assert headline(capture) == "Diagnosis of api: OK - No rollback (keep monitoring)"


def test_markdown_and_json_versions() -> None:
    capture = busy_capture()
    md = markdown(capture)
    assert md.startswith("# Diagnosis of api (dg-0123456789)")
    assert "**Verdict: CRITICAL**" in md and "| Error rate | critical |" in md
    assert "## health https://api/healthz — timeout" in md
    data = json.loads(capture.to_json())
    assert data["verdict"]["severity"] == "critical" and data["id"] == "dg-0123456789"
