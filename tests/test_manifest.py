"""manifest.yml validates against Slack's published schema and asks for no more than needed.

Slack's manifest schemas are not part of this repository: set ROLLBOT_SLACK_SCHEMAS to a folder
holding manifest.schema.1.0.0.json and manifest.schema.2.0.0.json to run the schema tests.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_VARIABLE = "ROLLBOT_SLACK_SCHEMAS"
SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "files:write",
    "channels:join",
    "usergroups:read",
}


def schema_for(manifest: dict[str, Any]) -> dict[str, Any]:
    folder = os.environ.get(SCHEMAS_VARIABLE)
    if not folder:
        pytest.skip(f"{SCHEMAS_VARIABLE} is not set: no copy of Slack's manifest schemas to check")
    major = (manifest.get("_metadata") or {}).get("major_version")
    name = "manifest.schema.2.0.0.json" if major == 2 else "manifest.schema.1.0.0.json"
    path = Path(folder) / name
    if not path.is_file():  # set but wrong: a mistake to report, not a reason to skip
        pytest.fail(f"{SCHEMAS_VARIABLE}={folder} holds no {name}", pytrace=False)
    return json.loads(path.read_text())


@pytest.fixture
def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates(manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, schema_for(manifest))


def test_manifest_contents(manifest: dict[str, Any]) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/rollback", "/diagnose"}
    assert all(c["usage_hint"] and c["url"].endswith("/slack/events") for c in commands.values())
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]
    # answers that cannot be given in a channel go to the person as a DM
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: m["features"]["slash_commands"][0].pop("description"),
        lambda m: m["features"]["slash_commands"][0].update(command="rollback"),
        lambda m: m["settings"]["interactivity"].update(request_url="ftp://x"),
        lambda m: m["settings"].update(unknown_setting=True),
    ],
)
def test_schema_catches_broken_manifests(manifest: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(manifest)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema_for(broken))
