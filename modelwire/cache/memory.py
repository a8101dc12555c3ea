"""MemoryCache: an in-process LRU with a TTL (the default response cache)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from ..errors import ConfigurationError
from ..state.base import Clock


def check_bounds(max_entries: Any, ttl: Any) -> None:
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise ConfigurationError(f"max_entries must be an int >= 1, got {max_entries!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or not ttl > 0):
        raise ConfigurationError(f"ttl must be None or seconds > 0, got {ttl!r}")


class MemoryCache:
    """At most ``max_entries`` entries (least recently used evicted first), each
    living ``ttl`` seconds (None: until evicted). ``clock`` is injectable."""

    def __init__(self, *, max_entries: int = 1024, ttl: float | None = 3600.0,
                 clock: Clock = time.monotonic) -> None:
        check_bounds(max_entries, ttl)
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[dict[str, Any], float | None]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<MemoryCache {len(self._entries)}/{self.max_entries} ttl={self.ttl}>"

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> dict[str, Any] | None:
        item = self._entries.get(key)
        if item is None:
            return None
        entry, expires = item
        if expires is not None and expires <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: dict[str, Any]) -> None:
        expires = None if self.ttl is None else self.clock() + self.ttl
        self._entries[key] = (entry, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def clear(self) -> None:
        self._entries.clear()
