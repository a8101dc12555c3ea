"""Every fault x {complete, stream} x {OpenAI, Anthropic, Gemini wire}: the
outcome is a correct recovered Response or the right typed error.

The cases and their expected outcomes live in benchmarks/fault_matrix.py
(which also renders docs/fault-matrix.md); this asserts each cell.
"""

from __future__ import annotations

import re
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


_CELL = re.compile(r"^(?:recovered|`(?P<error>\w+)`(?: ← `(?P<cause>\w+)`)?) "
                   r"\((?P<requests>\d+) req(?:, waited (?P<waits>[\d.s +]+))?\)$")


def _table(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| fault |")
            or (line.startswith("| ") and not line.startswith("| fault"))]
    start = next(i for i, r in enumerate(rows) if r.startswith("| fault |"))
    body = []
    for row in rows[start + 1:]:
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        if len(cells) != 1 + len(fm.WIRES) * len(fm.MODES):
            break
        body.append(cells)
    return body


def test_the_docs_and_readme_tables_match_the_asserted_specification() -> None:
    """docs/fault-matrix.md (generated) and the README's copy are the same table,
    one row per case in order, and every cell states the outcome, request count,
    cause and waits the specification (and so test_fault_cell) asserts."""
    root = Path(__file__).resolve().parent.parent
    doc = _table((root / "docs" / "fault-matrix.md").read_text(encoding="utf-8"))
    readme = _table((root / "README.md").read_text(encoding="utf-8"))
    assert readme == doc, "README's fault matrix differs from docs/fault-matrix.md: " \
        "run python benchmarks/fault_matrix.py and copy the table"
    assert [row[0] for row in doc] == [c.name for c in fm.CASES]
    for row, case in zip(doc, fm.CASES, strict=True):
        cells = [(w, m) for w in fm.WIRES for m in fm.MODES]
        for cell, (wire, mode) in zip(row[1:], cells, strict=True):
            expect = fm.expected(case, mode)
            m = _CELL.match(cell)
            assert m, f"{case.name} / {wire} {mode}: {cell!r} (a ❌ or unreadable cell)"
            assert (m["error"] or "recovered") in expect.outcome.split("|"), (case.name, cell)
            assert int(m["requests"]) == expect.requests, (case.name, wire, mode, cell)
            if m["error"] == "StreamInterruptedError" and expect.cause is not None:
                assert m["cause"] == expect.cause, (case.name, cell)
            if expect.waits is not None:
                waits = tuple(float(w.rstrip("s")) for w in (m["waits"] or "").split(" + ")
                              if w)
                assert waits == expect.waits, (case.name, wire, mode, cell)
