"""What a diagnosis produces: per-source results, the figures read from them, the verdict."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from playbooks.redact import Redactor

SourceStatus = Literal["ok", "timeout", "error", "skipped"]
Severity = Literal["critical", "high", "medium", "low", "ok", "unknown"]


class SourceResult(BaseModel):
    """One evidence source: `error` says why it timed out, failed or was skipped."""

    status: SourceStatus
    seconds: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


class Figures(BaseModel):
    """The numbers the decision matrix reads; None means the source could not tell."""

    running: int | None = None
    desired: int | None = None
    task_definition: str | None = None
    rollout_failed: bool | None = None
    requests: float | None = None
    errors_5xx: float | None = None
    error_rate_pct: float | None = None
    p95_ms: float | None = None
    p95_from: str = ""  # which measurement p95_ms comes from
    p95_baseline_ms: float | None = None
    baseline_from: str = ""
    memory_pct: float | None = None  # sustained: the lowest of the last few minutes
    cpu_pct: float | None = None
    restarts: int | None = None
    restarts_what: str = ""  # how the restarts were counted, when not ECS stopped tasks
    containers: str = ""  # a compose host: running containers, and the services with none
    error_lines: int | None = None
    health_total: int | None = None
    health_failing: int | None = None
    health_detail: list[str] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict)  # figure -> why it is unknown


class Trigger(BaseModel):
    """A rule of the runbooks that fired, with what was measured against what."""

    rule: str  # stable key, e.g. "error_rate"
    name: str
    severity: Severity
    measured: str
    threshold: str
    response: str  # the runbook's answer to this trigger
    runbook: str


class Verdict(BaseModel):
    severity: Severity = "unknown"
    action: str = ""
    timeframe: str = ""
    recommendation: str = ""
    triggers: list[Trigger] = Field(default_factory=list)
    unevaluated: list[str] = Field(default_factory=list)  # "rule: why"


class Capture(BaseModel):
    """A whole diagnosis; already redacted when built by `capture()`."""

    id: str
    target: str
    started_at: datetime
    seconds: float
    timeout: float
    window_minutes: float
    sources: dict[str, SourceResult]
    figures: Figures
    verdict: Verdict

    def redacted(self) -> dict[str, Any]:
        # a second pass costs little and covers a Capture built by hand
        return Redactor().value(self.model_dump(mode="json"))

    def to_json(self) -> str:
        return json.dumps(self.redacted(), indent=2)
