"""The step contract: steps register themselves, the base class decides whether a step changes
anything, and the playbook model imports nothing from the bot or Slack."""

from __future__ import annotations

import ast
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

import playbooks
import playbooks.steps
from playbooks.base import STEP_TYPES, ChangeStep, Step, StepContext
from playbooks.loader import step_types


@pytest.fixture
def registry() -> Iterator[dict[str, type[Step]]]:
    """STEP_TYPES as it was before the test defined its own step classes."""
    before = dict(STEP_TYPES)
    yield STEP_TYPES
    STEP_TYPES.clear()
    STEP_TYPES.update(before)


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_step_class_in_the_package_is_registered_under_its_type() -> None:
    found = {
        cls.model_fields["type"].default: cls
        for cls in _all_subclasses(Step)
        if cls.__module__.startswith("playbooks.steps.")
        and isinstance(cls.model_fields["type"].default, str)
    }
    assert len(found) >= 38
    assert {name: STEP_TYPES[name] for name in found} == found
    assert step_types() == dict(STEP_TYPES)


def test_every_module_of_the_steps_package_is_imported() -> None:
    names = {f"playbooks.steps.{m.name}" for m in pkgutil.iter_modules(playbooks.steps.__path__)}
    assert names <= set(sys.modules)
    assert {"playbooks.steps.shell", "playbooks.steps.executor"} <= names


def test_a_new_step_class_registers_itself(registry: dict[str, type[Step]]) -> None:
    class Probe(Step):
        type: Literal["test.probe"] = "test.probe"

    assert registry["test.probe"] is Probe
    assert not Probe.mutating and not Probe.can_check_done


def test_a_shared_base_without_a_type_is_not_registered(
    registry: dict[str, type[Step]],
) -> None:
    before = set(registry)

    class _Family(Step):
        shared: int = 1

    assert set(registry) == before


def test_a_type_name_is_taken_once(registry: dict[str, type[Step]]) -> None:
    with pytest.raises(TypeError, match=r"step type 'http\.check' is taken by HttpCheck"):

        class Other(Step):
            type: Literal["http.check"] = "http.check"


def test_the_base_class_alone_says_whether_a_step_changes_anything(
    registry: dict[str, type[Step]],
) -> None:
    with pytest.raises(TypeError, match="sets mutating"):

        class Sneaky(Step):
            type: Literal["test.sneaky"] = "test.sneaky"
            mutating: ClassVar[bool] = True

    with pytest.raises(TypeError, match="dangerous but does not derive from ChangeStep"):

        class Risky(Step):
            type: Literal["test.risky"] = "test.risky"
            dangerous: ClassVar[bool] = True

    assert "test.sneaky" not in registry and "test.risky" not in registry


def test_a_change_resumes_only_when_it_can_check_or_repeat(
    registry: dict[str, type[Step]],
) -> None:
    class Checks(ChangeStep):
        type: Literal["test.checks"] = "test.checks"

        async def already_done(self, ctx: StepContext) -> dict[str, Any] | None:
            return {"done": True}

    class Repeats(ChangeStep):
        type: Literal["test.repeats"] = "test.repeats"
        repeatable: ClassVar[bool] = True

    class NeedsAPerson(ChangeStep):
        type: Literal["test.person"] = "test.person"
        dangerous: ClassVar[bool] = True

    assert [(c.mutating, c.can_check_done) for c in (Checks, Repeats, NeedsAPerson)] == [
        (True, True),
        (True, True),
        (True, False),
    ]
    assert NeedsAPerson.dangerous


def test_every_registered_step_derives_from_step_or_change_step_by_what_it_does() -> None:
    for name, cls in STEP_TYPES.items():
        assert cls.mutating == issubclass(cls, ChangeStep), name


def test_host_steps_declare_the_environment_their_commands_need() -> None:
    for name in ("shell.run", "git.checkout", "compose.up", "postgres.restore", "nginx.reload"):
        assert {"PATH", "HOME"} <= STEP_TYPES[name].needs_env, name
    assert "DOCKER_HOST" in STEP_TYPES["compose.up"].needs_env
    assert "PGPASSWORD" in STEP_TYPES["postgres.dump"].needs_env
    assert "SSH_AUTH_SOCK" in STEP_TYPES["git.resolve_ref"].needs_env
    assert STEP_TYPES["http.check"].needs_env == frozenset()


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_the_playbook_model_imports_nothing_from_the_bot_or_slack() -> None:
    root = Path(playbooks.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert {"loader.py", "runner.py", "base.py"} <= {f.name for f in files}
    banned = ("bot", "handlers", "slack_bolt", "slack_sdk")
    found = [
        f"{path.relative_to(root)}: {module}"
        for path in files
        for module in _imported_modules(path)
        if module.split(".")[0] in banned
    ]
    assert found == []
