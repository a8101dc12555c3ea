"""DiskCache: responses in a SQLite file, so a CLI user's cache survives runs.

Standard-library ``sqlite3`` (WAL mode, so several processes may share the
file). At most ``max_entries`` entries, least recently used evicted first;
each lives ``ttl`` seconds. Entries are JSON, never pickles.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..state.base import Clock
from .key import decode, encode
from .memory import check_bounds


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modelwire" / "responses.sqlite3"


class DiskCache:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, max_entries: int = 10_000,
                 ttl: float | None = 7 * 86400.0, clock: Clock = time.time) -> None:
        check_bounds(max_entries, ttl)
        self.path = Path(path) if path is not None else default_path()
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, "
                             "value BLOB NOT NULL, expires REAL, used REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS entries_used ON entries (used)")
        except (OSError, sqlite3.Error) as e:
            raise ConfigurationError(
                f"cannot open the disk cache at {self.path}: {e}; pass DiskCache(path=...) "
                "a writable file") from None
        self._lock = threading.Lock()  # one connection; sync facade threads share it

    def __repr__(self) -> str:
        return f"<DiskCache {self.path} max_entries={self.max_entries} ttl={self.ttl}>"

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    async def get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._lock:
            row = self._db.execute("SELECT value, expires FROM entries WHERE key = ?",
                                   (key,)).fetchone()
            if row is None:
                return None
            if row[1] is not None and row[1] <= now:
                self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
                return None
            self._db.execute("UPDATE entries SET used = ? WHERE key = ?", (now, key))
        return decode(row[0])

    async def set(self, key: str, entry: dict[str, Any]) -> None:
        now = self.clock()
        expires = None if self.ttl is None else now + self.ttl
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                             (key, encode(entry), expires, now))
            self._db.execute(
                "DELETE FROM entries WHERE key IN (SELECT key FROM entries "
                "ORDER BY used DESC, rowid DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

    async def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries")

    def close(self) -> None:
        with self._lock:
            self._db.close()
