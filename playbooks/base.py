"""Step base class, run context and registry: playbook files are data, steps are code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class StepFailed(Exception):
    """A step could not do its job; the message is shown to people as it is."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


@dataclass
class StepContext:
    """What a step sees: the target's parameters, the requested ref and earlier outputs."""

    target: str
    params: dict[str, Any]
    ref: str = "previous"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    aws: Any = None  # the run's playbooks.aws.AwsClients; None: the process-wide one
    settings: Any = None
    # Wait tuning: steps that poll use these unless the step sets its own.
    poll_delay: float = 6.0
    poll_timeout: float = 600.0

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


class Step(BaseModel):
    """One typed playbook step. Subclasses set `type` as a Literal and implement plan/run."""

    model_config = ConfigDict(extra="forbid")

    type: str
    id: str = ""
    name: str = ""
    # field -> "step_id.output_key": filled in from earlier outputs just before plan/run
    use: dict[str, str] = {}

    mutating: ClassVar[bool] = False
    dangerous: ClassVar[bool] = False
    # A quick read-only lookup (e.g. which revision is "previous"): planning runs it for real
    # so the plan can show the exact calls of the steps that use its output.
    resolves: ClassVar[bool] = False
    # True when already_done() really inspects the world, so a crashed step can be re-checked.
    can_check_done: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def title(self) -> str:
        return self.name or self.summary or self.type

    async def plan(self, ctx: StepContext) -> list[str]:
        """The exact calls or commands run() would make, one line each."""
        return [self.type]

    async def run(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError

    async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
        """For resuming after a crash: the output if real state shows this step took effect."""
        return None


STEP_TYPES: dict[str, type[Step]] = {}


def register_step(cls: type[Step]) -> type[Step]:
    name = cls.model_fields["type"].default
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a Literal default for `type`")
    STEP_TYPES[name] = cls
    return cls
