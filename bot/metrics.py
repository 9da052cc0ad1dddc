"""Prometheus metrics of one Rollbot process, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

slack_requests = Counter(
    "rollbot_slack_requests", "Slack requests received", ["kind", "status"], registry=REGISTRY
)
listener_errors = Counter(
    "rollbot_listener_errors", "Listeners that raised", ["kind"], registry=REGISTRY
)
request_seconds = Histogram(
    "rollbot_slack_request_seconds",
    "Time to answer a Slack request (ack)",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)
rollbacks = Counter(
    "rollbot_rollbacks", "Rollbacks that reached an end state", ["outcome"], registry=REGISTRY
)
store_up = Gauge("rollbot_store_up", "1 when the state store answers", registry=REGISTRY)
outbox_queued = Counter(
    "rollbot_outbox_queued", "Slack calls queued after their retries failed", registry=REGISTRY
)
outbox_delivered = Counter(
    "rollbot_outbox_delivered", "Queued Slack calls delivered later", registry=REGISTRY
)
store_errors = Counter(
    "rollbot_store_errors",
    "State store calls that failed because the store was unreachable, by component",
    ["component"],  # one of bot.store.outage.COMPONENTS
    registry=REGISTRY,
)
jobs_run = Counter("rollbot_jobs", "Due-jobs executed", ["kind", "outcome"], registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)
