"""The form's target picker: every target of a small catalog in a static select, a type-ahead
for a large one, searching names and descriptions, and any target pre-filled either way."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.catalog import Catalog, load_catalog
from bot.rollback.modal import parse_submission, target_options, target_picker
from tests.testbed.block_kit import check_block_kit


def catalog_of(tmp_path: Path, count: int) -> Catalog:
    targets = {
        f"svc-{i:03d}": {
            "playbook": "ecs-revision",
            "description": f"shard {i} of the {'kestrel' if i == 142 else 'common'} fleet",
            "cluster": "c",
            "service": f"s{i}",
            "region": "eu-central-1",
        }
        for i in range(count)
    }
    path = tmp_path / "rollbot.yml"
    path.write_text(yaml.safe_dump({"approvers": ["U0LEAD"], "channel": "C0I", "targets": targets}))
    return load_catalog(path)


def in_a_modal(picker: dict) -> dict:
    block = {"type": "input", "block_id": "target", "label": {"type": "plain_text", "text": "T"}}
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Rollback"},
        "blocks": [{**block, "element": picker}],
    }
    return {"view": view}


def test_a_catalog_of_100_is_one_static_select_and_any_target_prefills(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, 100)
    for name in ("svc-000", "svc-099"):
        picker = target_picker(catalog, name)
        assert picker["type"] == "static_select" and len(picker["options"]) == 100
        assert picker["initial_option"]["value"] == name
        assert check_block_kit(in_a_modal(picker)) == ""


def test_a_larger_catalog_gets_a_type_ahead_and_any_target_prefills(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, 150)
    for name in ("svc-000", "svc-142", "svc-149"):
        picker = target_picker(catalog, name)
        assert picker["type"] == "external_select" and "options" not in picker
        assert picker["initial_option"]["value"] == name
        assert check_block_kit(in_a_modal(picker)) == ""
    assert "initial_option" not in target_picker(catalog, "no-such-target")


def test_type_ahead_searches_names_and_descriptions(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, 150)
    assert [o["value"] for o in target_options(catalog, "KESTREL")] == ["svc-142"]
    found = [o["value"] for o in target_options(catalog, "fleet shard 14")]
    assert found == ["svc-014", "svc-114", *(f"svc-{i}" for i in range(140, 150))]
    assert len(target_options(catalog, "")) == 100  # at most one answer's worth
    assert target_options(catalog, "nothing matches this") == []


def test_a_submission_from_the_type_ahead_is_read(tmp_path: Path) -> None:
    class FakeServices:
        pass

    services = FakeServices()
    services.catalog = catalog_of(tmp_path, 150)  # type: ignore[attr-defined]
    option = target_picker(services.catalog, "svc-142")["initial_option"]  # type: ignore[attr-defined]
    values = {
        "target": {
            "rollback_target_search": {"type": "external_select", "selected_option": option}
        },
        "ref": {"value": {"type": "plain_text_input", "value": "previous"}},
        "reason": {"value": {"type": "plain_text_input", "value": "5xx"}},
    }
    parsed = parse_submission(services, {"state": {"values": values}})  # type: ignore[arg-type]
    assert not isinstance(parsed, dict) and parsed.target == "svc-142"
