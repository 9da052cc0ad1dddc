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


class _Walk:
    """One pass over a log, oldest first, remembering what a broken link needs to be named."""

    def __init__(self, entries: list[AuditEntry]) -> None:
        self.entries = entries
        self.listed = {e.seq for e in entries}
        self.hashes = {e.hash for e in entries if e.hash}
        self.count = self.unchained = 0
        self.before: AuditEntry | None = None  # the last chained entry that checked out
        self.prior_seq = 0  # the entry listed just before, chained or not

    def verdict(self, problem: str | None = None, seq: int | None = None) -> Verdict:
        last = self.before
        head_seq, head = (0, GENESIS) if last is None else (last.seq, last.hash)
        return Verdict(self.count, head_seq, head, self.unchained, problem, seq)

    def check(self, entry: AuditEntry) -> tuple[str, int] | None:
        """The problem with the next entry and the entry it names, or None."""
        if entry.seq <= self.prior_seq:
            return f"reordered (listed after entry {self.prior_seq})", self.prior_seq
        if not entry.hash:
            if self.before is None:  # older than the chain
                self.unchained, self.prior_seq = self.unchained + 1, entry.seq
                return None
            return "carries no chain link (written outside Rollbot, or unlinked)", entry.seq
        if link(entry.prev, entry.seq, body(entry)) != entry.hash:
            return self._unhashed(entry)
        if entry.prev != (GENESIS if self.before is None else self.before.hash):
            return self._unlinked(entry)
        self.before, self.count, self.prior_seq = entry, self.count + 1, entry.seq
        return None

    def _unhashed(self, entry: AuditEntry) -> tuple[str, int]:
        """An entry whose hash does not match: moved whole from another place, or changed."""
        text = body(entry)
        for origin in sorted(self.listed - {entry.seq}):
            if link(entry.prev, origin, text) == entry.hash:
                return f"reordered (it was written as entry {origin})", entry.seq
        return "changed (its content no longer matches its hash)", entry.seq

    def _unlinked(self, entry: AuditEntry) -> tuple[str, int]:
        """An intact entry that does not link to the one before it: name what is missing."""
        gap = range(self.prior_seq + 1, entry.seq)
        if gap:
            moved = [seq for seq in gap if seq in self.listed]
            if moved:
                return f"reordered (listed after entry {entry.seq})", moved[0]
            missing = str(gap[0]) if len(gap) == 1 else f"{gap[0]}..{gap[-1]}"
            return f"removed (entry {missing} missing; entry {entry.seq} links past it)", gap[0]
        if self.before is None:
            return "does not link to the start: an earlier entry was removed or unlinked", entry.seq
        if entry.prev == GENESIS:
            return "starts a new chain (the stored head was lost or reset)", entry.seq
        return (
            f"changed and rehashed, or replaced (entry {entry.seq} does not link to it)",
            self.before.seq,
        )


def verify(entries: Iterable[AuditEntry], expect_head: str | None = None) -> Verdict:
    """Check a whole log, oldest first; stops at the first entry that breaks the chain.

    `expect_head` is a head hash recorded earlier, elsewhere: it must still be in the chain,
    which shows nothing was cut off the end since (nor the chain rewritten before it).
    """
    walk = _Walk(list(entries))
    for entry in walk.entries:
        found = walk.check(entry)
        if found is not None:
            return walk.verdict(*found)
    if expect_head is not None and expect_head.removeprefix("sha256:") not in walk.hashes:
        return walk.verdict(
            f"the recorded head {expect_head} is not in the chain: entries were cut off the "
            "end, or the chain was rewritten"
        )
    return walk.verdict()
