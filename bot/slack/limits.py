"""Slack's message limits and the helpers that keep text within them without cutting silently.

Slack counts lengths in UTF-16 code units (an emoji outside the Basic Multilingual Plane counts
two), so every length here is counted that way. A text that does not fit is cut at a line,
says how much was left out ("… and N more — full text in the thread") and keeps its code
fences closed; the caller attaches the full text to the thread as a file."""

from __future__ import annotations

from dataclasses import dataclass

SECTION_TEXT = 3_000  # a section block's text
FIELD_TEXT = 2_000  # one of a section's fields
MESSAGE_TEXT = 40_000  # chat.postMessage `text`
MESSAGE_BLOCKS = 50
BUTTON_VALUE = 2_000
OPTION_TEXT = 75
OPTIONS = 100  # a static select, or one answer to a type-ahead
FENCE = "```"
ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    """The length Slack sees."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-16 units, ending in "…" when shortened; never splits an
    emoji's surrogate pair."""
    if utf16_len(text) <= limit:
        return text
    room, out = limit - 1, []
    for char in text:
        room -= 2 if ord(char) > 0xFFFF else 1
        if room < 0:
            break
        out.append(char)
    return "".join(out) + ELLIPSIS


def cut_start(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-16 units keeping its end (the end of an output matters
    most), starting with "…" when shortened."""
    if utf16_len(text) <= limit:
        return text
    return ELLIPSIS + cut(text[::-1], limit)[-2::-1]


IN_THREAD = "full text in the thread"


def more(count: int, noun: str = "more", where: str = IN_THREAD) -> str:
    """The line that says what a message leaves out, and where to find it."""
    return f"{ELLIPSIS} and {count} {noun} — {where}"


def no_fence(text: str) -> str:
    """Text shown inside a message that must not open or close a code block."""
    return text.replace(FENCE, "'''")


def close_fences(text: str) -> str:
    """`text` with an unclosed code fence closed."""
    return text + ("\n" + FENCE if text.count(FENCE) % 2 else "")


@dataclass
class Fitted:
    """A text cut to fit, and how many of its items (lines, steps) were left out."""

    text: str
    omitted: int = 0

    @property
    def complete(self) -> bool:
        return self.omitted == 0


def fit_items(
    head: str,
    items: list[str],
    limit: int = SECTION_TEXT,
    noun: str = "more",
    sep: str = "\n",
    most: int | None = None,
    where: str = IN_THREAD,
) -> Fitted:
    """`head` then as many whole `items` (at most `most`) as fit in `limit`, then the "and N
    more" line for the rest; an item too long on its own is cut. Fences stay balanced."""
    text, shown = head, 0
    for i, item in enumerate(items):
        if most is not None and i >= most:
            break
        tail = more(len(items) - i - 1, noun, where) if i + 1 < len(items) else ""
        candidate = text + (sep if text else "") + item
        reserve = utf16_len(sep + tail) if tail else 0
        if utf16_len(close_fences(candidate)) + reserve <= limit:
            text, shown = candidate, shown + 1
            continue
        if shown == 0:  # not even one whole item: show the start of the first
            room = limit - utf16_len(text + sep + more(len(items), noun, where)) - len(FENCE) - 2
            if room > 20:
                text, shown = text + (sep if text else "") + cut(item, room), 1
        break
    text = close_fences(text)
    omitted = len(items) - shown
    if omitted:
        text += ("\n" if text else "") + more(omitted, noun, where)
    return Fitted(text, omitted)


def split_text(
    text: str, limit: int = SECTION_TEXT, most: int = 6, where: str = IN_THREAD
) -> tuple[list[str], int]:
    """`text` split at line ends into at most `most` pieces of at most `limit` units each; a
    code fence open at a split is closed and reopened in the next piece. Returns the pieces and
    how many lines did not fit in them (the last piece then ends in the "and N more" line)."""
    lines = text.split("\n")
    pieces: list[str] = []
    current: list[str] = []
    in_fence = False
    reopen = ""
    budget = limit - utf16_len(more(len(lines), "more lines", where)) - len(FENCE) - 2
    for index, line in enumerate(lines):
        line = cut(line, budget)
        trial = "\n".join([*current, line])
        closing = "\n" + FENCE if (in_fence ^ (line.count(FENCE) % 2 == 1)) else ""
        if current and utf16_len(trial + closing) > budget:
            pieces.append("\n".join(current) + ("\n" + FENCE if in_fence else ""))
            if len(pieces) == most:
                omitted = len(lines) - index
                pieces[-1] += "\n" + more(omitted, "more lines", where)
                return pieces, omitted
            current = [reopen] if in_fence else []
        current.append(line)
        if line.count(FENCE) % 2:
            in_fence = not in_fence
            reopen = FENCE
    pieces.append(close_fences("\n".join(current)))
    return pieces, 0


def sections(
    text: str, most: int = 6, where: str = IN_THREAD
) -> tuple[list[dict[str, object]], int]:
    """`text` as section blocks within Slack's limits (see split_text), and the lines left out."""
    pieces, omitted = split_text(text, SECTION_TEXT, most, where)
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in pieces if piece
    ]
    return blocks, omitted


def section_block(text: str) -> dict[str, object]:
    """One section of mrkdwn, cut (saying so) to fit; fences closed."""
    fitted = text if utf16_len(text) <= SECTION_TEXT else cut(text, SECTION_TEXT - 4)
    return {"type": "section", "text": {"type": "mrkdwn", "text": close_fences(fitted)}}
