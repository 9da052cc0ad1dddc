"""One boto3 call from a step, with the AWS error turned into a sentence for the on-call
engineer (ALB and RDS steps; ECS has its own wording in ecs.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from playbooks.base import Step, StepContext, StepFailed, in_thread
from playbooks.steps.ecs import BAD_CREDENTIALS, DENIED, THROTTLED


def aws_failure(exc: Exception, action: str, region: str, hints: dict[str, str]) -> StepFailed:
    """`hints` maps error codes to what they mean for this step (e.g. a missing listener)."""
    if isinstance(exc, NoCredentialsError):
        return StepFailed(f"{action}: no AWS credentials found (AWS_* variables or an IAM role)")
    if isinstance(exc, NoRegionError):
        return StepFailed(f"{action}: no AWS region: set `region` on the target")
    if isinstance(exc, EndpointConnectionError):
        return StepFailed(f"{action}: cannot reach AWS in {region}: {exc}")
    if not isinstance(exc, ClientError):
        return StepFailed(f"{action} failed: {exc}")
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "").rstrip(".")
    service = action.split(".", 1)[0]
    if code in hints:
        text = f"{hints[code]} ({code})"
    elif code in DENIED:
        grant = f"{service}:{exc.operation_name}"
        text = f"the bot's AWS identity may not call {action}: {message} (grant {grant})"
    elif code in THROTTLED:
        text = f"AWS kept throttling {action}; try again in a minute"
    elif code in BAD_CREDENTIALS:
        text = f"AWS rejected the bot's credentials on {action}: {message}"
    else:
        text = f"{action} failed: {code}: {message}"
    return StepFailed(text, {"aws_error": code})


class AwsStep(Step):
    """A step on one AWS service; `service` names the boto3 client."""

    region: str | None = None  # default: the target's region

    service_name: ClassVar[str] = ""

    def client(self, ctx: StepContext) -> Any:
        return ctx.aws.client(self.service_name, self.region or ctx.param("region"))

    def region_name(self, ctx: StepContext) -> str:
        return self.region or ctx.param("region") or ctx.aws.region or "the default region"

    def hints(self, ctx: StepContext) -> dict[str, str]:
        return {}

    async def call(self, ctx: StepContext, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await in_thread(getattr(self.client(ctx), method), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            action = f"{self.service_name}.{method}"
            raise aws_failure(exc, action, self.region_name(ctx), self.hints(ctx)) from None
