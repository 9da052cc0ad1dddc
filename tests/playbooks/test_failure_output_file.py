"""A failing command's output reaches the "full text" file in the thread whole up to 16 kB,
through the real runner and a real SQLite journal; beyond that the file says what it left out.
The Slack message shows only the end of it, within its limit."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bot.catalog import load_catalog
from bot.rollback import messaging as msg
from bot.rollback.execution import Execution
from bot.store.sqlite import SqliteStore
from playbooks.runner import PlaybookRunner, RunResult, step_context
from playbooks.steps import shell  # noqa: F401  (registers the step types)

LINE = "line {:04d}: worker pool refused the job (queue depth over the limit)"


def failing_target(tmp_path: Path, lines: int) -> object:
    script = (
        "import sys\n"
        f"for i in range({lines}): print({LINE!r}.format(i))\n"
        "print('the last words of the command')\n"
        "sys.exit(3)"
    )
    step = {"id": "switch", "type": "shell.run", "name": "Switch the workers back"}
    step["argv"] = ["python3", "-c", script]
    playbook = {"name": "loud", "description": "a change that fails loudly", "steps": [step]}
    playbook["params"] = {"app_dir": {"type": "str", "required": True}}
    (tmp_path / "loud.yml").write_text(yaml.safe_dump(playbook))
    entry = {"playbook": str(tmp_path / "loud.yml"), "app_dir": str(tmp_path)}
    catalog = {"approvers": ["U0LEAD"], "channel": "C0INC", "targets": {"t": entry}}
    (tmp_path / "rollbot.yml").write_text(yaml.safe_dump(catalog))
    return load_catalog(tmp_path / "rollbot.yml").targets["t"]


async def run_and_journal(tmp_path: Path, tgt: object) -> tuple[RunResult, dict]:
    store = SqliteStore(tmp_path / "rollbot.db")
    await store.connect()
    try:
        result = await PlaybookRunner(store, "rb-1").run(tgt.steps, step_context(tgt, "x"))  # type: ignore[attr-defined]
        journal = await store.journal("rb-1")
    finally:
        await store.close()
    (end,) = [e for e in journal if e.event == "end"]
    return result, end.output


def full_text_file(result: RunResult) -> str:
    """The failure output file the execution uploads into the thread."""
    files = Execution._full_texts(SimpleNamespace(id="rb-1"), result, "", True)  # type: ignore[arg-type]
    (content,) = [text for name, _title, text in files if name == "failed-output-rb-1.txt"]
    return content


@pytest.mark.parametrize("lines", [74, 295])  # about 5 kB and 20 kB of output
async def test_failure_output_file_holds_the_output(tmp_path: Path, lines: int) -> None:
    printed = "".join(LINE.format(i) + "\n" for i in range(lines))
    printed += "the last words of the command\n"
    assert 5000 <= len(printed) <= 5100 if lines < 100 else 20000 <= len(printed) <= 20500
    result, kept = await run_and_journal(tmp_path, failing_target(tmp_path, lines))
    assert not result.ok and result.failed_step is not None
    assert "exited 3" in result.error
    failed = result.failed_step.output
    text = full_text_file(result)

    if lines < 100:  # whole: every line, in order, nothing left out, in the journal and the file
        assert printed.strip() in kept["stdout"] and printed.strip() in text
        assert "left out" not in text
    else:  # the beginning and the end, and how much is missing between them
        gap = re.search(r"\[\.\.\. (\d+) characters left out \.\.\.\]", text)
        assert gap is not None, text[:200]
        assert LINE.format(0) in text and "the last words of the command" in text
        assert LINE.format(80) not in text  # from between the kept 4 kB head and 12 kB tail
        missing = [i for i in range(lines) if LINE.format(i) not in text]
        cut_lines = len(missing) * (len(LINE.format(0)) + 1)
        assert abs(int(gap.group(1)) - cut_lines) < 2 * len(LINE.format(0))
        assert 16 * 1024 <= len(text) <= 16 * 1024 + 400
    assert text.startswith("python3 -c ")  # the command comes first

    # the message itself shows only the end, within its limit, and says where the rest is
    shown = msg.output_tail(failed)
    assert len(shown) <= msg.OUTPUT_SHOWN + 1 and "the last words of the command" in shown
    assert LINE.format(0) not in shown
    note = msg.output_note(failed)
    assert re.fullmatch(r"\(the last 1,200 of [\d,]+ characters — full text in the thread\)", note)
