"""The AWS layer: every boto3 client, AWS call and AWS error sentence of Rollbot goes through here.

Steps (through `AwsStep`) and diagnose sources (through `call`, `paginate` and `pages`) share one
client cache with botocore's standard retries, one thread pool for the blocking calls, one
wording for failures, boto3's paginators, and a record of the IAM actions each call needs
(`recording_actions`), so what a step declares in `aws_actions` can be checked against what it
really calls. No other module imports boto3 or botocore.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from playbooks.base import Step, StepContext, StepFailed
from playbooks.pacing import Pacer

# Steps may wait out a short throttling storm; evidence has its own time bound, so a stuck call
# must not outlive its source by minutes.
STEP_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
QUICK_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
)
# A pool of our own: the default executor has cpu+4 workers shared with the rest of the bot, and
# a call that hangs past its caller's timeout keeps its thread until botocore gives up.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="aws")
_CLIENT_LOCK = threading.Lock()  # boto3's default session is not safe for concurrent creation

THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}
BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "ExpiredTokenException",
}
DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
REFUSED = {"InvalidParameterException", "ClientException"}  # the request itself was wrong
# How people call each API, and the IAM prefix where it differs from the boto3 client name.
LABELS = {
    "ecs": "ECS",
    "rds": "RDS",
    "elbv2": "Elastic Load Balancing",
    "logs": "CloudWatch Logs",
    "cloudwatch": "CloudWatch",
}
IAM_PREFIXES = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}
REFUSED_ACTION = re.compile(r"not authorized to perform: ([\w-]+:\w+)")


def iam_action(service: str, operation: str) -> str:
    """boto3 client name and API operation -> IAM action, e.g. ('elbv2', 'ModifyListener') ->
    'elasticloadbalancing:ModifyListener'."""
    return f"{IAM_PREFIXES.get(service, service)}:{operation}"


# ---------------------------------------------------------------- which actions were called

_CALLED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "aws_actions_called", default=None
)


def _record_call(model: Any, **_: Any) -> None:
    called = _CALLED.get()
    if called is not None:
        called.add(iam_action(model.service_model.service_name, model.name))


@contextmanager
def recording_actions() -> Iterator[set[str]]:
    """The IAM actions of every AWS call made inside the block, by this task and the threads
    it offloads to (the worker threads run in a copy of the caller's context)."""
    called: set[str] = set()
    token = _CALLED.set(called)
    try:
        yield called
    finally:
        _CALLED.reset(token)


# ---------------------------------------------------------------- clients


@dataclass
class AwsClients:
    """boto3 clients built once per service and region. The endpoint is `endpoint_url` when
    given, else what boto3 reads from AWS_ENDPOINT_URL (part of the key, so a changed endpoint
    gets new clients). quick=True: short network timeouts and fewer retries."""

    region: str | None = None
    endpoint_url: str | None = None
    quick: bool = False
    pacer: Pacer | None = None  # when set, call/paginate/pages wait for its slot per service
    _cache: dict[tuple[str, str | None, str | None], Any] = field(default_factory=dict, repr=False)

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        key = (service, region, self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))
        with _CLIENT_LOCK:
            if key not in self._cache:
                kwargs: dict[str, Any] = {"config": QUICK_CONFIG if self.quick else STEP_CONFIG}
                if region:
                    kwargs["region_name"] = region
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                made = boto3.client(service, **kwargs)
                made.meta.events.register("before-call", _record_call)
                if self.pacer is not None:
                    _PACED[made] = self.pacer
                    prefix = made.meta.service_model.endpoint_prefix
                    hold = functools.partial(_hold, self.pacer, prefix)
                    made.meta.events.register("before-send", hold)
                self._cache[key] = made
            return self._cache[key]


_SHARED = AwsClients()
# clients whose calls are paced -> their pacer (clients live as long as their cache)
_PACED: weakref.WeakKeyDictionary[Any, Pacer] = weakref.WeakKeyDictionary()


def _hold(pacer: Pacer, service: str, **_: Any) -> None:
    pacer.hold(service)  # runs in the worker thread, just before each HTTP request


async def paced(client: Any) -> None:
    """Wait for the client's next slot, when its calls are paced."""
    pacer = _PACED.get(client)
    if pacer is not None:
        await pacer.wait(client.meta.service_model.endpoint_prefix)


def clients_of(ctx: StepContext) -> AwsClients:
    """The run's client cache, or the process-wide one when the context carries none."""
    return ctx.aws if ctx.aws is not None else _SHARED


# ---------------------------------------------------------------- thread offload


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call (boto3) on the AWS pool without blocking the event loop."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_POOL, call)


# ---------------------------------------------------------------- errors


class AwsError(StepFailed):
    """An AWS call failed; the message is one sentence an on-call engineer can act on, and
    `code` the AWS error code (also in the step output as `aws_error`)."""

    def __init__(self, message: str, code: str | None = None, action: str = "") -> None:
        super().__init__(message, {"aws_error": code} if code else None)
        self.code = code
        self.action = action


def failure(
    exc: Exception, action: str, where: str, hints: Mapping[str, str] | None = None
) -> AwsError:
    """A botocore error as one sentence. action: 'service.method'; where: the region as shown;
    hints: error code -> the sentence that explains it for this caller (e.g. a missing
    cluster), used as it is."""
    service = action.split(".", 1)[0]
    label = LABELS.get(service, service)
    if isinstance(exc, NoCredentialsError):
        return AwsError(f"{action}: no AWS credentials found (AWS_* variables or an IAM role)")
    if isinstance(exc, NoRegionError):
        return AwsError(f"{action}: no AWS region: set `region` on the target")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"{action}: cannot reach the {label} API in {where}: {exc}")
    if not isinstance(exc, ClientError):
        return AwsError(f"{action} failed: {exc}")
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "").rstrip(".")
    retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    if hints and code in hints:
        text = hints[code]
    elif code in DENIED:
        # AWS names the action it refused, which may be another than the call's own (e.g.
        # iam:PassRole when registering a task definition that names a role)
        named = REFUSED_ACTION.search(message)
        grant = named.group(1) if named else iam_action(service, exc.operation_name)
        text = (
            f"the bot's AWS identity may not call {action}: {message} (grant {grant} to its role)"
        )
    elif code in THROTTLED:
        tries = f" after {retries + 1} attempts" if retries else ""
        text = f"AWS kept throttling {action}{tries}; try again in a minute"
    elif code in BAD_CREDENTIALS:
        text = f"AWS rejected the bot's credentials on {action}: {message}"
    elif code in REFUSED:
        text = f"{label} refused {action}: {message}"
    else:
        text = f"{action} failed: {code}: {message}"
    return AwsError(text, code, action)


@contextmanager
def translated(action: str, where: str, hints: Mapping[str, str] | None = None) -> Iterator[None]:
    """Inside the block, a botocore error becomes an AwsError (without the traceback chain)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, action, where, hints) from None


def _action(client: Any, method: str) -> str:
    return f"{client.meta.service_model.service_name}.{method}"


def _where(client: Any) -> str:
    return client.meta.region_name or "the default region"


# ---------------------------------------------------------------- calls and pagination


def collect_pages(
    client: Any, method: str, key: str, max_items: int | None = None, **kwargs: Any
) -> list[Any]:
    """Every item under `key` of every page of a paginated call (blocking: run in a thread)."""
    if max_items is not None:
        kwargs["PaginationConfig"] = {"MaxItems": max_items}
    items: list[Any] = []
    for page in client.get_paginator(method).paginate(**kwargs):
        items += page.get(key, [])
    return items


async def call(client: Any, method: str, /, **kwargs: Any) -> dict[str, Any]:
    """One API call in a worker thread; failures raise AwsError."""
    await paced(client)
    with translated(_action(client, method), _where(client)):
        return await in_thread(getattr(client, method), **kwargs)


async def paginate(
    client: Any, method: str, key: str, /, *, max_items: int | None = None, **kwargs: Any
) -> list[Any]:
    """All items of a paginated call (boto3's paginator), fetched in a worker thread (page by
    page when the client is paced, each page a call)."""
    if client in _PACED:
        if max_items is not None:
            kwargs["PaginationConfig"] = {"MaxItems": max_items}
        found = pages(client, method, **kwargs)
        return [item async for page in found for item in page.get(key, [])]
    with translated(_action(client, method), _where(client)):
        return await in_thread(collect_pages, client, method, key, max_items, **kwargs)


async def pages(client: Any, method: str, /, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """A paginated call page by page, each fetched in a worker thread: the caller may stop
    early (a count cap, a time limit) without fetching the rest."""
    with translated(_action(client, method), _where(client)):
        iterator = iter(client.get_paginator(method).paginate(**kwargs))
        while True:
            await paced(client)
            page = await in_thread(next, iterator, None)
            if page is None:
                return
            yield page


# ---------------------------------------------------------------- the step base


class AwsStep(Step):
    """A step that calls one AWS service. It names the boto3 client in `service_name` and every
    IAM action it may call in `aws_actions` (a test holds each step to it, and the IAM policy is
    built from it); calls go through `call`/`paginate`, which run in a worker thread and turn
    AWS errors into one sentence (AwsError, a StepFailed)."""

    region: str | None = None  # default: the target's region

    service_name: ClassVar[str] = ""
    aws_actions: ClassVar[tuple[str, ...]] = ()

    def client(self, ctx: StepContext) -> Any:
        return clients_of(ctx).client(self.service_name, self.region or ctx.param("region"))

    def region_name(self, ctx: StepContext) -> str:
        default = ctx.aws.region if ctx.aws is not None else None
        return self.region or ctx.param("region") or default or "the default region"

    def hints(self, ctx: StepContext) -> dict[str, str]:
        """Error code -> the sentence that explains it for this step."""
        return {}

    @contextmanager
    def errors(self, ctx: StepContext, method: str) -> Iterator[None]:
        """AWS errors inside the block (building the client included) become AwsError."""
        action = f"{self.service_name}.{method}"
        with translated(action, self.region_name(ctx), self.hints(ctx)):
            yield

    async def call(self, ctx: StepContext, method: str, **kwargs: Any) -> dict[str, Any]:
        with self.errors(ctx, method):
            return await in_thread(getattr(self.client(ctx), method), **kwargs)

    async def paginate(self, ctx: StepContext, method: str, key: str, **kwargs: Any) -> list[Any]:
        with self.errors(ctx, method):
            return await in_thread(collect_pages, self.client(ctx), method, key, **kwargs)

    def waiter_acceptors(self, ctx: StepContext, name: str, method: str) -> list[Any]:
        """The acceptors of botocore's waiter `name` (which polls `method`), to apply to answers
        polled on the event loop: a waiter sleeping in a thread could not be cancelled."""
        with self.errors(ctx, method):
            return list(self.client(ctx).get_waiter(name).config.acceptors)
