"""The audit log's hash chain: how an entry is hashed, and how a whole log is checked.

Each entry carries `prev`, the hash of the entry appended before it, and `hash`:

    hash = sha256(prev + "\\n" + str(seq) + "\\n" + sha256(body))

(hex digests) where `body` is the canonical JSON of the entry's own fields (`body()`). The
first entry links to GENESIS. Both backends append under their write lock (an SQLite write
transaction; a Redis Lua script, where bot/store/lua/sha256.lua hashes the short link text and
the writer passes the body's digest), so concurrent replicas extend one chain.

Changing, removing or reordering an entry breaks a link that `verify` finds; cutting entries
off the end does not, unless a head recorded elsewhere is given (`expect_head`). Nothing is
secret: whoever can write the store can also rebuild every hash after an edit, which again
only a head recorded elsewhere exposes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic_core import to_json

from bot.store.base import AuditEntry

GENESIS = "0" * 64  # the `prev` of the first chained entry


def body(entry: AuditEntry) -> str:
    """The canonical text of the fields an entry's hash covers (seq and the links aside).

    Values are taken as they read back from the store (pydantic's JSON, parsed again), so the
    text is the same when an entry is written and when it is verified: keys sorted, no spaces,
    ASCII only.
    """
    fields = {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "detail": entry.detail,
    }
    stored = json.loads(to_json(fields))
    return json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(text: str) -> str:
    """The sha256 hex digest of an entry's body."""
    return hashlib.sha256(text.encode()).hexdigest()


def link(prev: str, seq: int, text: str) -> str:
    """The hash of the entry numbered `seq` whose body is `text`, following `prev`."""
    return hashlib.sha256(f"{prev}\n{seq}\n{digest(text)}".encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What checking a log found: `problem` is None when the chain is intact."""

    count: int  # chained entries checked
    head_seq: int  # the last chained entry (0: none)
    head: str  # its hash (GENESIS: none)
    unchained: int  # entries written before the log was chained, not covered
    problem: str | None = None
    seq: int | None = None  # the entry the problem names

    @property
    def intact(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            where = "" if self.seq is None else f" at entry {self.seq}"
            return f"audit log TAMPERED{where}: {self.problem}"
        older = f" ({self.unchained} older unchained entries not covered)" if self.unchained else ""
        return (
            f"audit log intact: {self.count} entries, head entry {self.head_seq} "
            f"sha256:{self.head}{older}"
        )


def _broken_link(entry: AuditEntry, prior_seq: int, before: AuditEntry | None) -> tuple[str, int]:
    """Name the entry a broken link points at: a gap in the numbers means entries were removed."""
    if entry.seq > prior_seq + 1:
        first, last = prior_seq + 1, entry.seq - 1
        missing = str(first) if first == last else f"{first}..{last}"
        return f"removed (entry {missing} missing; entry {entry.seq} links past it)", first
    if before is None:
        return "an earlier chained entry was removed (it does not link to the start)", entry.seq
    return (
        f"changed, replaced or moved (entry {entry.seq} does not link to it: it was rehashed, "
        "or entries around it were removed or reordered)",
        before.seq,
    )


def verify(entries: Iterable[AuditEntry], expect_head: str | None = None) -> Verdict:
    """Check a whole log, oldest first; stops at the first entry that breaks the chain.

    `expect_head` is a head hash recorded earlier, elsewhere: it must still be in the chain,
    which shows nothing was cut off the end since (or rewritten before it).
    """
    count, unchained = 0, 0
    before: AuditEntry | None = None  # the last chained entry
    seen_heads: set[str] = set()

    def verdict(problem: str | None = None, seq: int | None = None) -> Verdict:
        head_seq, head = (0, GENESIS) if before is None else (before.seq, before.hash)
        return Verdict(count, head_seq, head, unchained, problem, seq)

    prior_seq = 0  # the entry listed just before, chained or not
    for entry in entries:
        if entry.seq <= prior_seq:
            return verdict(f"reordered (it comes after entry {prior_seq})", entry.seq)
        if not entry.hash:
            if before is None:
                unchained, prior_seq = unchained + 1, entry.seq  # older than the chain
                continue
            return verdict(
                "carries no chain link (written outside Rollbot, or unlinked)", entry.seq
            )
        if link(entry.prev, entry.seq, body(entry)) != entry.hash:
            return verdict("changed (its content or number no longer matches its hash)", entry.seq)
        if entry.prev != (GENESIS if before is None else before.hash):
            return verdict(*_broken_link(entry, prior_seq, before))
        before, count, prior_seq = entry, count + 1, entry.seq
        seen_heads.add(entry.hash)
    if expect_head is not None and expect_head.removeprefix("sha256:") not in seen_heads:
        return verdict(
            f"the recorded head {expect_head} is no longer in the chain: entries were cut off "
            "the end, or the chain was rewritten"
        )
    return verdict()
