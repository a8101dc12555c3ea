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

Time: rate-limit windows are stamped with the Redis server's TIME inside their
scripts, so entries from every process and machine are ordered as the server
ran them (no client clock involved). The breaker's open stamp comes from this
process's ``clock`` (``time.time`` by default): machines sharing a store need
clocks in step (NTP) for its cool-down to end at the same moment everywhere.

When Redis is unreachable or slow (``timeout`` seconds per operation, 0.5 by
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
from .redis_scripts import _ACQUIRE, _ADJUST, _GATE, _INCR, _RECORD

log = logging.getLogger("modelwire.state")
T = TypeVar("T")
OnError = Literal["local", "raise"]

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

    def __init__(self, url: str, *, on_error: OnError = "local", timeout: float = 0.5,
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


_SCRIPTS = {lua: hashlib.sha1(lua.encode()).hexdigest()
            for lua in (_ACQUIRE, _ADJUST, _GATE, _INCR, _RECORD)}

Issue = Callable[[Any], Awaitable[Any]]
"""Issues one command on a client or a pipeline (``await`` works on both)."""


class RedisStore:
    """The StateStore on Redis (see module docstring).

    Writes whose result nobody waits for (the breaker's success counters, a
    limiter's token correction: ``defer_record``, ``window_adjust``) are held
    back and sent in the same pipelined round trip as this store's next
    operation, or ``flush_delay`` seconds later if none comes. So a steady
    stream of calls costs one round trip each (``gate``); the failure path
    writes at once.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "modelwire",
                 on_error: OnError = "local", timeout: float = 0.5, max_backoff: float = 5.0,
                 max_connections: int = 64, flush_delay: float = 0.05,
                 clock: Clock = time.time) -> None:
        self.conn = Connection(url, on_error=on_error, timeout=timeout,
                               max_backoff=max_backoff, max_connections=max_connections)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty string, got {namespace!r}")
        self.namespace = namespace
        self.clock = clock
        self.flush_delay = flush_delay
        self.local = MemoryStore(clock)  # serves operations while Redis is down
        self._ids = itertools.count()
        self._id = os.urandom(6).hex()
        self._pending: list[Issue] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<RedisStore {safe_url(self.conn.url)} namespace={self.namespace!r}>"

    def _k(self, key: str) -> str:
        return redis_key(self.namespace, key)

    def _uid(self) -> str:
        return f"{self._id}{next(self._ids)}"

    async def aclose(self) -> None:
        await self.flush()
        await self.conn.aclose()

    # --- one round trip: held-back writes first, then the command ---------------

    async def _exec(self, issue: Issue | None) -> Any:
        pending, self._pending = self._pending, []
        from redis.exceptions import NoScriptError
        try:
            return await self._send(pending, issue)
        except NoScriptError:  # a restarted or flushed server: load the scripts, once
            client = self.conn.client()
            pipe = client.pipeline(transaction=False)
            for lua in _SCRIPTS:
                pipe.script_load(lua)
            await pipe.execute()
            return await self._send(pending, issue)

    async def _send(self, pending: list[Issue], issue: Issue | None) -> Any:
        client = self.conn.client()
        if not pending:
            return None if issue is None else await issue(client)
        pipe = client.pipeline(transaction=False)
        for write in pending:
            await write(pipe)
        if issue is not None:
            await issue(pipe)
        return (await pipe.execute())[-1]

    async def _run(self, issue: Issue, local: Callable[[], Awaitable[T]]) -> Any:
        return await self.conn.run(lambda: self._exec(issue), local)

    async def _hold(self, write: Issue, local: Callable[[], Awaitable[None]]) -> None:
        if self.conn.down:
            await self.conn.run(_nothing, local)  # down: local state (or StateStoreError)
            return
        self._pending.append(write)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self.flush_delay,
                                                                   self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_at = None
        task = asyncio.get_running_loop().create_task(self._flush_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except StateStoreError:  # on_error="raise": nobody is waiting to catch it here
            pass  # Connection.run has logged the outage

    async def flush(self) -> None:
        """Send the held-back writes now (``aclose`` does too)."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self._pending:
            await self.conn.run(lambda: self._exec(None), _nothing)

    def _script(self, lua: str, keys: list[str], args: list[Any]) -> Issue:
        # Plain EVALSHA (redis-py's Script objects ask SCRIPT EXISTS before every
        # pipeline: a second round trip); NOSCRIPT is handled in _exec.
        sha = _SCRIPTS[lua]

        def issue(target: Any) -> Awaitable[Any]:
            return target.evalsha(sha, len(keys), *keys, *args)  # type: ignore[no-any-return]
        return issue

    # --- key/value --------------------------------------------------------

    async def get(self, key: str) -> float | None:
        k = self._k(key)
        return _float(await self._run(lambda c: c.get(k), lambda: self.local.get(key)))

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        names = [self._k(k) for k in keys]
        values = await self._run(lambda c: c.mget(names), lambda: self.local.get_many(keys))
        return [_float(v) for v in values]

    async def set(self, key: str, value: float, ttl: float | None = None) -> None:
        k, v = self._k(key), repr(float(value))
        await self._run(lambda c: c.set(k, v, px=_ms(ttl)),
                        lambda: self.local.set(key, value, ttl))

    async def add(self, key: str, value: float, ttl: float | None = None) -> bool:
        k, v = self._k(key), repr(float(value))
        return bool(await self._run(lambda c: c.set(k, v, px=_ms(ttl), nx=True),
                                    lambda: self.local.add(key, value, ttl)))

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        issue = self._script(_INCR, [self._k(key)], [repr(float(amount)), _ms(ttl) or 0])
        return float(await self._run(issue, lambda: self.local.incr(key, amount, ttl)))

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        names = [self._k(k) for k in keys]
        names += [n + ":t" for n in names]
        await self._run(lambda c: c.delete(*names), lambda: self.local.delete(*keys))

    def _record(self, incr: Sequence[tuple[str, float, float | None]],
                delete: Sequence[str]) -> Issue:
        keys = [self._k(k) for k, _, _ in incr] + [self._k(k) for k in delete]
        args: list[Any] = [len(incr)]
        for _, amount, ttl in incr:
            args += [repr(float(amount)), _ms(ttl) or 0]
        return self._script(_RECORD, keys, args)

    async def record(self, incr: Sequence[tuple[str, float, float | None]],
                     delete: Sequence[str] = ()) -> list[float]:
        """Several ``incr`` then ``delete``, atomically in one round trip."""
        values = await self._run(self._record(incr, delete),
                                 lambda: self.local.record(incr, delete))
        return [float(v) for v in values]

    async def defer_record(self, incr: Sequence[tuple[str, float, float | None]],
                           delete: Sequence[str] = ()) -> None:
        """``record`` without waiting: sent with the next operation (see class doc)."""
        await self._hold(self._record(incr, delete),
                         lambda: _none(self.local.record(incr, delete)))

    # --- sliding-window log -------------------------------------------------

    async def window_acquire(self, key: str, limit: float, window: float,
                             cost: float) -> float:
        k = self._k(key)
        issue = self._script(_ACQUIRE, [k, k + ":t"], [
            "", repr(float(limit)), repr(float(window)), repr(float(cost)),
            self._uid()])
        return float(await self._run(
            issue, lambda: self.local.window_acquire(key, limit, window, cost)))

    async def window_adjust(self, key: str, window: float, delta: float) -> None:
        """Held back like ``defer_record``: a correction nobody waits for."""
        if not delta:
            return
        k = self._k(key)
        issue = self._script(_ADJUST, [k, k + ":t"], [
            "", repr(float(window)), repr(float(delta)), self._uid()])
        await self._hold(issue, lambda: self.local.window_adjust(key, window, delta))

    # --- the one-round-trip gate ------------------------------------------------

    async def gate(self, open_key: str, windows: Sequence[Window]) -> tuple[float | None, float]:
        """Read ``open_key`` and, only when it is absent, acquire every window (all or
        nothing) in one round trip. Returns ``(open_key's value or None, wait)``."""
        keys = [self._k(open_key)]
        args: list[Any] = ["", self._uid()]
        for key, limit, window, cost in windows:
            k = self._k(key)
            keys += [k, k + ":t"]
            args += [repr(float(limit)), repr(float(window)), repr(float(cost))]
        reply = await self._run(self._script(_GATE, keys, args),
                                lambda: self.local.gate(open_key, windows))
        opened, wait = reply
        if isinstance(opened, (int, float)) or opened is None:  # the local fallback's answer
            return opened, wait
        return (float(opened) if opened else None), float(wait)


async def _nothing() -> None:
    return None


async def _none(aw: Awaitable[Any]) -> None:
    await aw


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, math.ceil(ttl * 1000))
