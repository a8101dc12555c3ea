"""The StateStore protocol: the few shared-state operations breaker and limiter need.

Everything is async and every value is a number, so a Redis implementation can
drop in later (GET/SET/SET NX/INCRBYFLOAT/DEL, and a sorted set plus a short
Lua script for the window log) and several processes then share one breaker
and one quota. Keys are plain strings; the caller namespaces them.

The store owns the time base (``clock``): a breaker's ``opened_at`` and a
window's entries are stamped with it, so every process sharing a store must
use comparable clocks (wall time for a shared store; ``time.monotonic`` is
fine in memory). Tests inject a fake clock to make waits exact.

Optional extensions (MemoryStore and RedisStore have them; the breaker
and limiter use them when present, else the protocol methods), so a shared
store serves a call in one round trip before the request (and at most one
write after it, which a remote store may send with its next operation):

* ``gate(open_key, windows) -> (opened, wait)``: read ``open_key`` and, only
  when it is absent, ``window_acquire`` every ``(key, limit, window, cost)``
  all or nothing; ``opened`` is the key's value or None, ``wait`` as for
  ``window_acquire``.
* ``record(incr, delete=()) -> values``: ``incr(key, amount, ttl)`` for every
  triple, then ``delete(*delete)``, atomically; returns the new values.
* ``defer_record(incr, delete=())``: the same when nobody waits for the result
  (a success); a remote store may send it with its next operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

Clock = Callable[[], float]
"""Seconds, monotonic non-decreasing (``time.monotonic`` by default)."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a fake that advances a fake clock."""


@runtime_checkable
class StateStore(Protocol):
    clock: Clock

    async def get(self, key: str) -> float | None:
        """The value, or None if absent or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        ...

    async def set(self, key: str, value: float, ttl: float | None = None) -> None:
        ...

    async def add(self, key: str, value: float, ttl: float | None = None) -> bool:
        """Set only if absent (Redis ``SET NX``); True if this call set it."""
        ...

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        """Add ``amount`` (may be negative) and return the new value.

        ``ttl`` applies when the key is created, so a bucket expires on its own.
        """
        ...

    async def delete(self, *keys: str) -> None:
        ...

    async def window_acquire(self, key: str, limit: float, window: float,
                             cost: float) -> float:
        """Sliding-window log: record ``cost`` if the units recorded in the last
        ``window`` seconds plus ``cost`` stay within ``limit``, and return 0.0.
        Otherwise record nothing and return the seconds until it would fit
        (``math.inf`` if ``cost`` alone exceeds ``limit``)."""
        ...

    async def window_adjust(self, key: str, window: float, delta: float) -> None:
        """Correct the log: ``delta > 0`` records more units now, unconditionally
        (usage turned out higher than estimated); ``delta < 0`` takes units back
        from the newest entries (a refund)."""
        ...
