"""Playbook files: load the YAML, check its parameters, and bind its steps to a target."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from jinja2.nativetypes import NativeEnvironment
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

import playbooks.steps  # noqa: F401  (importing it registers every step type)
from playbooks.base import STEP_TYPES, Step
from playbooks.problems import ConfigError, ConfigProblem, problems_from_validation

PARAM_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list[str],
    "dict": dict[str, Any],
}
STEP_ID = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["str", "int", "float", "bool", "list", "dict"] = "str"
    required: bool = False
    default: Any = None
    help: str = ""


class PlaybookFile(BaseModel):
    """The YAML as written; steps stay raw until bound to a target's parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    runbook: str = ""
    estimate_minutes: float = 5.0
    # A second explicit confirmation is needed before a dangerous playbook runs.
    dangerous: bool = False
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1)


class _NativeSandbox(SandboxedEnvironment, NativeEnvironment):
    """Templates keep list/number types and cannot reach Python internals."""


_jinja = _NativeSandbox()


def _render(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and "{{" in value:
        return _jinja.from_string(value).render(params=params)
    if isinstance(value, list):
        return [_render(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, params) for k, v in value.items()}
    return value


@cache
def _step_adapter() -> TypeAdapter[Any]:
    kinds = tuple(STEP_TYPES.values())
    if len(kinds) == 1:
        return TypeAdapter(list[kinds[0]])  # type: ignore[valid-type]
    union = Annotated[Union[kinds], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(list[union])  # type: ignore[valid-type]


def step_types() -> dict[str, type[Step]]:
    _step_adapter()
    return dict(STEP_TYPES)


class Playbook:
    """A loaded playbook file, able to validate a target's parameters and bind its steps."""

    def __init__(self, spec: PlaybookFile, source: str) -> None:
        self.spec = spec
        self.source = source
        fields: dict[str, Any] = {}
        for name, p in spec.params.items():
            annotation = PARAM_TYPES[p.type]
            if p.required:
                fields[name] = (annotation, ...)
            else:
                fields[name] = (annotation | None, p.default)
        self.params_model = create_model(  # type: ignore[call-overload]
            f"Params_{spec.name}", __config__=ConfigDict(extra="forbid"), **fields
        )

    @property
    def name(self) -> str:
        return self.spec.name

    def check_params(self, raw: dict[str, Any], file: str, prefix: str) -> dict[str, Any]:
        try:
            return self.params_model.model_validate(raw).model_dump()
        except ValidationError as exc:
            raise ConfigError(problems_from_validation(exc, file, prefix)) from None

    def bind(self, params: dict[str, Any]) -> list[Step]:
        """Render `{{ params.x }}` in the step fields and validate every step."""
        raw = []
        for i, step in enumerate(self.spec.steps):
            step = dict(step)
            step.setdefault("id", f"step{i + 1}")
            raw.append(_render(step, params))
        try:
            steps: list[Step] = _step_adapter().validate_python(raw)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation(exc, self.source, "steps")) from None
        self._check_references(steps)
        return steps

    def _check_references(self, steps: list[Step]) -> None:
        problems, seen = [], {"request"}
        for i, step in enumerate(steps):
            where = f"steps[{i}]"
            if not STEP_ID.match(step.id):
                problems.append(ConfigProblem(self.source, f"{where}.id", "use a-z, 0-9, - or _"))
            if step.id in seen:
                problems.append(ConfigProblem(self.source, f"{where}.id", "duplicate step id"))
            for field, ref in step.use.items():
                src = ref.split(".", 1)[0]
                if field not in type(step).model_fields:
                    problems.append(
                        ConfigProblem(self.source, f"{where}.use.{field}", "no such field")
                    )
                if "." not in ref or src not in seen:
                    problems.append(
                        ConfigProblem(
                            self.source, f"{where}.use.{field}", "must name an earlier step: id.key"
                        )
                    )
            seen.add(step.id)
        if problems:
            raise ConfigError(problems)


def shipped_playbooks() -> list[str]:
    folder = resources.files("playbooks") / "files"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml"))


def load_playbook(ref: str, base_dir: Path | None = None) -> Playbook:
    """A shipped playbook by name, or a path to the operator's own file."""
    if ref in shipped_playbooks():
        source = f"playbooks/files/{ref}.yml"
        text = (resources.files("playbooks") / "files" / f"{ref}.yml").read_text()
    else:
        path = Path(ref) if base_dir is None else base_dir / ref
        if not path.is_file():
            known = ", ".join(shipped_playbooks())
            raise ConfigError([ConfigProblem(ref, "", f"no such playbook (shipped ones: {known})")])
        source, text = str(path), path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(source, "", f"not valid YAML: {exc}")]) from None
    try:
        return Playbook(PlaybookFile.model_validate(data), source)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, source)) from None
