"""The /rollback form: building and opening the modal, the target picker's type-ahead, and
validating a submission.

A catalog that fits a static select (100 options) gets one; a larger one gets an external select
whose options come from `target_options` as the person types (name and description searched)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.catalog import Catalog
from bot.services import Services
from bot.slack.ids import ActionId, CallbackId
from bot.slack.limits import OPTION_TEXT, OPTIONS
from bot.slack.text import truncate
from bot.slash import MAX_REASON, REF

SEVERITIES = ["critical", "high", "medium", "low"]
# The element ids whose state holds the chosen target: the static select, or the type-ahead.
TARGET_ELEMENTS = ("value", ActionId.TARGET_SEARCH.value)


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": truncate(text, OPTION_TEXT)}, "value": value}


def _target_option(catalog: Catalog, name: str) -> dict[str, Any]:
    return _option(name, f"{name} — {catalog.targets[name].playbook.name}")


def target_options(catalog: Catalog, typed: str) -> list[dict[str, Any]]:
    """The targets whose name, description or playbook hold every word typed, names that start
    with what was typed first; at most what one answer may carry."""
    words = typed.lower().split()
    found = []
    for name, target in catalog.targets.items():
        haystack = f"{name} {target.settings.description} {target.playbook.name}".lower()
        if all(word in haystack for word in words):
            found.append((not name.lower().startswith(typed.lower().strip()), name))
    return [_target_option(catalog, name) for _, name in sorted(found)[:OPTIONS]]


async def open_rollback_modal(
    services: Services,
    trigger_id: str,
    origin_channel: str = "",
    prefill: dict[str, str] | None = None,
) -> None:
    await services.slack.open_view(
        trigger_id, rollback_view(services, origin_channel, prefill or {})
    )


async def open_further_modal(
    services: Services, trigger_id: str, origin_channel: str, failed_id: str
) -> None:
    """After a failure: the form pre-filled so the user picks an older ref."""
    record = await services.store.get(failed_id)
    prefill = {}
    if record is not None and record.kind == "rollback":
        prefill = {
            "target": record.data.get("target", ""),
            "reason": f"roll back further after {record.id} failed",
        }
    await open_rollback_modal(services, trigger_id, origin_channel, prefill)


def target_picker(catalog: Catalog, prefill: str) -> dict[str, Any]:
    """A static select of every target, or a type-ahead when there are more than it holds;
    `prefill` (a target name) is chosen already either way."""
    names = sorted(catalog.targets)
    picker: dict[str, Any] = {"placeholder": {"type": "plain_text", "text": "Target"}}
    if len(names) <= OPTIONS:
        picker |= {
            "type": "static_select",
            "action_id": "value",
            "options": [_target_option(catalog, n) for n in names],
        }
    else:
        picker |= {
            "type": "external_select",
            "action_id": ActionId.TARGET_SEARCH.value,
            "min_query_length": 0,
            "placeholder": {"type": "plain_text", "text": "Type a name or a word of it"},
        }
    if prefill in catalog.targets:
        picker["initial_option"] = _target_option(catalog, prefill)
    return picker


def rollback_view(services: Services, origin_channel: str, prefill: dict[str, str]) -> dict:
    target_select = target_picker(services.catalog, prefill.get("target", ""))
    severity = {
        "type": "static_select",
        "action_id": "value",
        "options": [_option(s, s) for s in SEVERITIES],
        "initial_option": _option("high", "high"),
    }
    meta = json.dumps({"channel": origin_channel, "diagnosis": prefill.get("diagnosis", "")})
    return {
        "type": "modal",
        "callback_id": CallbackId.ROLLBACK_MODAL.value,
        "title": {"type": "plain_text", "text": "Emergency rollback"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": meta,
        "blocks": [
            {
                "type": "input",
                "block_id": "target",
                "element": target_select,
                "label": {"type": "plain_text", "text": "Target (method comes from its playbook)"},
            },
            {
                "type": "input",
                "block_id": "ref",
                "label": {"type": "plain_text", "text": "Roll back to"},
                "hint": {
                    "type": "plain_text",
                    "text": "previous, a task-definition revision, an image tag or a git ref",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "initial_value": prefill.get("ref", "previous"),
                    "max_length": 128,
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": MAX_REASON,
                    "initial_value": truncate(prefill.get("reason", ""), MAX_REASON),
                },
            },
            {
                "type": "input",
                "block_id": "severity",
                "element": severity,
                "label": {"type": "plain_text", "text": "Severity"},
            },
        ],
    }


@dataclass
class ModalRequest:
    target: str
    ref: str
    reason: str
    severity: str
    origin_channel: str
    diagnosis: str


def parse_submission(services: Services, view: dict[str, Any]) -> ModalRequest | dict[str, str]:
    """The request, or the inline errors to show (block_id -> message)."""
    values = view.get("state", {}).get("values", {})

    def value(block: str) -> str:
        elements = values.get(block, {})
        elements = elements if isinstance(elements, dict) else {}
        element = next((elements[k] for k in TARGET_ELEMENTS if k in elements), {})
        if not isinstance(element, dict):
            return ""
        selected = element.get("selected_option") or {}
        raw = selected.get("value") if isinstance(selected, dict) else None
        raw = raw if raw is not None else element.get("value")
        return raw.strip() if isinstance(raw, str) else ""

    errors: dict[str, str] = {}
    target, ref, reason, severity = (
        value("target"),
        value("ref") or "previous",
        value("reason"),
        value("severity") or "high",
    )
    if target not in services.catalog.targets:
        errors["target"] = "Pick a target from the list."
    if not REF.match(ref):
        errors["ref"] = "Use previous, a revision number, an image tag or a git ref."
    if not reason:
        errors["reason"] = "Say why, for the announcement and the report."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"Keep it under {MAX_REASON} characters."
    if severity not in SEVERITIES:
        errors["severity"] = "Pick a severity."
    if errors:
        return errors
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    return ModalRequest(
        target,
        ref,
        reason,
        severity,
        str(meta.get("channel", ""))[:40],
        str(meta.get("diagnosis", ""))[:40],
    )
