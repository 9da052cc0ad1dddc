"""How a plan shows a change of environment variables: only the variables that change, and a
secret's value as a short fingerprint, so an approver sees that it changes without seeing it."""

from __future__ import annotations

from playbooks.redact import fingerprint, is_secret_name, learn

UNSET = "(unset)"


def _shown(name: str, value: str | None) -> str:
    if value is None:
        return UNSET
    return fingerprint(value) if is_secret_name(name) else repr(value)


def shown_changes(before: list[dict[str, str]], after: list[dict[str, str]]) -> str:
    """`[NAME: old -> new, ...]` for each variable added, removed or changed, by name; the
    secret values on both sides are learned, so they vanish from any later text too."""
    old = {e["name"]: e["value"] for e in before}
    new = {e["name"]: e["value"] for e in after}
    learn(v for env in (old, new) for k, v in env.items() if is_secret_name(k))
    changed = [
        f"{name}: {_shown(name, old.get(name))} -> {_shown(name, new.get(name))}"
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
    return "[" + ", ".join(changed) + "]" if changed else "[no change]"
