"""Process settings read from the environment (listed in the README and `rollbot serve --help`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment of a Rollbot process; tokens stay `SecretStr` so they never print."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    rollbot_config: Path = Path("rollbot.yml")
    # Folder of Jinja2 templates that replace the shipped announcement templates by name.
    rollbot_templates: Path | None = None
    redis_url: SecretStr | None = None
    rollbot_db: Path = Path("rollbot.db")
    rollbot_status_interval: float = Field(default=300.0, gt=0)
    # How long a replica may hold a target lock or a claimed job without renewing it.
    rollbot_lease_seconds: float = Field(default=60.0, gt=0)
    # How long a graceful stop (SIGTERM) lets listeners and jobs finish before handing the
    # jobs back; keep it inside the grace period of the process manager (often 30 s).
    rollbot_drain_seconds: float = Field(default=20.0, ge=0)
    # How long a rollback request waits for its approvals (and confirmation) before it expires;
    # a target's `approval_timeout` overrides it. The approvers are reminded at half-time.
    rollbot_approval_timeout: float = Field(default=1800.0, gt=0)
    # Org-wide install: the team ids (comma-separated) whose requests are served. Unset: only
    # the installation's own team (auth.test).
    rollbot_allowed_teams: str = ""
    # Socket Mode: how often the connection is pinged; a dead one is replaced within a few.
    rollbot_socket_ping_seconds: float = Field(default=10.0, gt=0)

    # Limits under load (README "Limits"): attempts per user and per target in each window,
    # counted in the store so every replica shares them.
    rollbot_rate_window_seconds: float = Field(default=60.0, gt=0)
    rollbot_diagnose_per_user: int = Field(default=5, ge=1)
    rollbot_diagnose_per_target: int = Field(default=10, ge=1)
    rollbot_rollback_per_user: int = Field(default=5, ge=1)
    rollbot_rollback_per_target: int = Field(default=5, ge=1)
    rollbot_cancel_per_user: int = Field(default=5, ge=1)
    # A capture of the same target younger than this is reused instead of collected again.
    rollbot_capture_reuse_seconds: float = Field(default=60.0, ge=0)
    # Captures collected at once by one replica; more are told to try again.
    rollbot_max_captures: int = Field(default=8, ge=1)
    # Diagnoses, step journals and outbox leftovers older than this are pruned daily.
    rollbot_retention_days: float = Field(default=90.0, gt=0)
    # AWS calls per second per service for captures (JSON object, e.g. {"logs": 2}); merged
    # over the shipped pace, which stays below the documented API rates.
    rollbot_aws_pace: dict[str, float] = Field(default_factory=dict)

    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"

    @property
    def allowed_teams(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.rollbot_allowed_teams.split(",") if t.strip())

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None

    def problems(self, *, socket_mode: bool = False, serving: bool = True) -> list[str]:
        """What is missing for the chosen mode, as readable lines (empty when all is set)."""
        out: list[str] = []
        if serving and self.slack_bot_token is None:
            out.append("SLACK_BOT_TOKEN is not set")
        if serving and not socket_mode and self.slack_signing_secret is None:
            out.append("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request)")
        if socket_mode and self.slack_app_token is None:
            out.append("SLACK_APP_TOKEN is not set (Socket Mode needs an app-level token)")
        if not self.slack_api_url.endswith("/"):
            out.append("SLACK_API_URL must end with '/'")
        return out
