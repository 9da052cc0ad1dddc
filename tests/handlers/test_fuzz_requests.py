"""Hostile input through the real Bolt app: every command, button and form path answers
with a clear message or handles it; nothing crashes and no user text becomes markup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_bolt.request.async_request import AsyncBoltRequest

import handlers
from bot.services import build_services
from bot.settings import Settings
from bot.slack.app import build_app
from tests import fuzz_counter
from tests.bot.test_fuzz_parsing import ADVERSARIAL
from tests.testbed.slack_api import TOKEN, FakeSlackApi
from tests.testbed.slack_requests import (
    SIGNING_SECRET,
    block_action,
    slash_command,
    view_submission,
)

TEXT = st.one_of(st.text(max_size=120), st.lists(ADVERSARIAL, max_size=4).map(" ".join))
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# the bot mentions approvers itself, so user mentions are not listed here
LIVE_MARKUP = ("<!channel>", "<!here", "<https://evil")


class Harness:
    def __init__(self, fake: FakeSlackApi, tmp: Path) -> None:
        (tmp / "rollbot.yml").write_text(
            "approvers: [U0LEAD]\nchannel: C0INC\ntargets:\n  api:\n    playbook: ecs-scale\n"
            "    cluster: fuzz\n    service: fuzz\n    region: eu-central-1\n"
            "    poll_timeout: 1\n"
        )
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        cfg = Settings(
            slack_bot_token=TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=fake.url,
            rollbot_config=tmp / "rollbot.yml",
            rollbot_db=tmp / "rollbot.db",
        )
        self.services = self.loop.run_until_complete(build_services(cfg))
        self.app = build_app(self.services, process_before_response=True)
        handlers.register(self.app)

    def send(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        fuzz_counter.tried += 1
        request = AsyncBoltRequest(body=body.decode(), headers=headers)
        response = self.loop.run_until_complete(self.app.async_dispatch(request))
        return response.status, response.body

    def check(self, status: int, body: str) -> None:
        assert status == 200, body
        assert self.fake.errors == [], self.fake.errors
        shown = body + json.dumps(self.fake.responses) + "".join(self.fake.texts())
        for token in LIVE_MARKUP:
            assert token not in shown
        assert "Traceback" not in shown and "internal error" not in shown

    def close(self) -> None:
        self.loop.run_until_complete(self.services.close())
        self.loop.close()


@pytest.fixture
def harness(fake_slack: FakeSlackApi, tmp_path: Path, aws: Any) -> Iterator[Harness]:
    h = Harness(fake_slack, tmp_path)
    yield h
    h.close()


def test_fuzz_slash_commands(harness: Harness) -> None:
    @FUZZ
    @given(st.sampled_from(["/rollback", "/diagnose"]), TEXT)
    def run(command: str, text: str) -> None:
        harness.check(
            *harness.send(*slash_command(command, text, response_url=harness.fake.response_url()))
        )

    run()


def test_fuzz_rollback_reasons_with_markup_and_templates(harness: Harness) -> None:
    @settings(FUZZ, max_examples=15)
    @given(TEXT)
    def run(reason: str) -> None:
        text = f"api because {reason}" if reason.strip() else "api"
        harness.check(
            *harness.send(
                *slash_command(
                    "/rollback", text, user_id="U0REQ", response_url=harness.fake.response_url()
                )
            )
        )
        harness.loop.run_until_complete(
            harness.services.store._db.execute(  # type: ignore[attr-defined]
                "DELETE FROM locks"
            )
        )

    run()


def test_fuzz_button_values(harness: Harness) -> None:
    actions = ["rollback_approve", "rollback_reject", "rollback_further", "diagnose_rollback"]

    @FUZZ
    @given(
        st.sampled_from(actions),
        st.one_of(
            TEXT,
            st.dictionaries(st.sampled_from(["id", "target", "diagnosis", "reason"]), TEXT).map(
                json.dumps
            ),
        ),
    )
    def run(action: str, value: str) -> None:
        harness.check(
            *harness.send(
                *block_action(
                    action, value, user_id="U0LEAD", response_url=harness.fake.response_url()
                )
            )
        )

    run()


def test_fuzz_form_submissions(harness: Harness) -> None:
    @FUZZ
    @given(TEXT, TEXT, TEXT, TEXT, TEXT)
    def run(target: str, ref: str, reason: str, severity: str, meta: str) -> None:
        values = {
            "target": {"value": {"type": "static_select", "selected_option": {"value": target}}},
            "ref": {"value": {"type": "plain_text_input", "value": ref}},
            "reason": {"value": {"type": "plain_text_input", "value": reason}},
            "severity": {
                "value": {"type": "static_select", "selected_option": {"value": severity}}
            },
        }
        status, body = harness.send(
            *view_submission("rollback_modal", values, user_id="U0REQ", private_metadata=meta)
        )
        harness.check(status, body)
        assert json.loads(body or "{}").get("response_action") in ("errors", None)

    run()
