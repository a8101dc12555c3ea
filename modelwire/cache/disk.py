"""DiskCache: responses in a SQLite file, so a CLI user's cache survives runs.

Standard-library ``sqlite3`` (WAL mode, so several processes may share the
file). At most ``max_entries`` entries, least recently used evicted first;
each lives ``ttl`` seconds; an entry larger than ``max_entry_bytes`` is not
stored. Entries are JSON, never pickles. The file is read and written in a
worker thread, so a busy file (another process writing) never blocks the
event loop. A file that is not a database (corrupted, or something else at
that path) is moved aside to ``<path>.corrupt`` with a warning and a fresh
cache is started: it is only a cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..state.base import Clock
from .key import decode, encode
from .memory import MAX_ENTRY_BYTES, check_bounds

log = logging.getLogger("modelwire.cache")


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modelwire" / "responses.sqlite3"


class DiskCache:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, max_entries: int = 10_000,
                 ttl: float | None = 7 * 86400.0, max_entry_bytes: int = MAX_ENTRY_BYTES,
                 clock: Clock = time.time) -> None:
        check_bounds(max_entries, ttl, max_entry_bytes)
        self.path = Path(path) if path is not None else default_path()
        self.max_entries = max_entries
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) or not self.path.is_file():
                    raise  # cannot open or write it: the caller's to fix
                aside = self.path.with_name(self.path.name + ".corrupt")
                log.warning("modelwire: the disk cache at %s is not a usable database (%s); "
                            "moved it to %s and started a fresh cache", self.path, e, aside)
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                self._db = self._open()
        except (OSError, sqlite3.Error) as e:
            raise ConfigurationError(
                f"cannot open the disk cache at {self.path}: {e}; pass DiskCache(path=...) "
                "a writable file") from None
        self._lock = threading.Lock()  # one connection; sync facade threads share it

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=5.0)
        # Switching a new file to WAL needs it to itself, and SQLite answers "database
        # is locked" at once (no busy wait) when another process is doing the same:
        # two CLI runs starting together. Try again for up to 5 s.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, "
                           "value BLOB NOT NULL, expires REAL, used REAL NOT NULL)")
                db.execute("CREATE INDEX IF NOT EXISTS entries_used ON entries (used)")
                return db
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    db.close()
                    raise
                time.sleep(0.02)
            except BaseException:
                db.close()
                raise

    def __repr__(self) -> str:
        return f"<DiskCache {self.path} max_entries={self.max_entries} ttl={self.ttl}>"

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    async def get(self, key: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> dict[str, Any] | None:
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
        data = encode(entry)
        if len(data) > self.max_entry_bytes:
            return
        await asyncio.to_thread(self._set, key, data)

    def _set(self, key: str, data: bytes) -> None:
        now = self.clock()
        expires = None if self.ttl is None else now + self.ttl
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                             (key, data, expires, now))
            self._db.execute(
                "DELETE FROM entries WHERE key IN (SELECT key FROM entries "
                "ORDER BY used DESC, rowid DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

    async def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries")

    def close(self) -> None:
        with self._lock:
            self._db.close()
