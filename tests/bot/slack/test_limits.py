"""Text kept within Slack's limits, counted in UTF-16, never cut silently, fences closed."""

from __future__ import annotations

from bot.slack.limits import (
    FENCE,
    close_fences,
    cut,
    cut_start,
    fit_items,
    more,
    split_text,
    utf16_len,
)

ROCKET = "\N{ROCKET}"


def test_lengths_are_utf16_code_units() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len(ROCKET) == 2 and len(ROCKET) == 1
    assert utf16_len("é") == 1


def test_cut_counts_utf16_and_never_splits_an_emoji() -> None:
    assert cut("abc", 3) == "abc"
    shortened = cut(ROCKET * 10, 7)
    assert utf16_len(shortened) <= 7 and shortened.endswith("…")
    assert shortened == ROCKET * 3 + "…"
    assert cut("a" * 10, 5) == "aaaa…"


def test_cut_start_keeps_the_end() -> None:
    assert cut_start("0123456789", 5) == "…6789"
    assert utf16_len(cut_start(ROCKET * 10, 7)) <= 7
    assert cut_start("short", 10) == "short"


def test_close_fences() -> None:
    assert close_fences(f"{FENCE}x") == f"{FENCE}x\n{FENCE}"
    assert close_fences(f"{FENCE}x{FENCE}") == f"{FENCE}x{FENCE}"


def test_fit_items_says_how_many_were_left_out() -> None:
    items = [f"step {i}: " + "x" * 50 for i in range(100)]
    fitted = fit_items("*Plan*", items, limit=1000, noun="more steps")
    assert utf16_len(fitted.text) <= 1000
    assert fitted.omitted > 0 and not fitted.complete
    assert fitted.text.endswith(more(fitted.omitted, "more steps"))
    shown = fitted.text.count("step ")
    assert shown + fitted.omitted == 100
    assert "and" in fitted.text and "full text in the thread" in fitted.text


def test_fit_items_keeps_everything_that_fits() -> None:
    fitted = fit_items("head", ["a", "b"], limit=100)
    assert fitted.text == "head\na\nb" and fitted.complete


def test_fit_items_cuts_a_single_huge_item_and_closes_its_fence() -> None:
    fitted = fit_items("*Errors*", [FENCE + "e" * 5000 + FENCE], limit=500)
    assert utf16_len(fitted.text) <= 500
    assert fitted.text.count(FENCE) % 2 == 0
    assert fitted.omitted == 0  # shown, though cut


def test_fit_items_counts_emoji_as_two() -> None:
    fitted = fit_items("", [ROCKET * 40, ROCKET * 40], limit=100)
    assert utf16_len(fitted.text) <= 100 and fitted.omitted == 1


def test_split_text_keeps_all_lines_and_balances_fences_per_piece() -> None:
    lines = ["*Checklist*"] + [f"line {i} " + "y" * 80 for i in range(40)]
    text = "\n".join([*lines[:10], FENCE, *lines[10:30], FENCE, *lines[30:]])
    pieces, omitted = split_text(text, limit=800, most=10)
    assert omitted == 0 and len(pieces) > 3
    assert all(utf16_len(p) <= 800 for p in pieces)
    assert all(p.count(FENCE) % 2 == 0 for p in pieces)
    joined = "\n".join(pieces)
    assert all(f"line {i} " in joined for i in range(40))


def test_split_text_says_what_did_not_fit() -> None:
    text = "\n".join(f"line {i} " + "z" * 90 for i in range(100))
    pieces, omitted = split_text(text, limit=1000, most=2)
    assert len(pieces) == 2 and omitted > 0
    assert pieces[-1].endswith(more(omitted, "more lines"))
    assert all(utf16_len(p) <= 1000 for p in pieces)
