"""Evidence from the task-definition history: the last revisions and what changed between them
(images and environment; secret values never)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from bot.diagnose.sources.context import SourceContext, iso
from bot.diagnose.sources.ecs import describe_service
from playbooks import aws
from playbooks.redact import HIDDEN, Redactor
from playbooks.steps.ecs_common import short_name

ACTIONS = ("ecs:DescribeServices", "ecs:ListTaskDefinitions", "ecs:DescribeTaskDefinition")
HISTORY = 5  # task-definition revisions shown


async def _revisions(ctx: SourceContext, family: str) -> list[int]:
    """Revision numbers of the family. Sorted here: moto ignores `sort` and `maxResults`."""
    arns = await aws.paginate(
        ctx.client("ecs"),
        "list_task_definitions",
        "taskDefinitionArns",
        max_items=500,
        familyPrefix=family,
        sort="DESC",
    )
    found: set[int] = set()
    for arn in arns:
        fam, _, rev = short_name(arn).rpartition(":")
        if fam == family and rev.isdigit():  # a prefix also matches "api-worker"
            found.add(int(rev))
    return sorted(found)


async def task_definitions(ctx: SourceContext) -> dict[str, Any]:
    service = await describe_service(ctx)
    family, _, current_text = short_name(service["taskDefinition"]).rpartition(":")
    current = int(current_text)
    shown = sorted(set((await _revisions(ctx, family))[-HISTORY:]) | {current})
    ecs = ctx.client("ecs")
    described = await asyncio.gather(
        *(aws.call(ecs, "describe_task_definition", taskDefinition=f"{family}:{r}") for r in shown)
    )
    history = [_revision(d["taskDefinition"], current, ctx.redactor) for d in described]
    for older, newer in itertools.pairwise(history):
        newer["changes"] = _changes(older, newer, ctx.redactor)
    return {"family": family, "current_revision": current, "history": history[::-1]}


def _revision(td: dict[str, Any], current: int, redactor: Redactor) -> dict[str, Any]:
    registered = td.get("registeredAt")
    return {
        "revision": td["revision"],
        "current": td["revision"] == current,
        "status": td.get("status"),
        "registered_at": iso(registered) or "not reported",
        "containers": [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "environment": redactor.environment(c.get("environment", [])),
                # only names: a secret's valueFrom is where it lives, and nobody needs it here
                "secrets": [{"name": s.get("name"), "value": HIDDEN} for s in c.get("secrets", [])],
            }
            for c in td.get("containerDefinitions", [])
        ],
        "changes": [],
    }


def _changes(older: dict[str, Any], newer: dict[str, Any], redactor: Redactor) -> list[str]:
    """What differs from the revision before: images and environment (never secret values)."""
    out = []
    before = {c["name"]: c for c in older["containers"]}
    for c in newer["containers"]:
        old = before.get(c["name"])
        if old is None:
            out.append(f"container {c['name']} added")
            continue
        if old["image"] != c["image"]:
            out.append(f"{c['name']}: image {old['image']} -> {c['image']}")
        old_env = {e["name"]: e["value"] for e in old["environment"]}
        new_env = {e["name"]: e["value"] for e in c["environment"]}
        for name in sorted(old_env.keys() | new_env.keys()):
            if old_env.get(name) == new_env.get(name):
                continue
            if redactor.is_secret_name(name):
                out.append(f"{c['name']}: env {name} changed")
            else:
                out.append(f"{c['name']}: env {name}: {old_env.get(name)} -> {new_env.get(name)}")
    return out
