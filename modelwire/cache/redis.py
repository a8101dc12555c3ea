"""RedisCache: one response cache shared by every process that uses its URL.

``RedisCache("redis://host:6379/0", ttl=3600)`` (``pip install 'modelwire[redis]'``).
Entries are JSON strings under ``<namespace>:cache:<key>`` with a TTL; bound the
total size with Redis itself (``maxmemory`` with an LRU ``maxmemory-policy``),
and single entries with ``max_entry_bytes`` (larger ones are not cached).

Single flight across processes: the first caller takes a lock
(``<namespace>:cache-lock:<key>``, SET NX with a ``lock_timeout`` TTL that the
holder keeps extending while its call runs); the others poll for the entry. If
the holder dies its lock expires within ``lock_timeout`` and a waiter goes to
the provider itself.

When Redis is down every lookup is a miss (calls go to the provider), with one
warning, and Redis is tried again after a backoff, as for RedisStore.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigurationError
from ..state.redis import Connection, OnError, safe_url
from .key import decode, encode

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisCache:
    shared = True  # the middleware does single flight across processes through lock()

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, ttl: float | None = 3600.0,
                 namespace: str = "modelwire", max_entry_bytes: int = 1 << 20,
                 lock_timeout: float = 10.0, on_error: OnError = "local",
                 timeout: float = 0.5, max_backoff: float = 5.0) -> None:
        self.conn = Connection(url, on_error=on_error, timeout=timeout, max_backoff=max_backoff,
                               what="response cache")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                                or not ttl > 0):
            raise ConfigurationError(f"ttl must be None or seconds > 0, got {ttl!r}")
        if not isinstance(lock_timeout, (int, float)) or not lock_timeout > 0:
            raise ConfigurationError(f"lock_timeout must be seconds > 0, got {lock_timeout!r}")
        self.ttl = ttl
        self.namespace = namespace
        self.max_entry_bytes = max_entry_bytes
        self.lock_timeout = float(lock_timeout)

    def __repr__(self) -> str:
        return f"<RedisCache {safe_url(self.conn.url)} namespace={self.namespace!r}>"

    def _k(self, key: str) -> str:
        return f"{self.namespace}:cache:{key}"

    def _lk(self, key: str) -> str:
        return f"{self.namespace}:cache-lock:{key}"

    async def get(self, key: str) -> dict[str, Any] | None:
        async def remote() -> dict[str, Any] | None:
            data = await self.conn.client().get(self._k(key))
            return None if data is None else decode(data)
        return await self.conn.run(remote, _none)

    async def set(self, key: str, entry: dict[str, Any]) -> None:
        data = encode(entry)
        if len(data) > self.max_entry_bytes:
            return

        async def remote() -> None:
            px = None if self.ttl is None else max(1, int(self.ttl * 1000))
            await self.conn.client().set(self._k(key), data, px=px)
        await self.conn.run(remote, _none)

    async def clear(self) -> None:
        async def remote() -> None:
            client = self.conn.client()
            async for k in client.scan_iter(f"{self.namespace}:cache:*"):
                await client.delete(k)
        await self.conn.run(remote, _none)

    # --- single flight across processes --------------------------------------

    async def lock(self, key: str) -> str | None:
        """A token if this caller now holds the key's lock, None if another does.
        With Redis down every caller "holds" it (each goes to the provider)."""
        token = os.urandom(8).hex()

        async def remote() -> str | None:
            ok = await self.conn.client().set(self._lk(key), token, nx=True,
                                              px=int(self.lock_timeout * 1000))
            return token if ok else None

        async def local() -> str | None:
            return token
        return await self.conn.run(remote, local)

    async def refresh(self, key: str, token: str) -> None:
        async def remote() -> None:
            await self.conn.script(_REFRESH)(keys=[self._lk(key)],
                                             args=[token, int(self.lock_timeout * 1000)])
        await self.conn.run(remote, _none)

    async def unlock(self, key: str, token: str) -> None:
        async def remote() -> None:
            await self.conn.script(_UNLOCK)(keys=[self._lk(key)], args=[token])
        await self.conn.run(remote, _none)

    async def locked(self, key: str) -> bool:
        async def remote() -> bool:
            return bool(await self.conn.client().exists(self._lk(key)))

        async def local() -> bool:
            return False
        return await self.conn.run(remote, local)

    async def aclose(self) -> None:
        await self.conn.aclose()


async def _none() -> None:
    return None
