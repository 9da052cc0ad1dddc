"""Evidence capture: every source at once, each with its own timeout (runbook 001's commands)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from bot.diagnose import sources
from bot.diagnose.matrix import Thresholds, Verdict, evaluate
from bot.diagnose.redact import redact


class SourceResult(BaseModel):
    status: str  # ok | timeout | error | skipped
    seconds: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


class Capture(BaseModel):
    target: str
    started_at: float
    seconds: float
    sources: dict[str, SourceResult]
    facts: dict[str, Any]
    verdict: Verdict

    def to_json(self) -> str:
        return json.dumps(redact(self.model_dump()), indent=2, default=str)

    def to_markdown(self) -> str:
        lines = [
            f"# Diagnosis of {self.target}",
            f"Captured {datetime.fromtimestamp(self.started_at, UTC):%Y-%m-%d %H:%M:%S} UTC"
            f" in {self.seconds:.2f} s",
            "",
            f"**Verdict:** {self.verdict.severity} — {self.verdict.action}",
            "",
        ]
        lines += [f"- {t.name}: {t.measured} ({t.threshold})" for t in self.verdict.triggers]
        for name, src in self.sources.items():
            lines += ["", f"## {name} ({src.status}, {src.seconds:.2f} s)"]
            lines.append(
                src.error
                or "```json\n" + json.dumps(redact(src.data), indent=2, default=str) + "\n```"
            )
        return "\n".join(lines)


Source = Callable[[Any, Any], Awaitable[dict[str, Any]]]


def planned_sources(target: Any) -> dict[str, Source | str]:
    """Name -> collector, or the reason it is skipped."""
    p, d = target.params, target.settings.diagnose
    has_ecs = bool(p.get("cluster") and p.get("service"))
    return {
        "ecs_service": sources.ecs_service if has_ecs else "no ECS service configured",
        "task_definitions": sources.task_definitions if has_ecs else "no ECS service configured",
        "logs": sources.logs if p.get("log_groups") else "no log_groups configured",
        "health": sources.health if p.get("health_urls") else "no health_urls configured",
        "metrics": sources.metrics if (has_ecs or d.load_balancer) else "no metrics configured",
    }


async def _timed(fn: Source, target: Any, window: Any, limit: float) -> SourceResult:
    started = time.perf_counter()
    try:
        data = await asyncio.wait_for(fn(target, window), limit)
        status, error = "ok", ""
    except TimeoutError:
        data, status, error = {}, "timeout", f"timed out after {limit:g}s"
    except Exception as exc:  # one broken source must not hide the others
        data, status, error = {}, "error", sources.describe_error(exc)
    return SourceResult(
        status=status,
        seconds=round(time.perf_counter() - started, 3),
        data=redact(data),
        error=redact(error),
    )


async def capture(
    target: Any, settings: Any = None, *, source_timeout: float | None = None
) -> Capture:
    """Collect every configured source concurrently; total time is bounded by the timeout."""
    started = time.time()
    t0 = time.perf_counter()
    cfg = target.settings.diagnose
    window = sources.Window(
        end=datetime.now(UTC),
        start=datetime.now(UTC) - timedelta(minutes=cfg.window_minutes),
        config=cfg,
    )
    planned = planned_sources(target)
    runnable = {n: f for n, f in planned.items() if not isinstance(f, str)}
    per_source = source_timeout if source_timeout is not None else cfg.source_timeout
    results = await asyncio.gather(
        *(_timed(f, target, window, per_source) for f in runnable.values())
    )
    out: dict[str, SourceResult] = {}
    for name, reason in planned.items():
        out[name] = (
            results[list(runnable).index(name)]
            if name in runnable
            else SourceResult(status="skipped", error=str(reason))
        )
    facts = sources.facts(out)
    thresholds = Thresholds.model_validate(cfg.thresholds)
    return Capture(
        target=target.name,
        started_at=started,
        seconds=round(time.perf_counter() - t0, 3),
        sources=out,
        facts=facts,
        verdict=evaluate(facts, thresholds),
    )
