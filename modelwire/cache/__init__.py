"""Response cache backends: MemoryCache (LRU + TTL), DiskCache (SQLite file) and
RedisCache (shared). The middleware is :class:`modelwire.middleware.cache.ResponseCache`;
``AsyncClient(cache=True | backend)`` sets it up.

A backend is any object with ``async get(key) -> dict | None`` and
``async set(key, entry)`` (an entry is a JSON-able dict; the backend applies its
TTL and size bounds). A backend that also has ``lock``/``refresh``/``unlock``/
``locked`` (RedisCache) gets single flight across processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .memory import MemoryCache

if TYPE_CHECKING:
    from .disk import DiskCache
    from .redis import RedisCache

__all__ = ["CacheBackend", "DiskCache", "MemoryCache", "RedisCache"]


@runtime_checkable
class CacheBackend(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, entry: dict[str, Any]) -> None: ...


def __getattr__(name: str) -> Any:
    if name == "RedisCache":  # lazily, like RedisStore
        from .redis import RedisCache
        return RedisCache
    if name == "DiskCache":  # lazily: sqlite3 only when asked for
        from .disk import DiskCache
        return DiskCache
    raise AttributeError(f"module 'modelwire.cache' has no attribute {name!r}")
