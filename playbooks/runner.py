"""Runs a bound playbook step by step, journaling each step before and after it runs.

The journal is whatever durable store the caller hands in (the bot's store satisfies
`playbooks.journal.Journal`), so a second runner on the same journal resumes a crashed run."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playbooks.aws import AwsClients
from playbooks.base import Step, StepContext, StepFailed
from playbooks.journal import Journal, JournalEntry

log = logging.getLogger(__name__)

# Outputs are kept in the journal and shown in Slack: keep each one readable and bounded.
MAX_OUTPUT_CHARS = 4000
# A change description is one line of the approval request's first section.
MAX_CHANGE_CHARS = 300


@dataclass
class PlannedStep:
    index: int
    step_id: str
    title: str
    mutating: bool
    calls: list[str]
    output: dict[str, Any] | None = None  # set for read-only steps that ran during planning
    change: str | None = None  # the step's change in words, before -> after


@dataclass
class StepResult:
    index: int
    step_id: str
    title: str
    outcome: str  # ok | failed | skipped | interrupted
    seconds: float = 0.0
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class RunResult:
    ok: bool
    steps: list[StepResult]
    error: str = ""
    interrupted: bool = False

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.outcome in ("failed", "interrupted")), None)


Progress = Callable[[StepResult, int], Awaitable[None]]


def step_context(target: Any, ref: str, settings: Any = None) -> StepContext:
    """A fresh context for one plan or run of `target` (a catalog Target)."""
    params = dict(target.params)
    return StepContext(
        target=target.name,
        params=params,
        ref=ref,
        # Steps may `use` the request itself, e.g. {image: request.ref} for an image rollback.
        outputs={"request": {"ref": ref, "target": target.name}},
        aws=AwsClients(region=params.get("region")),
        settings=settings,
        poll_delay=target.settings.poll_delay,
        poll_timeout=target.settings.poll_timeout,
    )


def resolve_uses(step: Step, outputs: dict[str, dict[str, Any]], placeholder: bool) -> Step:
    """Fill fields named in `use` from earlier step outputs (placeholders while planning)."""
    update: dict[str, Any] = {}
    for field_name, ref in step.use.items():
        src, key = ref.split(".", 1)
        if src in outputs and key in outputs[src]:
            update[field_name] = outputs[src][key]
        elif placeholder:
            update[field_name] = f"<{ref}>"
        else:
            raise StepFailed(f"step {step.id!r} needs {ref}, which step {src!r} did not produce")
    return step.model_copy(update=update) if update else step


async def plan(steps: list[Step], ctx: StepContext) -> list[PlannedStep]:
    """Every call the steps would make; lookups run for real so later calls are exact."""
    planned: list[PlannedStep] = []
    for i, step in enumerate(steps):
        known = all(ref.split(".", 1)[0] in ctx.outputs for ref in step.use.values())
        step = resolve_uses(step, ctx.outputs, placeholder=True)
        entry = PlannedStep(i, step.id, step.title(), step.mutating, await step.plan(ctx))
        entry.change = await describe(step, ctx)
        if step.resolves and not step.mutating and known:
            entry.output = await step.run(ctx)
            ctx.outputs[step.id] = entry.output
        planned.append(entry)
    return planned


async def describe(step: Step, ctx: StepContext) -> str | None:
    """A step's before -> after; a lookup that fails only costs the sentence, never the plan."""
    if any(isinstance(v, str) and v.startswith("<") for v in step.model_dump().values()):
        return None  # depends on a value only the run produces
    try:
        change = await step.describe_change(ctx)
    except Exception as exc:  # the calls below still say exactly what will happen
        log.info("no change description for step %s: %s", step.id, exc)
        return None
    return change[:MAX_CHANGE_CHARS] if change else None


def _bounded(output: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in output.items():
        if isinstance(v, str) and len(v) > MAX_OUTPUT_CHARS:
            v = v[: MAX_OUTPUT_CHARS // 2] + "\n...[truncated]...\n" + v[-MAX_OUTPUT_CHARS // 2 :]
        out[k] = v
    return out


class PlaybookRunner:
    """Executes steps for one rollback; a second runner on the same journal resumes safely."""

    def __init__(self, store: Journal, rollback_id: str, progress: Progress | None = None) -> None:
        self.store = store
        self.rollback_id = rollback_id
        self.progress = progress

    async def run(self, steps: list[Step], ctx: StepContext) -> RunResult:
        done = await self._journal_state()
        results: list[StepResult] = []
        for i, step in enumerate(steps):
            result = await self._run_one(i, step, ctx, done.get(i))
            results.append(result)
            if self.progress:
                await self.progress(result, len(steps))
            if result.outcome in ("failed", "interrupted"):
                return RunResult(
                    False, results, result.error, interrupted=result.outcome == "interrupted"
                )
        return RunResult(True, results)

    async def _journal_state(self) -> dict[int, JournalEntry]:
        """Last journal event per step index: tells what a previous run got through."""
        last: dict[int, JournalEntry] = {}
        for entry in await self.store.journal(self.rollback_id):
            last[entry.step] = entry
        return last

    async def _run_one(
        self, i: int, step: Step, ctx: StepContext, previous: JournalEntry | None
    ) -> StepResult:
        title = step.title()
        if previous and previous.event == "end" and previous.outcome == "ok":
            ctx.outputs[step.id] = previous.output
            return StepResult(i, step.id, title, "skipped", output=previous.output)
        started = time.monotonic()
        try:
            step = resolve_uses(step, ctx.outputs, placeholder=False)
            if previous and previous.event == "start" and step.mutating:
                resumed = await self._resume_check(step, ctx)
                if resumed is not None:
                    return await self._finish(i, step, ctx, "ok", resumed, started)
            await self._journal(i, step, "start")
            output = _bounded(await step.run(ctx))
        except StepFailed as exc:
            return await self._finish(i, step, ctx, "failed", exc.output, started, str(exc))
        except _Interrupted as exc:
            return await self._finish(i, step, ctx, "interrupted", {}, started, str(exc))
        except Exception as exc:  # a bug or an unexpected library error: fail, never crash
            log.exception("step %s of %s raised", step.id, self.rollback_id)
            message = f"unexpected error: {type(exc).__name__}: {exc}"
            return await self._finish(i, step, ctx, "failed", {}, started, message)
        return await self._finish(i, step, ctx, "ok", output, started)

    async def _resume_check(self, step: Step, ctx: StepContext) -> dict[str, Any] | None:
        """A mutating step that started but never ended: look at real state before repeating."""
        if not type(step).can_check_done:
            raise _Interrupted(
                f"step {step.id!r} was interrupted and its effect cannot be checked;"
                " a person must look before it runs again"
            )
        return await step.already_done(ctx)

    async def _journal(self, i: int, step: Step, event: str, **kw: Any) -> None:
        entry = JournalEntry(at=time.time(), step=i, step_id=step.id, event=event, **kw)
        await self.store.journal_append(self.rollback_id, entry)

    async def _finish(
        self,
        i: int,
        step: Step,
        ctx: StepContext,
        outcome: str,
        output: dict[str, Any],
        started: float,
        error: str = "",
    ) -> StepResult:
        output = _bounded(output)
        if error:
            output = {**output, "error": error}
        await self._journal(i, step, "end", outcome=outcome, output=output)
        if outcome == "ok":
            ctx.outputs[step.id] = output
        seconds = round(time.monotonic() - started, 3)
        return StepResult(i, step.id, step.title(), outcome, seconds, output, error)


class _Interrupted(Exception):
    pass
