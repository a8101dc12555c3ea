"""MemoryStore: the in-process StateStore (the default)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence

from .base import Clock

_SWEEP_EVERY = 4096  # writes between sweeps of expired keys (bounds memory)


class _Log:
    """Entries ``[stamp, units]`` oldest first, with their running total."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()
        self.total = 0.0

    def prune(self, now: float, window: float) -> None:
        # An entry counts while now - stamp < window: at stamp + window it is gone.
        entries = self.entries
        while entries and entries[0][0] <= now - window:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no float drift carried across empty windows


class MemoryStore:
    """Dict-backed store. Every operation completes without suspending, so each
    one is atomic with respect to other coroutines on the loop."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._values: dict[str, tuple[float, float | None]] = {}  # value, expires at
        self._logs: dict[str, _Log] = {}
        self._writes = 0

    def __repr__(self) -> str:
        return f"<MemoryStore keys={len(self._values)} windows={len(self._logs)}>"

    # --- key/value --------------------------------------------------------

    def _live(self, key: str, now: float) -> float | None:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= now:
            del self._values[key]
            return None
        return value

    def _write(self, key: str, value: float, expires: float | None) -> None:
        self._values[key] = (value, expires)
        self._writes += 1
        if self._writes >= _SWEEP_EVERY:
            self._sweep()

    def _sweep(self) -> None:
        self._writes = 0
        now = self.clock()
        dead = [k for k, (_, exp) in self._values.items() if exp is not None and exp <= now]
        for k in dead:
            del self._values[k]

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    async def get(self, key: str) -> float | None:
        return self._live(key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        now = self.clock()
        return [self._live(k, now) for k in keys]

    async def set(self, key: str, value: float, ttl: float | None = None) -> None:
        self._write(key, float(value), self._expiry(ttl))

    async def add(self, key: str, value: float, ttl: float | None = None) -> bool:
        if self._live(key, self.clock()) is not None:
            return False
        self._write(key, float(value), self._expiry(ttl))
        return True

    async def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        now = self.clock()
        current = self._live(key, now)
        if current is None:
            self._write(key, float(amount), None if ttl is None else now + ttl)
            return float(amount)
        value = current + amount
        self._values[key] = (value, self._values[key][1])  # keep the original expiry
        return value

    async def delete(self, *keys: str) -> None:
        for k in keys:
            self._values.pop(k, None)
            self._logs.pop(k, None)

    async def record(self, incr: Sequence[tuple[str, float, float | None]],
                     delete: Sequence[str] = ()) -> list[float]:
        """Several ``incr`` then ``delete`` at once (see ``StateStore`` extensions)."""
        out = [await self.incr(k, amount, ttl) for k, amount, ttl in incr]
        if delete:
            await self.delete(*delete)
        return out

    # --- sliding-window log -------------------------------------------------

    async def window_acquire(self, key: str, limit: float, window: float,
                             cost: float) -> float:
        if cost > limit:
            return math.inf
        now = self.clock()
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        log.prune(now, window)
        if log.total + cost <= limit:
            if cost > 0:
                log.entries.append([now, cost])
                log.total += cost
            return 0.0
        # Walk from the oldest entry until enough units would have left.
        excess = log.total + cost - limit
        for stamp, units in log.entries:
            excess -= units
            if excess <= 0:
                return stamp + window - now
        return window  # unreachable: cost <= limit guarantees the walk ends

    async def window_adjust(self, key: str, window: float, delta: float) -> None:
        now = self.clock()
        log = self._logs.get(key)
        if log is None:
            if delta <= 0:
                return
            log = self._logs[key] = _Log()
        log.prune(now, window)
        if delta > 0:
            log.entries.append([now, delta])
            log.total += delta
            return
        refund = -delta
        while refund > 0 and log.entries:
            newest = log.entries[-1]
            take = min(refund, newest[1])
            newest[1] -= take
            log.total -= take
            refund -= take
            if newest[1] <= 0:
                log.entries.pop()
        if not log.entries:
            log.total = 0.0

    async def gate(self, open_key: str, windows: Sequence[tuple[str, float, float, float]]
                   ) -> tuple[float | None, float]:
        """The breaker's open stamp, and only when there is none every window
        acquired all or nothing (see ``StateStore`` extensions)."""
        opened = self._live(open_key, self.clock())
        if opened is not None:
            return opened, 0.0
        done: list[tuple[str, float, float]] = []
        for key, limit, window, cost in windows:
            wait = await self.window_acquire(key, limit, window, cost)
            if wait:
                for k, w, c in done:  # all or nothing: give back what was taken
                    await self.window_adjust(k, w, -c)
                return None, wait
            done.append((key, window, cost))
        return None, 0.0
