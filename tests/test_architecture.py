"""The layering rules of docs/architecture.md, checked statically over the source with `ast`.

Every import counts, wherever it is written: at module level, inside a function, or under
`if TYPE_CHECKING:`. Each rule fails with the list of offenders as `path:line`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "playbooks")
MAX_LINES = 500

# THE AWS layer: the only modules that may import boto3 or botocore (at most two).
AWS_LAYER = frozenset({"playbooks.aws"})
SLACK_LAYER = "bot.slack"
# Attribute calls that are Slack Web API methods (slack_sdk names them family_method).
WEB_API_CALL = re.compile(
    r"^(?:(?:chat|files|views|usergroups|conversations|users|auth|reactions)_\w+|api_call)$"
)


@dataclass(frozen=True)
class Import:
    module: str  # the module imported, resolved to a first-party module where it is one
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every first-party module by its dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


@cache
def tree(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def relpath(name: str) -> str:
    return str(modules()[name].relative_to(ROOT))


def _absolute(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of a `from ... import` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if modules()[name].name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(name: str) -> Iterator[Import]:
    """Every module `name` imports; `from pkg import mod` counts as importing pkg.mod."""
    where = relpath(name)
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, where, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(name, node)
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                target = candidate if candidate in modules() else source
                yield Import(target, where, node.lineno)


def first_party_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {i.module for i in imports(name) if i.module in known and i.module != name}
        for name in known
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def offenders(lines: list[str]) -> str:
    return "\n  " + "\n  ".join(sorted(set(lines)))


# -- the rules


def test_the_strongly_connected_helper_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_slack_web_api_call_outside_bot_slack() -> None:
    found = []
    for name in modules():
        if in_package(name, SLACK_LAYER):
            continue
        for node in ast.walk(tree(name)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and WEB_API_CALL.match(node.func.attr)
            ):
                found.append(f"{relpath(name)}:{node.lineno} calls {node.func.attr}")
    assert not found, "Slack Web API calls outside bot/slack/:" + offenders(found)


def test_boto3_is_imported_only_by_the_aws_layer() -> None:
    assert len(AWS_LAYER) <= 2, "the AWS layer is at most two modules"
    found = [
        f"{i.where()} imports {i.module}"
        for name in modules()
        if name not in AWS_LAYER
        for i in imports(name)
        if in_package(i.module, "boto3") or in_package(i.module, "botocore")
    ]
    assert not found, "boto3/botocore imported outside the AWS layer:" + offenders(found)


def test_no_import_cycle_between_first_party_modules() -> None:
    cycles = strongly_connected(first_party_graph())
    assert not cycles, "import cycles (function-level and TYPE_CHECKING imports count):" + (
        offenders([" <-> ".join(c) for c in cycles])
    )


def test_diagnose_imports_nothing_from_rollback() -> None:
    found = [
        f"{i.where()} imports {i.module}"
        for name in modules()
        if in_package(name, "bot.diagnose")
        for i in imports(name)
        if in_package(i.module, "bot.rollback")
    ]
    assert not found, "bot.diagnose imports bot.rollback:" + offenders(found)


FORBIDDEN_IN_PLAYBOOKS = ("bot", "handlers", "slack_bolt", "slack_sdk")


def test_playbooks_import_nothing_from_bot_handlers_or_slack() -> None:
    found = [
        f"{i.where()} imports {i.module}"
        for name in modules()
        if in_package(name, "playbooks")
        for i in imports(name)
        if any(in_package(i.module, banned) for banned in FORBIDDEN_IN_PLAYBOOKS)
    ]
    assert not found, "playbooks/ imports from bot/, handlers/ or Slack:" + offenders(found)


def test_no_production_module_over_500_lines() -> None:
    found = []
    for name, path in modules().items():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            found.append(f"{relpath(name)}: {count} lines")
    assert not found, f"modules over {MAX_LINES} lines:" + offenders(found)


def test_every_module_has_a_docstring() -> None:
    found = [relpath(name) for name in modules() if ast.get_docstring(tree(name)) is None]
    assert not found, "modules without a docstring:" + offenders(found)


def test_end_to_end_tests_import_no_other_test_module() -> None:
    """Shared end-to-end set-up lives in tests/e2e/helpers.py, conftest.py and tests/testbed/."""
    found = []
    for path in sorted((ROOT / "tests" / "e2e").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if last.startswith("test_") or last == "conftest":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not found, "end-to-end tests importing test modules:" + offenders(found)
