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
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from ..errors import ConfigurationError, StateStoreError
from .base import Clock
from .memory import MemoryStore
from .redis_conn import Connection, OnError, _is_outage, safe_url
from .redis_scripts import _ACQUIRE, _ADJUST, _GATE, _INCR, _RECORD

T = TypeVar("T")

Window = tuple[str, float, float, float]
"""``(key, limit, window seconds, cost)`` for :meth:`RedisStore.gate`."""


@lru_cache(maxsize=8192)
def redis_key(namespace: str, key: str) -> str:
    """``<namespace>:<kind>:{<digest>}``: the caller's key is hashed, never stored."""
    kind = key.split("|", 1)[0] if "|" in key else "k"
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{namespace}:{kind}:{{{digest}}}"


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
        self._pending_local: list[Callable[[], Awaitable[None]]] = []  # the same, locally
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
        fallbacks, self._pending_local = self._pending_local, []
        try:
            return await self._exec_with(pending, issue)
        except Exception as e:
            if fallbacks and _is_outage(e):
                # Redis went down with writes held back: they land in the local
                # state that serves meanwhile, rather than vanish.
                for local in fallbacks:
                    await local()
            raise

    async def _exec_with(self, pending: list[Issue], issue: Issue | None) -> Any:
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
        self._pending_local.append(local)
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
