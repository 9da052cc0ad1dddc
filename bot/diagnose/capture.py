"""capture(): every evidence source at once, each bounded by its own timeout, then the verdict.
Used by /diagnose and by the rollback flow's pre-rollback diagnostics."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.diagnose.matrix import Thresholds, evaluate, figures
from bot.diagnose.models import Capture, SourceResult
from bot.diagnose.sources import (
    Collector,
    Options,
    SourceContext,
    aws_client_factory,
    describe_error,
    plan,
)
from playbooks.redact import Redactor

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 8.0
# Options a playbook may declare as its own parameters; they win over the `diagnose` settings.
PARAM_OPTIONS = (
    "window_minutes",
    "log_filter_pattern",
    "health_samples",
    "load_balancer",
    "redact_names",
    "source_timeout",
)


def new_id() -> str:
    return "dg-" + secrets.token_hex(5)


def resolve_options(target: Any) -> tuple[Options, float]:
    """The target's diagnose options and per-source timeout: playbook params first, then the
    target's `diagnose` settings (or a `diagnose` mapping param), then the shipped defaults."""
    settings = getattr(getattr(target, "settings", None), "diagnose", None)
    merged: dict[str, Any] = settings.model_dump() if settings is not None else {}
    from_params = target.params.get("diagnose") or {}
    thresholds = {**merged.pop("thresholds", {}), **from_params.get("thresholds", {})}
    merged.update({k: v for k, v in from_params.items() if k != "thresholds"})
    merged.update({k: target.params[k] for k in PARAM_OPTIONS if target.params.get(k) is not None})
    timeout = float(merged.pop("source_timeout", None) or DEFAULT_TIMEOUT)
    names = merged.pop("redact_names", None) or ()
    known = {k: v for k, v in merged.items() if k in Options.__dataclass_fields__}
    options = Options(
        **known,
        redact_names=tuple(names),
        thresholds=Thresholds.model_validate(thresholds),
    )
    return options, timeout


async def capture(
    target: Any,
    settings: Any = None,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - per source, part of the public contract
    redactor: Redactor | None = None,
    clients: Callable[[str], Any] | None = None,
) -> Capture:
    """Collect every configured source concurrently and judge the result.

    timeout: per source, in seconds (default: the target's diagnose.source_timeout, 8 s);
    the whole capture takes about as long as its slowest source, never the sum.
    settings: the process settings, accepted for symmetry with the flows; AWS endpoints and
    credentials come from the standard AWS variables. clients: AWS client factory (tests).
    """
    ctx, planned = prepare(target, timeout=timeout, redactor=redactor, clients=clients)
    t0 = time.perf_counter()
    results = await _collect(planned, ctx)
    # redact once everything has answered: a secret learned from the task definitions is then
    # also removed from log lines that were fetched at the same time
    results = {ctx.redactor.text(n): _redacted(r, ctx.redactor) for n, r in results.items()}
    thresholds = ctx.options.thresholds
    measured = figures(results, thresholds)
    return Capture(
        id=new_id(),
        target=target.name,
        started_at=ctx.end,
        seconds=round(time.perf_counter() - t0, 3),
        timeout=ctx.timeout,
        window_minutes=ctx.options.window_minutes,
        sources=results,
        figures=measured,
        verdict=evaluate(measured, thresholds),
    )


def prepare(
    target: Any,
    *,
    timeout: float | None = None,
    redactor: Redactor | None = None,
    clients: Callable[[str], Any] | None = None,
) -> tuple[SourceContext, dict[str, Collector | str]]:
    """The context every collector shares, and the planned sources (collector or skip reason)."""
    options, default_timeout = resolve_options(target)
    end = datetime.now(UTC)
    ctx = SourceContext(
        params=target.params,
        options=options,
        start=end - timedelta(minutes=options.window_minutes),
        end=end,
        timeout=float(timeout if timeout is not None else default_timeout),
        redactor=redactor or Redactor(options.redact_names),
        client=clients or aws_client_factory(target.params.get("region")),
    )
    return ctx, plan(target.params, options)


async def _collect(
    planned: dict[str, Collector | str], ctx: SourceContext
) -> dict[str, SourceResult]:
    runnable = {n: c for n, c in planned.items() if not isinstance(c, str)}
    done = await asyncio.gather(*(_timed(n, c, ctx) for n, c in runnable.items()))
    answered = dict(zip(runnable, done, strict=True))
    return {
        name: answered[name] if name in answered else SourceResult(status="skipped", error=str(how))
        for name, how in planned.items()
    }


async def _timed(name: str, collect: Collector, ctx: SourceContext) -> SourceResult:
    limit, started = ctx.timeout, time.perf_counter()
    try:
        data = await asyncio.wait_for(collect(ctx), limit)
        status, error = "ok", ""
    except TimeoutError:
        data, status, error = {}, "timeout", f"timed out after {limit:g}s"
    except Exception as exc:  # one broken source must never hide the others
        log.info("diagnose source %s failed: %s", name, describe_error(exc))
        data, status, error = {}, "error", describe_error(exc)
    return SourceResult(
        status=status, seconds=round(time.perf_counter() - started, 3), data=data, error=error
    )


def _redacted(result: SourceResult, redactor: Redactor) -> SourceResult:
    return result.model_copy(
        update={"data": redactor.value(result.data), "error": redactor.text(result.error)}
    )
