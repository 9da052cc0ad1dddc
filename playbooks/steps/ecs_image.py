"""Which image an image rollback may put on a container: a tag or digest of the container's
current repository; a full reference only when it matches one of the target's `allowed_images`
glob patterns. Anything else is refused with the reason, before anything is planned."""

from __future__ import annotations

import fnmatch
import re

from playbooks.base import RequestRefused

# Docker's grammar for a tag, and a content digest
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def repository(image: str) -> str:
    """'reg.io/team/api:v3' -> 'reg.io/team/api'; a digest or a registry port stays out of it."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def image_for(ref: str, current: str, allowed: list[str]) -> str:
    """The full image `ref` names for a container now running `current`; RequestRefused when
    it is neither of the container's repository nor allowed by the target."""
    ref = ref.strip()
    repo = repository(current)
    digest = ref.removeprefix("@")
    if DIGEST.match(digest):
        return f"{repo}@{digest}"
    tag = ref.removeprefix(":")
    if TAG.match(tag):
        return f"{repo}:{tag}"
    if "/" in ref and repository(ref) == repo:
        return ref  # the container's own repository, written out in full
    if any(fnmatch.fnmatchcase(ref, pattern) for pattern in allowed):
        return ref
    patterns = ", ".join(allowed) or "none set"
    raise RequestRefused(
        f"image {ref!r} is not a tag or digest of {repo}, and the target's allowed_images"
        f" ({patterns}) do not match it"
    )
