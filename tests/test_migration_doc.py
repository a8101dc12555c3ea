"""docs/migration.md names every name modelwire.compat exports, in code."""

from __future__ import annotations

import re
from pathlib import Path

import modelwire.compat

DOC = Path(__file__).resolve().parents[1] / "docs" / "migration.md"


def test_every_compat_name_is_in_the_migration_guide() -> None:
    text = DOC.read_text()
    fenced = re.findall(r"```.*?```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    spans = " ".join(fenced + inline)  # names in code, not in prose
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", spans))
    missing = [name for name in modelwire.compat.__all__ if name not in words]
    assert missing == [], f"docs/migration.md does not mention {missing}"


def test_the_deprecation_warnings_point_at_the_guide() -> None:
    from modelwire.compat._warn import GUIDE
    assert (DOC.parents[1] / GUIDE).resolve() == DOC.resolve()
