"""RedisStore: the StateStore on a Redis server, shared by every process that uses its URL.

``AsyncClient(state=RedisStore("redis://:password@host:6379/0"))`` (``rediss://``
for TLS, ``unix:///path.sock`` for a socket; auth and TLS come from the URL,
as the ``redis`` package parses it). Needs ``pip install 'modelwire[redis]'``.

Every operation is one round trip and atomic on the server: plain commands
(GET, MGET, SET [NX] PX, DEL) or a short Lua script (counters with a TTL set at
creation, the weighted sliding-window log, and :meth:`RedisStore.gate`, the
breaker read and every limiter window of a call in one script). No
read-modify-write happens on the client, so any number of processes may share
one key.

Keys: ``<namespace>:<kind>:{<blake2b of the caller's key>}`` (``kind`` is the
caller's prefix, ``cb`` or ``rl``). A caller's key holds ``Target.key``, whose
base URL may embed a secret, so it is hashed, never stored.

Time: stamps come from this process's ``clock`` (``time.time`` by default), so
machines sharing a store need synchronized clocks (NTP), as for any shared
sliding window.

When Redis is unreachable or slow (``timeout`` seconds per operation, 0.25 by
default), ``on_error="local"`` (the default) logs ONE warning, serves the
operation from an in-process MemoryStore, and tries Redis again after a
backoff (0.5 s doubling to ``max_backoff``); so an outage costs a call at most
one ``timeout``. ``on_error="raise"`` raises :class:`~modelwire.errors.StateStoreError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigurationError, MissingDependencyError, StateStoreError
from .base import Clock
from .memory import MemoryStore

log = logging.getLogger("modelwire.state")
T = TypeVar("T")
OnError = Literal["local", "raise"]

_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# record: KEYS = the counters then the keys to delete; ARGV[1] = how many counters,
# then (amount, ttl ms) per counter. Returns the counters' new values.
_RECORD = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local created = redis.call('EXISTS', KEYS[i]) == 0
  out[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i])
  if created and tonumber(ARGV[2 * i + 1]) > 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
end
if #KEYS > n then redis.call('DEL', unpack(KEYS, n + 1)) end
return out
"""

# The window log: a sorted set of "<id>:<units>" scored by stamp, plus its running
# total in a string key (so a call costs O(entries pruned), not O(entries)).
_WINDOW_LIB = """
local function units(member) return tonumber(string.match(member, ':([^:]*)$')) end
local function prune(zkey, tkey, now, window)
  local total = tonumber(redis.call('GET', tkey) or '0')
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - window)
  if #old > 0 then
    for i = 1, #old do total = total - units(old[i]) end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - window)
  end
  if redis.call('ZCARD', zkey) == 0 then total = 0 end
  return total
end
local function save(zkey, tkey, total, window)
  local ms = math.ceil(window * 1000) + 1000
  redis.call('SET', tkey, string.format('%.17g', total), 'PX', ms)
  redis.call('PEXPIRE', zkey, ms)
end
local function wait_for(zkey, total, cost, limit, now, window)
  local excess = total + cost - limit
  local entries = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    excess = excess - units(entries[i])
    if excess <= 0 then return tonumber(entries[i + 1]) + window - now end
  end
  return window
end
"""

_ACQUIRE = _WINDOW_LIB + """
local now, limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
if cost > limit then return 'inf' end
local total = prune(KEYS[1], KEYS[2], now, window)
if total + cost > limit then
  save(KEYS[1], KEYS[2], total, window)
  return string.format('%.17g', wait_for(KEYS[1], total, cost, limit, now, window))
end
if cost > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. ARGV[4])
  total = total + cost
end
save(KEYS[1], KEYS[2], total, window)
return '0'
"""

_ADJUST = _WINDOW_LIB + """
local now, window, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local total = prune(KEYS[1], KEYS[2], now, window)
if delta > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. ARGV[3])
  total = total + delta
else
  local refund = -delta
  while refund > 0 do
    local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if #newest == 0 then break end
    local u = units(newest[1])
    local take = math.min(refund, u)
    redis.call('ZREM', KEYS[1], newest[1])
    if u - take > 0 then
      local id = string.match(newest[1], '^(.*):[^:]*$')
      redis.call('ZADD', KEYS[1], newest[2], id .. ':' .. string.format('%.17g', u - take))
    end
    total = total - take
    refund = refund - take
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then total = 0 end
save(KEYS[1], KEYS[2], total, window)
"""

# gate: KEYS[1] = the breaker's open key, then (zset, total) per window.
# ARGV: now, id, then (limit, window, cost) per window. Returns {open stamp or '',
# wait}. When the breaker key exists nothing is acquired (the caller's slow path
# decides); otherwise every window is acquired, all or nothing.
_GATE = _WINDOW_LIB + """
local opened = redis.call('GET', KEYS[1])
if opened then return {opened, '0'} end
local now = tonumber(ARGV[1])
local n = (#KEYS - 1) / 2
local totals = {}
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local limit, window, cost = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]),
    tonumber(ARGV[3 * i + 2])
  if cost > limit then return {'', 'inf'} end
  local total = prune(z, t, now, window)
  totals[i] = total
  if total + cost > limit then
    save(z, t, total, window)
    return {'', string.format('%.17g', wait_for(z, total, cost, limit, now, window))}
  end
end
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local window, cost = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  if cost > 0 then redis.call('ZADD', z, now, ARGV[2] .. '.' .. i .. ':' .. ARGV[3 * i + 2]) end
  save(z, t, totals[i] + cost, window)
end
return {'', '0'}
"""

Window = tuple[str, float, float, float]
"""``(key, limit, window seconds, cost)`` for :meth:`RedisStore.gate`."""


@lru_cache(maxsize=8192)
def redis_key(namespace: str, key: str) -> str:
    """``<namespace>:<kind>:{<digest>}``: the caller's key is hashed, never stored."""
    kind = key.split("|", 1)[0] if "|" in key else "k"
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{namespace}:{kind}:{{{digest}}}"


def check_url(url: Any) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            "the Redis URL must look like redis://[:password@]host:port/db, rediss://... "
            "(TLS) or unix:///path/to/socket")
    return url


def safe_url(url: str) -> str:
    """The URL without user, password or query (for reprs and messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Connection:
    """One lazily made ``redis.asyncio`` client per event loop (each with its own
    connection pool), plus the outage policy shared by RedisStore and RedisCache."""

    def __init__(self, url: str, *, on_error: OnError = "local", timeout: float = 0.25,
                 max_backoff: float = 5.0, max_connections: int = 64,
                 what: str = "state store") -> None:
        self.url = check_url(url)
        if on_error not in ("local", "raise"):
            raise ConfigurationError(f"on_error must be 'local' or 'raise', got {on_error!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise MissingDependencyError(f"the Redis {what}", "redis", "redis") from None
        self.on_error = on_error
        self.timeout = float(timeout)
        self.max_backoff = max_backoff
        self.max_connections = max_connections
        self.what = what
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._backoff = 0.0
        self.outages = 0  # how many times Redis was found down (for tests and metrics)
        self._closing: set[asyncio.Task[None]] = set()

    def client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
            self._client = Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0), max_connections=self.max_connections)
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, lua: str) -> Any:
        s = self._scripts.get(lua)
        if s is None:
            s = self._scripts[lua] = self.client().register_script(lua)
        return s

    @property
    def down(self) -> bool:
        return bool(self._down_until) and time.monotonic() < self._down_until

    async def run(self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
                  ) -> T:
        """``remote()`` on Redis; on an outage, ``local()`` (or StateStoreError)."""
        if self._down_until and time.monotonic() < self._down_until:
            if self.on_error == "raise":
                raise StateStoreError(f"the Redis {self.what} at {safe_url(self.url)} "
                                      "is unreachable (retrying after a backoff)")
            return await local()
        try:
            result = await remote()
        except Exception as e:
            if not _is_outage(e):
                raise
            self._mark_down(e)
            if self.on_error == "raise":
                raise StateStoreError(f"the Redis {self.what} at {safe_url(self.url)} failed: "
                                      f"{type(e).__name__}") from e
            return await local()
        if self._down_until:
            self._down_until, self._backoff = 0.0, 0.0
            log.warning("modelwire: the Redis %s at %s is back; sharing resumes",
                        self.what, safe_url(self.url))
        return result

    def _mark_down(self, error: BaseException) -> None:
        first = not self._down_until
        self._backoff = min(self.max_backoff, self._backoff * 2 if self._backoff else 0.5)
        self._down_until = time.monotonic() + self._backoff
        client, self._client, self._loop = self._client, None, None  # reconnect afresh
        if client is not None:
            task = asyncio.get_running_loop().create_task(_quiet_close(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if first:
            self.outages += 1
            log.warning("modelwire: the Redis %s at %s is unreachable (%s); %s",
                        self.what, safe_url(self.url), type(error).__name__,
                        "going on with local state until it is back"
                        if self.on_error == "local" else "raising StateStoreError")

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await _quiet_close(client)


async def _quiet_close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        pass


def _is_outage(error: BaseException) -> bool:
    """Anything Redis or the socket says (down, slow, out of memory, read-only
    replica, wrong password): never a reason to fail an LLM call."""
    from redis.exceptions import RedisError
    return isinstance(error, (RedisError, OSError, asyncio.TimeoutError))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class RedisStore:
    """The StateStore on Redis (see module docstring)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "modelwire",
                 on_error: OnError = "local", timeout: float = 0.25, max_backoff: float = 5.0,
                 max_connections: int = 64, clock: Clock = time.time) -> None:
        self.conn = Connection(url, on_error=on_error, timeout=timeout,
                               max_backoff=max_backoff, max_connections=max_connections)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty string, got {namespace!r}")
        self.namespace = namespace
        self.clock = clock
        self.local = MemoryStore(clock)  # serves operations while Redis is down
        self._ids = itertools.count()
        self._id = os.urandom(6).hex()

    def __repr__(self) -> str:
        return f"<RedisStore {safe_url(self.conn.url)} namespace={self.namespace!r}>"

    def _k(self, key: str) -> str:
        return redis_key(self.namespace, key)

    def _uid(self) -> str:
        return f"{self._id}{next(self._ids)}"

    async def aclose(self) -> None:
        await self.conn.aclose()

    # --- key/value --------------------------------------------------------

    async def get(self, key: str) -> float | None:
        async def remote() -> float | None:
            return _float(await self.conn.client().get(self._k(key)))
        return await self.conn.run(remote, lambda: self.local.get(key))

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        async def remote() -> list[float | None]:
            values = await self.conn.client().mget([self._k(k) for k in keys])
            return [_float(v) for v in values]
        return await self.conn.run(remote, lambda: self.local.get_many(keys))

    async def set(self, key: str, value: float, ttl: float | None = None) -> None:
        async def remote() -> None:
            await self.conn.client().set(self._k(key), repr(float(value)), px=_ms(ttl))
        await self.conn.run(remote, lambda: self.local.set(key, value, ttl))

    async def add(self, key: str, value: float, ttl: float | None = None) -> bool:
        async def remote() -> bool:
            return bool(await self.conn.client().set(
                self._k(key), repr(float(value)), px=_ms(ttl), nx=True))
        return await self.conn.run(remote, lambda: self.local.add(key, value, ttl))

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        async def remote() -> float:
            v = await self.conn.script(_INCR)(keys=[self._k(key)],
                                              args=[repr(float(amount)), _ms(ttl) or 0])
            return float(v)
        return await self.conn.run(remote, lambda: self.local.incr(key, amount, ttl))

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        async def remote() -> None:
            names = [self._k(k) for k in keys]
            await self.conn.client().delete(*names, *(n + ":t" for n in names))
        await self.conn.run(remote, lambda: self.local.delete(*keys))

    async def record(self, incr: Sequence[tuple[str, float, float | None]],
                     delete: Sequence[str] = ()) -> list[float]:
        """Several ``incr`` then ``delete``, atomically in one round trip."""
        async def remote() -> list[float]:
            keys = [self._k(k) for k, _, _ in incr] + [self._k(k) for k in delete]
            args: list[Any] = [len(incr)]
            for _, amount, ttl in incr:
                args += [repr(float(amount)), _ms(ttl) or 0]
            return [float(v) for v in await self.conn.script(_RECORD)(keys=keys, args=args)]
        return await self.conn.run(remote, lambda: self.local.record(incr, delete))

    # --- sliding-window log -------------------------------------------------

    async def window_acquire(self, key: str, limit: float, window: float,
                             cost: float) -> float:
        async def remote() -> float:
            k = self._k(key)
            v = await self.conn.script(_ACQUIRE)(
                keys=[k, k + ":t"],
                args=[repr(self.clock()), repr(float(limit)), repr(float(window)),
                      repr(float(cost)), self._uid()])
            return float(v)
        return await self.conn.run(
            remote, lambda: self.local.window_acquire(key, limit, window, cost))

    async def window_adjust(self, key: str, window: float, delta: float) -> None:
        if not delta:
            return
        async def remote() -> None:
            k = self._k(key)
            await self.conn.script(_ADJUST)(
                keys=[k, k + ":t"],
                args=[repr(self.clock()), repr(float(window)), repr(float(delta)), self._uid()])
        await self.conn.run(remote, lambda: self.local.window_adjust(key, window, delta))

    # --- the one-round-trip gate ------------------------------------------------

    async def gate(self, open_key: str, windows: Sequence[Window]) -> tuple[float | None, float]:
        """Read ``open_key`` and, only when it is absent, acquire every window (all or
        nothing) in one round trip. Returns ``(open_key's value or None, wait)``."""
        async def remote() -> tuple[float | None, float]:
            keys = [self._k(open_key)]
            args: list[Any] = [repr(self.clock()), self._uid()]
            for key, limit, window, cost in windows:
                k = self._k(key)
                keys += [k, k + ":t"]
                args += [repr(float(limit)), repr(float(window)), repr(float(cost))]
            opened, wait = await self.conn.script(_GATE)(keys=keys, args=args)
            return (float(opened) if opened else None), float(wait)
        return await self.conn.run(remote, lambda: self.local.gate(open_key, windows))


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, math.ceil(ttl * 1000))
