"""What every evidence source shares: a diagnosis's options, the context each collector sees,
the AWS clients of captures, and how a failed source is told in one line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.diagnose.matrix import Thresholds
from playbooks.aws import AwsClients, AwsError, translated
from playbooks.pacing import Pacer
from playbooks.redact import Redactor

Collector = Callable[["SourceContext"], Awaitable[dict[str, Any]]]
# One client cache for every capture, with short timeouts (a source has its own time bound),
# its calls paced per service below the AWS API rates however many captures run at once.
CAPTURE_PACE = Pacer()
_CLIENTS = AwsClients(quick=True, pacer=CAPTURE_PACE)


@dataclass(frozen=True)
class Options:
    """How a target is diagnosed. Set per target under `diagnose:` in rollbot.yml (a playbook
    may also declare these names as its own parameters, which then win):

      window_minutes      10       how far back logs, metrics and restarts are read
      log_filter_pattern  "ERROR"  CloudWatch Logs filter pattern for the error lines
      source_timeout      8        seconds each source may take (the capture's bound)
      health_samples      3        requests per health URL, one after another
      load_balancer       unset    ALB name dimension (app/NAME/ID) or ARN: 5xx rate and p95
      thresholds          {}       overrides of the decision matrix (matrix.Thresholds)
      redact_names        default  regexes of variable names whose values are hidden;
                                   replaces redact.is_secret_name when given (read from
                                   playbook params today: the catalog's DiagnoseSettings does
                                   not accept the key yet)
    """

    window_minutes: float = 10.0
    log_filter_pattern: str = "ERROR"
    health_samples: int = 3
    load_balancer: str | None = None
    redact_names: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass
class SourceContext:
    """What every collector sees."""

    params: dict[str, Any]
    options: Options
    start: datetime
    end: datetime
    timeout: float
    redactor: Redactor
    client: Callable[[str], Any]  # AWS service name -> boto3 client


class SourceError(Exception):
    """A source failed in a way worth saying plainly (not found, misconfigured)."""


def aws_client_factory(region: str | None) -> Callable[[str], Any]:
    """AWS service name -> the shared client for `region` (a missing region is an AwsError)."""

    def client(service: str) -> Any:
        with translated(f"{service} client", region or "the default region"):
            return _CLIENTS.client(service, region)

    return client


def describe_error(exc: BaseException) -> str:
    """One readable line for a failed source (never a traceback)."""
    if isinstance(exc, AwsError | SourceError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)
