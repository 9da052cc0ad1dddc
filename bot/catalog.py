"""The target catalog (rollbot.yml): approvers, announcement channel and rollback targets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError, ConfigProblem, problems_from_validation
from playbooks.base import Step
from playbooks.loader import Playbook, load_playbook
from playbooks.redact import learn_config

TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def _check_ids(values: list[str] | None, what: str) -> list[str] | None:
    for v in values or []:
        if not SLACK_ID.match(v):
            raise ValueError(f"{v!r} is not a Slack {what} id (U..., W... or S...)")
    return values


class DiagnoseSettings(BaseModel):
    """How /diagnose looks at a target; thresholds override the runbooks' defaults."""

    model_config = ConfigDict(extra="forbid")

    window_minutes: float = Field(default=10.0, gt=0)
    log_filter_pattern: str = "ERROR"
    source_timeout: float = Field(default=8.0, gt=0)
    health_samples: int = Field(default=3, ge=1, le=20)
    load_balancer: str | None = None  # ALB name or ARN, e.g. app/my-alb/50dc6c495c0c9188
    # regexes of environment-variable names whose values are hidden (default: a shipped list)
    redact_names: list[str] | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        from bot.diagnose.matrix import Thresholds

        Thresholds.model_validate(v)
        return v


class MaintenanceSettings(BaseModel):
    """The targets `/rollback maintenance TARGET on|off` requests (e.g. ALB maintenance mode)."""

    model_config = ConfigDict(extra="forbid")

    on: str
    off: str

    @model_validator(mode="before")
    @classmethod
    def _yaml_booleans(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` / `off:` key as true / false
        if isinstance(data, dict):
            names = {True: "on", False: "off"}
            return {names.get(k, k) if isinstance(k, bool) else k: v for k, v in data.items()}
        return data


class TargetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: str
    description: str = ""
    approvers: list[str] | None = None  # overrides the catalog's approvers for this target
    requesters: list[str] | None = None  # who may request; unset: anyone in the workspace
    allow_self_approval: bool | None = None
    # the two-person rule: this many distinct approvers (never the requester) before it runs
    approvals: int = Field(default=1, ge=1, le=10)
    # seconds a request waits for its decision (default: ROLLBOT_APPROVAL_TIMEOUT)
    approval_timeout: float | None = Field(default=None, gt=0)
    channel: str | None = None
    estimate_minutes: float | None = None
    # How often waiting steps poll AWS and how long they wait before failing the rollback.
    poll_delay: float = Field(default=6.0, gt=0)
    poll_timeout: float = Field(default=600.0, gt=0)
    diagnose: DiagnoseSettings = Field(default_factory=DiagnoseSettings)
    maintenance: MaintenanceSettings | None = None

    @field_validator("approvers", "requesters")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        return _check_ids(v, "user or user-group")


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(min_length=1)
    channel: str
    allow_self_approval: bool = False
    targets: dict[str, dict[str, Any]] = Field(min_length=1)

    @field_validator("approvers")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        return _check_ids(v, "user or user-group") or []

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if not CHANNEL_ID.match(v):
            raise ValueError(f"{v!r} is not a Slack channel id (C...)")
        return v


@dataclass
class Target:
    """A catalog entry bound to its playbook, ready to plan or run."""

    name: str
    settings: TargetSettings
    playbook: Playbook
    params: dict[str, Any]
    steps: list[Step]
    approvers: list[str]
    channel: str
    allow_self_approval: bool

    @property
    def estimate_minutes(self) -> float:
        return self.settings.estimate_minutes or self.playbook.spec.estimate_minutes

    def may_request(self, user_id: str, user_groups: set[str] = frozenset()) -> bool:  # type: ignore[assignment]
        allowed = self.settings.requesters
        return allowed is None or user_id in allowed or bool(user_groups & set(allowed))


@dataclass
class Catalog:
    path: str
    approvers: list[str]
    channel: str
    targets: dict[str, Target] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.targets)

    def maintenance_target(self, name: str, on: bool) -> str | None:
        """The target that turns `name`'s maintenance mode on or off, if it has one."""
        target = self.targets.get(name)
        mode = target.settings.maintenance if target else None
        return None if mode is None else (mode.on if on else mode.off)

    def with_maintenance(self) -> list[str]:
        return sorted(n for n, t in self.targets.items() if t.settings.maintenance)


def load_catalog(path: Path) -> Catalog:
    """Read and validate the whole catalog; raise ConfigError listing every problem."""
    file = str(path)
    if not path.is_file():
        raise ConfigError([ConfigProblem(file, "", "file not found (set ROLLBOT_CONFIG)")])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {exc}")]) from None
    learn_config(data)  # its passwords vanish from every text the bot writes from now on
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(file, "", "must be a mapping with approvers, channel, targets")]
        )
    try:
        spec = CatalogFile.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, file)
        # keep going into the targets so one run reports every mistake
        targets = data.get("targets") if isinstance(data.get("targets"), dict) else {}
        for name, raw in targets.items():
            problems += _target_problems(name, raw, file, path.parent)
        raise ConfigError(problems) from None
    catalog = Catalog(file, spec.approvers, spec.channel)
    problems: list[ConfigProblem] = []
    for name, raw in spec.targets.items():
        try:
            catalog.targets[name] = _load_target(name, raw, spec, file, path.parent)
        except ConfigError as exc:
            problems += exc.problems
    problems += _maintenance_problems(catalog, file)
    if problems:
        raise ConfigError(problems)
    return catalog


def _maintenance_problems(catalog: Catalog, file: str) -> list[ConfigProblem]:
    problems = []
    for name, target in catalog.targets.items():
        mode = target.settings.maintenance
        for key, other in (("on", mode.on), ("off", mode.off)) if mode else ():
            if other not in catalog.targets:
                where = f"targets.{name}.maintenance.{key}"
                problems.append(ConfigProblem(file, where, f"no target named {other!r}"))
    return problems


def _target_problems(name: str, raw: Any, file: str, base: Path) -> list[ConfigProblem]:
    fake = CatalogFile.model_construct(approvers=["U0"], channel="C0", allow_self_approval=False)
    try:
        _load_target(name, raw, fake, file, base)
    except ConfigError as exc:
        return exc.problems
    return []


def _load_target(name: str, raw: Any, spec: CatalogFile, file: str, base: Path) -> Target:
    where = f"targets.{name}"
    if not TARGET_NAME.match(str(name)):
        raise ConfigError([ConfigProblem(file, where, "target names use a-z, 0-9, - and _")])
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(file, where, "must be a mapping")])
    # Keys of TargetSettings belong to Rollbot itself; every other key is a playbook parameter.
    own = {k: v for k, v in raw.items() if k in TargetSettings.model_fields}
    params = {k: v for k, v in raw.items() if k not in TargetSettings.model_fields}
    problems: list[ConfigProblem] = []
    try:
        settings = TargetSettings.model_validate(own)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, file, where)) from None
    try:
        playbook = load_playbook(settings.playbook, base)
    except ConfigError as exc:
        problems = [ConfigProblem(file, f"{where}.playbook", str(p)) for p in exc.problems]
        raise ConfigError(problems) from None
    checked = playbook.check_params(params, file, where)
    steps = playbook.bind(checked)
    return Target(
        name=name,
        settings=settings,
        playbook=playbook,
        params=checked,
        steps=steps,
        approvers=settings.approvers or spec.approvers,
        channel=settings.channel or spec.channel,
        allow_self_approval=(
            spec.allow_self_approval
            if settings.allow_self_approval is None
            else settings.allow_self_approval
        ),
    )
