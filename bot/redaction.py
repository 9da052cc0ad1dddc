"""The process's own part of redaction: its secret settings learned at start, and the filter
that passes every log line the bot writes through the redactor."""

from __future__ import annotations

import logging
import os
from typing import Any

from playbooks.redact import learn, redact_text

# Secrets the bot holds in its environment besides its settings (boto3 reads these itself).
ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
SETTING_SECRETS = (
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "github_token",
    "redis_url",  # its password; learn() takes it out of the URL
)


def learn_settings(settings: Any) -> None:
    """The bot's own secrets vanish from any text it writes, wherever they turn up."""
    values = [settings.secret(name) for name in SETTING_SECRETS]
    values += [os.environ.get(name) for name in ENV_SECRETS]
    learn(v for v in values if v)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (arguments merged in) and its traceback text, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call; let the handler report it as logging does
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """On every handler of `logger` (the root logger by default): a filter on a handler sees
    records of every logger that reaches it, a filter on a logger only its own."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
