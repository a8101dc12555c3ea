"""Every fault x {complete, stream} x {OpenAI, Anthropic, Gemini wire}: the
outcome is a correct recovered Response or the right typed error.

The cases and their expected outcomes live in benchmarks/fault_matrix.py
(which also renders docs/fault-matrix.md); this asserts each cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import fault_matrix as fm

from modelwire.testing import FaultServer


@pytest.mark.parametrize("mode", fm.MODES)
@pytest.mark.parametrize("wire", list(fm.WIRES))
@pytest.mark.parametrize("case", fm.CASES, ids=[c.name for c in fm.CASES])
async def test_fault_cell(case: fm.Case, wire: str, mode: str) -> None:
    async with FaultServer() as server:
        cell = await fm.run_cell(server, case, wire, mode)
    expect = fm.expected(case, mode)
    assert cell.outcome in expect.outcome.split("|"), cell.detail
    assert cell.requests == expect.requests
    if cell.outcome == "recovered":
        assert cell.text_ok, "recovered, but not with the full expected text"
    if cell.outcome == "StreamInterruptedError" and expect.cause is not None:
        assert cell.cause == expect.cause
    if expect.waits is not None:
        assert tuple(cell.waits) == expect.waits
    assert cell.matches(expect)


def test_every_fault_the_issue_lists_is_covered() -> None:
    names = " ".join(c.name for c in fm.CASES)
    for needle in ("429, no retry-after", "retry-after:", "retry-after-ms", "500", "502",
                   "503", "529", "slow first byte", "stall", "reset before headers",
                   "reset mid-stream", "cut before its terminal", "malformed JSON",
                   "invalid UTF-8", "very large", "keeps connection open after terminal",
                   "trailing bytes after terminal", "oversized", "redirect", "HTML page",
                   "error JSON with status 200", "primary stalls before first event",
                   "malformed 200 answer"):
        assert needle in names
