"""Configuration problems reported with their location, and their formatting.

Playbook files and the catalog both report through these, so they sit at the bottom layer."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake: which file, which key path inside it, what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    @classmethod
    def from_lines(cls, file: str, lines: list[str]) -> ConfigError:
        return cls([ConfigProblem(file, "", line) for line in lines])


def key_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """('targets', 'api', 'clsuter') -> 'targets.api.clsuter'; list indexes as [n]."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(
    exc: ValidationError, file: str, prefix: str = ""
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (typo?)"
        problems.append(ConfigProblem(file, key_path(loc, prefix), message))
    return problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic puts the discriminator value (e.g. 'ecs.update_service') into the location
    return isinstance(part, str) and "." in part
