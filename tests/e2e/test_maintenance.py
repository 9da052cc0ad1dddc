"""`/rollback maintenance TARGET on|off` through Slack: approval, then the ALB listener on moto
answers a fixed 503 and goes back to its saved forward action."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.helpers import LEAD, REQUESTER, approval_value, click, is_completion
from tests.testbed.alb import actions, make_listener
from tests.testbed.aws import Aws
from tests.testbed.slack_api import FakeSlackApi
from tests.testbed.slack_requests import slash_command


def catalog(tmp_path: Path, listener: str, region: str) -> Path:
    path = tmp_path / "rollbot.yml"
    path.write_text(f"""\
approvers: [{LEAD}]
channel: C0INCIDENTS
targets:
  replaydash:
    playbook: ecs-revision
    cluster: replaydash-production-cluster
    service: replaydash-production-api
    region: {region}
    maintenance: {{on: replaydash-maintenance-on, off: replaydash-maintenance-off}}
  replaydash-maintenance-on:
    playbook: alb-maintenance-on
    listener_arn: {listener}
    region: {region}
  replaydash-maintenance-off:
    playbook: alb-maintenance-off
    listener_arn: {listener}
    region: {region}
""")
    return path


def test_maintenance_on_then_off_through_slack(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Callable[..., Any], tmp_path: Path
) -> None:
    arns = make_listener(aws)
    bot = rollbot_server(config=catalog(tmp_path, arns["listener"], aws.region), env=aws.env)

    status, body = bot.sender.post(
        *slash_command(
            "/rollback", "maintenance replaydash on because db restore", user_id=REQUESTER
        )
    )
    assert status == 200 and "Maintenance mode on" in body["text"]
    value = approval_value(fake_slack)
    assert actions(aws, arns["listener"])[0]["Type"] == "forward"  # nothing before approval
    click(bot, "rollback_approve", value, LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, timeout=30)
    assert actions(aws, arns["listener"])[0]["FixedResponseConfig"]["StatusCode"] == "503"

    bot.sender.post(*slash_command("/rollback", "maintenance replaydash off", user_id=REQUESTER))
    click(bot, "rollback_approve", approval_value(fake_slack, nth=1), LEAD)
    fake_slack.wait_for("chat.postMessage", is_completion, count=2, timeout=30)
    assert actions(aws, arns["listener"]) == [{"Type": "forward", "TargetGroupArn": arns["api"]}]
    announcements = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert any("db restore" in t for t in announcements)
    assert any("maintenance mode off for replaydash" in t for t in announcements)


def test_maintenance_of_a_target_without_one_says_which_have_it(
    aws: Aws, fake_slack: FakeSlackApi, rollbot_server: Callable[..., Any], tmp_path: Path
) -> None:
    bot = rollbot_server(config=catalog(tmp_path, "arn:aws:elasticloadbalancing:l", aws.region))
    _, body = bot.sender.post(
        *slash_command("/rollback", "maintenance replaydash-maintenance-on on", user_id=REQUESTER)
    )
    assert "has no maintenance mode" in body["text"] and "`replaydash`" in body["text"]
    _, body = bot.sender.post(
        *slash_command("/rollback", "maintenance nosuch off", user_id=REQUESTER)
    )
    assert "don't know the target" in body["text"]
    assert fake_slack.calls_to("chat.postMessage") == []
