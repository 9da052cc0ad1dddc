"""Each redaction test starts with nothing learned, so a rule is proven by itself."""

from __future__ import annotations

import pytest

from playbooks import redact


@pytest.fixture(autouse=True)
def fresh_learned(monkeypatch: pytest.MonkeyPatch) -> redact._Learned:
    learned = redact._Learned()
    monkeypatch.setattr(redact, "LEARNED", learned)
    return learned
