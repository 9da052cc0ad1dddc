"""The step contract: the step base classes, the run context and the registry of step types.

Playbook files are data, steps are code. A new step derives from one of three base classes:

- `Step`: a step that only looks (a health check, a lookup, a listing). It may run at any time,
  also while planning when it `resolves` a value later steps use.
- `ChangeStep`: a step that changes the world. The runner journals it before and after, a
  playbook with a `dangerous` one needs a second confirmation, and after a crash half-way it is
  resumed only if it can tell: it implements `already_done()` (real state shows the effect) or
  declares itself `repeatable` (running it again is harmless); otherwise a person must look.
- `AwsStep` (in playbooks.aws): a step on one AWS service through the shared clients.

A step that runs commands on a host adds the `HostCommands` fields and helpers
(playbooks.steps.executor) to one of these. Each step declares what it needs: `needs_env`
names the environment variables its child processes need from the bot's own environment.

While planning, a step that finds the target already as requested raises `NothingToDo`, and
one asked for what the target does not allow raises `RequestRefused`: the request is answered
before anything is announced. A resolving step may add `world(subject, on)` to its output, so
a plan made again before the run can say what moved since the approval.

Every subclass whose `type` is a Literal is registered under that name when its class is
created; importing the playbooks.steps package imports every step module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class StepFailed(Exception):
    """A step could not do its job; the message is shown to people as it is."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


class RequestRefused(StepFailed):
    """The request asks for something the target does not allow (an image from elsewhere, a
    symbolic ref a step cannot resolve): said to the requester before anything is announced."""


class NothingToDo(Exception):
    """The target already is in the state the request asks for.

    Raised while planning (by a resolving step's run or a change step's plan) when the step
    is what the whole rollback hinges on: the request is answered "already there" instead of
    being planned, and a run finds it out before changing anything."""


def world(subject: str, on: str) -> dict[str, Any]:
    """What a resolving step saw, for saying what changed between plan and run, e.g.
    world("svc-api", "api:42") -> "svc-api is now on api:43, was api:42 when ..."."""
    return {"world": {"subject": subject, "on": on}}


@dataclass
class StepContext:
    """What a step sees: the target's parameters, the requested ref and earlier outputs."""

    target: str
    params: dict[str, Any]
    ref: str = "previous"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # step id -> what that resolving step found when the plan was approved; empty while the
    # plan is first made. Lets a step see that the world already is where the plan led.
    approved: dict[str, dict[str, Any]] = field(default_factory=dict)
    aws: Any = None  # the run's playbooks.aws.AwsClients; None: the process-wide one
    settings: Any = None
    # Wait tuning: steps that poll use these unless the step sets its own.
    poll_delay: float = 6.0
    poll_timeout: float = 600.0

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


class Step(BaseModel):
    """A read-only playbook step. Subclasses set `type` as a Literal and implement plan/run."""

    model_config = ConfigDict(extra="forbid")

    type: str
    id: str = ""
    name: str = ""
    # field -> "step_id.output_key": filled in from earlier outputs just before plan/run
    use: dict[str, str] = {}

    # Set by the base class chosen, never by a step: True for ChangeStep and its subclasses.
    mutating: ClassVar[bool] = False
    # Derived for ChangeStep subclasses: a crashed run can be checked or repeated safely.
    can_check_done: ClassVar[bool] = False
    # Only a ChangeStep may be dangerous (data written since some point in time is lost).
    dangerous: ClassVar[bool] = False
    # A quick read-only lookup (e.g. which revision is "previous"): planning runs it for real
    # so the plan can show the exact calls of the steps that use its output.
    resolves: ClassVar[bool] = False
    # Environment variables the step's child processes need from the bot's environment.
    needs_env: ClassVar[frozenset[str]] = frozenset()
    summary: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__module__ != __name__:
            _check_declarations(cls)
            _register(cls)

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

    async def describe_change(self, ctx: StepContext) -> str | None:
        """The change in words, before -> after, from real state read now (e.g. "worker: 3 -> 0").

        Called while planning, after earlier lookups resolved; read-only. None: nothing to say
        (a step that only looks, or one whose inputs are not known before the run)."""
        return None


class ChangeStep(Step):
    """A step that changes the world: journaled, may be `dangerous`, and says how to resume.

    Implement `already_done()` to look at real state after a crash, or set `repeatable` when
    running the step again is harmless (compose converges, a reload reloads, a restore in one
    transaction restores the same archive). With neither, an interrupted run waits for a person.
    """

    mutating: ClassVar[bool] = True
    repeatable: ClassVar[bool] = False


STEP_TYPES: dict[str, type[Step]] = {}


def _check_declarations(cls: type[Step]) -> None:
    """What the base class decides stays decided by it."""
    for name in ("mutating", "can_check_done"):
        if name in vars(cls):
            raise TypeError(f"{cls.__name__} sets {name}: derive from Step or ChangeStep instead")
    if not issubclass(cls, ChangeStep):
        if cls.dangerous:
            raise TypeError(f"{cls.__name__} is dangerous but does not derive from ChangeStep")
        return
    checks = cls.already_done is not Step.already_done
    cls.can_check_done = checks or cls.repeatable


def _register(cls: type[Step]) -> None:
    """A class with a Literal default for `type` is a step type; others are shared bases."""
    name = cls.model_fields["type"].default
    if not isinstance(name, str) or not name:
        return
    known = STEP_TYPES.get(name)
    # the same class again (a module reloaded) replaces itself; another class is a mistake
    if known is not None and _where(known) != _where(cls):
        raise TypeError(f"step type {name!r} is taken by {known.__name__}")
    STEP_TYPES[name] = cls


def _where(cls: type) -> tuple[str, str]:
    return cls.__module__, cls.__qualname__
