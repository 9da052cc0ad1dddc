"""Runs a bound playbook step by step, journaling each step before and after it runs.

The journal is whatever durable store the caller hands in (the bot's store satisfies
`playbooks.journal.Journal`), so a second runner on the same journal resumes a crashed run."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playbooks.aws import AwsClients
from playbooks.base import NothingToDo, Step, StepContext, StepFailed
from playbooks.journal import Journal, JournalEntry, RunStopped
from playbooks.redact import redact_text

log = logging.getLogger(__name__)

# Outputs are kept in the journal and the failure output file is made from them: bounded, but
# above what a host command keeps of one stream (16 kB and a note), so that arrives whole.
MAX_OUTPUT_CHARS = 20_000
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

    def to_dict(self) -> dict[str, Any]:
        """As kept with a rollback: JSON only (outputs may carry dates)."""
        kept = {"step_id": self.step_id, "title": self.title, "mutating": self.mutating}
        kept["calls"] = list(self.calls)
        if self.output is not None:
            kept["output"] = json.loads(json.dumps(self.output, default=str))
        if self.change:
            kept["change"] = self.change
        return kept

    @classmethod
    def from_dict(cls, index: int, kept: dict[str, Any]) -> PlannedStep:
        return cls(
            index,
            kept["step_id"],
            kept.get("title", kept["step_id"]),
            bool(kept.get("mutating")),
            list(kept.get("calls", [])),
            kept.get("output"),
            kept.get("change"),
        )


def plan_digest(planned: list[PlannedStep]) -> str:
    """A canonical digest of every changing call: what an approval binds to."""
    changing = [[p.step_id, p.calls] for p in planned if p.mutating]
    text = json.dumps(changing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def resolved_outputs(planned: list[PlannedStep]) -> dict[str, dict[str, Any]]:
    """What the resolving steps found while planning, by step id (for StepContext.approved)."""
    return {p.step_id: p.output for p in planned if p.output is not None}


def plan_visible(steps: list[Step]) -> set[str]:
    """Ids whose outputs planning knows: the request and the lookups it runs for real."""
    known = {"request"}
    for step in steps:
        ready = all(ref.split(".", 1)[0] in known for ref in step.use.values())
        if step.resolves and not step.mutating and ready:
            known.add(step.id)
    return known


@dataclass
class StepResult:
    index: int
    step_id: str
    title: str
    outcome: str  # ok | failed | skipped | interrupted | nothing (already as requested)
    seconds: float = 0.0
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class RunResult:
    ok: bool
    steps: list[StepResult]
    error: str = ""
    interrupted: bool = False
    # set when a step found the target already as requested before anything changed
    nothing_to_do: str = ""

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.outcome in ("failed", "interrupted")), None)


Progress = Callable[[StepResult, int], Awaitable[None]]
# Called before each step starts; raises RunStopped when the run may not go on.
BeforeStep = Callable[[Step], Awaitable[None]]


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
    """Every call the steps would make; lookups run for real so later calls are exact.
    NothingToDo from a step propagates: the request needs no rollback."""
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
            half = MAX_OUTPUT_CHARS // 2
            v = f"{v[:half]}\n[... {len(v) - 2 * half} characters left out ...]\n{v[-half:]}"
        out[k] = v
    return out


class PlaybookRunner:
    """Executes steps for one rollback; a second runner on the same journal resumes safely."""

    def __init__(
        self,
        store: Journal,
        rollback_id: str,
        progress: Progress | None = None,
        approved: list[PlannedStep] | None = None,
        before_step: BeforeStep | None = None,
    ) -> None:
        self.store = store
        self.rollback_id = rollback_id
        self.progress = progress
        # the approved plan: a change step runs only if it would make exactly its calls
        self.approved = {p.index: p for p in approved} if approved is not None else None
        self._visible: set[str] = set()
        self.before_step = before_step

    async def run(self, steps: list[Step], ctx: StepContext) -> RunResult:
        done = await self._journal_state()
        self._visible = plan_visible(steps)
        results: list[StepResult] = []
        for i, step in enumerate(steps):
            if self.before_step:
                await self.before_step(step)  # RunStopped ends the run here, unfinished
            result = await self._run_one(i, step, ctx, done.get(i))
            results.append(result)
            if self.progress:
                await self.progress(result, len(steps))
            if result.outcome == "nothing":
                if any(s.mutating for s in steps[:i]):  # too late to say "nothing to do"
                    return RunResult(False, results, result.error)
                return RunResult(True, results, nothing_to_do=result.error)
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
            if step.mutating:
                await self._check_approved(i, step, ctx)
            step = resolve_uses(step, ctx.outputs, placeholder=False)
            if previous and previous.event == "start" and step.mutating:
                resumed = await self._resume_check(step, ctx)
                if resumed is not None:
                    return await self._finish(i, step, ctx, "ok", resumed, started)
            await self._journal(i, step, "start")
            output = _bounded(await step.run(ctx))
        except StepFailed as exc:
            return await self._finish(i, step, ctx, "failed", exc.output, started, str(exc))
        except NothingToDo as exc:
            return await self._finish(i, step, ctx, "nothing", {}, started, str(exc))
        except _Interrupted as exc:
            return await self._finish(i, step, ctx, "interrupted", {}, started, str(exc))
        except RunStopped:
            raise  # the journal refused this runner: it must not report the step either way
        except Exception as exc:  # a bug or an unexpected library error: fail, never crash
            log.exception("step %s of %s raised", step.id, self.rollback_id)
            message = f"unexpected error: {type(exc).__name__}: {exc}"
            return await self._finish(i, step, ctx, "failed", {}, started, message)
        return await self._finish(i, step, ctx, "ok", output, started)

    async def _check_approved(self, i: int, step: Step, ctx: StepContext) -> None:
        """The calls this change step would make now, worked out as planning did, must be
        the approved ones: a world that changed under the run stops it before the change."""
        if self.approved is None:
            return
        seen = {k: v for k, v in ctx.outputs.items() if k in self._visible}
        calls = await resolve_uses(step, seen, placeholder=True).plan(ctx)
        approved = self.approved.get(i)
        # the stored plan was redacted on its way into the store: compare what both sides show
        # (a change hidden by redaction is caught by the plan digest before the run starts)
        same = approved is not None and approved.step_id == step.id
        if approved is None or not same or _shown(approved.calls) != _shown(calls):
            was = approved.calls if approved is not None else []
            raise StepFailed(
                f"step {step.id!r} would now make calls that were not approved, so it did not"
                f" run: {'; '.join(calls)} (approved: {'; '.join(was) or 'nothing'})"
            )

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


def _shown(calls: list[str]) -> list[str]:
    return [redact_text(call) for call in calls]
