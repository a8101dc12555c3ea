"""ResponseCache: exact-match caching of complete() and stream() results.

Outermost of the resilience layers (``metrics > cache > fallback > retry >
breaker > ratelimit``), so a hit sends nothing and spends no quota, and an
answer a fallback produced is cached under the request as asked.

* Key: the normalized request plus a hash of each target's API key (or
  ``tenant=``); see :mod:`modelwire.cache.key`. Two tenants never share.
* A hit is a Response with ``cached=True`` and the original call's usage; a
  cached stream replays the original events (one batch) and ends with that
  Response. Only complete answers are stored: a stream is stored once it
  reached its terminal event, never when cut or abandoned.
* Calls with ``temperature > 0`` ask for variety: they are not cached unless
  the call passes ``cache=True`` or the cache was built with ``sampled=True``.
  ``cache=False`` on a call bypasses the cache both ways.
* Single flight: concurrent identical calls wait for the first instead of all
  going out, in this process (an asyncio future) and, with a backend that
  locks (RedisCache), across processes. A waiter whose leader failed, or
  whose leader's lock expired (the holder died), goes to the provider itself;
  waiting never outlasts the call's deadline.
* A backend that fails (not an outage it handles itself) never fails a call:
  the error is logged and the call goes on uncached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..cache.key import dump, load, request_key
from ..errors import ConfigurationError
from ..pipeline import CALL_OPTIONS
from ..response import Response, StreamEvent
from ..streaming import AsyncStream

if TYPE_CHECKING:
    from ..cache import CacheBackend
    from ..pipeline import Call, Next, Outcome

CALL_OPTIONS.add("cache")
log = logging.getLogger("modelwire.cache")


class ReplayStream(AsyncStream):
    """A cached stream: the stored events, then the stored Response."""

    def __init__(self, events: list[StreamEvent], response: Response) -> None:
        super().__init__(_one_batch(events), None)  # type: ignore[arg-type]
        self._final = response

    async def _pull(self, wrap: bool = True) -> list[StreamEvent] | None:
        if self._response is not None or self._closed:
            return None
        try:
            return await self._batches.__anext__()
        except StopAsyncIteration:
            self._response = self._final
            for callback in self.on_finish:
                await callback(self._final)
            return None

    @property
    def partial(self) -> Response:
        return self._final


async def _one_batch(events: list[StreamEvent]) -> AsyncIterator[list[StreamEvent]]:
    if events:
        yield events


class ResponseCache:
    """Middleware (see module docstring). ``backend``: MemoryCache (default),
    DiskCache, RedisCache or any CacheBackend."""

    def __init__(self, backend: CacheBackend | None = None, *, sampled: bool = False,
                 tenant: str | None = None, poll: float = 0.05) -> None:
        from ..cache import CacheBackend, MemoryCache
        if backend is None:
            backend = MemoryCache()
        if not isinstance(backend, CacheBackend):
            raise ConfigurationError(
                "cache= must be True, a cache backend (MemoryCache, DiskCache, RedisCache) "
                f"or a ResponseCache, got {type(backend).__name__}")
        self.backend = backend
        self.sampled = sampled
        self.tenant = tenant
        self.poll = poll
        self.shared = callable(getattr(backend, "lock", None))
        self._flights: dict[str, asyncio.Future[None]] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ResponseCache({self.backend!r})"

    async def __call__(self, call: Call, next: Next) -> Outcome:
        wanted = call.options.get("cache")
        if call.mode == "embed" or "verb" in call.options:  # answers of another shape
            return await next(call)
        if wanted is False or (wanted is not True and not self.sampled
                               and call.temperature is not None and call.temperature > 0):
            return await next(call)
        key = request_key(call, self.tenant)
        while True:
            hit = await self._lookup(key, call.stream)
            if hit is not None:
                return hit
            flight = self._flights.get(key)
            if flight is None:
                break
            await _wait(asyncio.shield(flight), call.remaining())  # the leader is on it
            if call.remaining() is not None and (call.remaining() or 0) <= 0:
                break
        self.misses += 1
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        token = None
        try:
            if self.shared:
                hit, token = await self._lead_across_processes(key, call)
                if hit is not None:
                    self._release(key, flight)
                    return hit
            outcome = await self._send(call, next, key, token, flight)
        except BaseException:
            self._release(key, flight)
            if token is not None:
                await self._unlock(key, token)
            raise
        if isinstance(outcome, Response):
            self._release(key, flight)
            if token is not None:
                await self._unlock(key, token)
        return outcome

    # --- lookups and stores ----------------------------------------------------

    async def _lookup(self, key: str, stream: bool) -> Outcome | None:
        try:
            entry = await self.backend.get(key)
            if entry is None:
                return None
            response, events = load(entry)
        except Exception as e:  # a broken entry or backend is a miss, never a failure
            log.warning("modelwire: response cache lookup failed (%s); treating as a miss",
                        type(e).__name__)
            return None
        if stream and events is None:
            return None
        self.hits += 1
        if stream:
            assert events is not None
            return ReplayStream(events, response)
        return response

    async def _store(self, key: str, response: Response, events: list[StreamEvent] | None
                     ) -> None:
        try:
            await self.backend.set(key, dump(response, events))
        except Exception as e:
            log.warning("modelwire: response cache store failed (%s); not cached",
                        type(e).__name__)

    async def _send(self, call: Call, next: Next, key: str, token: str | None,
                    flight: asyncio.Future[None]) -> Outcome:
        refresher = None
        if token is not None:
            refresher = asyncio.get_running_loop().create_task(
                self._keep_lock(key, token, call))
        try:
            outcome = await next(call)
        except BaseException:
            if refresher is not None:
                refresher.cancel()
            raise
        if isinstance(outcome, Response):
            if refresher is not None:
                refresher.cancel()
            await self._store(key, outcome, None)
            return outcome
        self._record(outcome, key, token, refresher, flight)
        return outcome

    def _record(self, stream: AsyncStream, key: str, token: str | None,
                refresher: asyncio.Task[None] | None, flight: asyncio.Future[None]) -> None:
        """Record the stream's events; store them once the wire ended (before the
        caller sees that end, so waiters find the entry); free the lock and the
        waiters when it ends either way (finished, failed, closed, never read)."""
        events: list[StreamEvent] = list(stream._buf[stream._pos:])
        inner = stream._batches
        done = False

        async def finish(completed: bool) -> None:
            nonlocal done
            if done:
                return
            done = True
            if refresher is not None:
                refresher.cancel()
            if completed:
                try:  # the same Response the stream is about to hand its caller
                    response: Response | None = stream._acc.response()
                except Exception:
                    response = None  # cut before its terminal event: not cached
                if response is not None:
                    response.attempts = list(stream.attempts)
                    await self._store(key, response, events)
            else:
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            if token is not None:
                await self._unlock(key, token)
            self._release(key, flight)

        stream._batches = _Tee(inner, events, finish)

    def _release(self, key: str, flight: asyncio.Future[None]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.done():
            flight.set_result(None)

    # --- single flight across processes ------------------------------------------

    async def _lead_across_processes(self, key: str, call: Call
                                     ) -> tuple[Outcome | None, str | None]:
        """Take the shared lock (returns its token), or wait for its holder's entry.
        Gives up waiting (token None, go to the provider) at the deadline."""
        backend: Any = self.backend
        delay = self.poll
        while True:
            token = await backend.lock(key)
            if token is not None:
                return None, token
            while await backend.locked(key):
                left = call.remaining()
                if left is not None and left <= delay:
                    return None, None
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.25)
                hit = await self._lookup(key, call.stream)
                if hit is not None:
                    return hit, None
            hit = await self._lookup(key, call.stream)
            if hit is not None:
                return hit, None
            # The lock is gone without an entry: the holder failed or died. Try to lead.

    async def _keep_lock(self, key: str, token: str, call: Call) -> None:
        """Extend the lock while the call runs (never past its deadline)."""
        backend: Any = self.backend
        every = float(getattr(backend, "lock_timeout", 10.0)) / 3
        while True:
            await asyncio.sleep(every)
            left = call.remaining()
            if left is not None and left <= 0:
                return
            await backend.refresh(key, token)

    async def _unlock(self, key: str, token: str) -> None:
        with contextlib.suppress(Exception):
            await self.backend.unlock(key, token)  # type: ignore[attr-defined]


class _Tee:
    """The stream's batches, recorded; ``finish`` runs once at the end (completed:
    the wire ended) or on close/failure (even if it was never iterated)."""

    def __init__(self, inner: AsyncIterator[list[StreamEvent]], events: list[StreamEvent],
                 finish: Callable[[bool], Awaitable[None]]) -> None:
        self._inner, self._events, self._finish = inner, events, finish

    def __aiter__(self) -> _Tee:
        return self

    async def __anext__(self) -> list[StreamEvent]:
        try:
            batch = await self._inner.__anext__()
        except StopAsyncIteration:
            await self._finish(True)
            raise
        except BaseException:
            await self._finish(False)
            raise
        self._events.extend(batch)
        return batch

    async def aclose(self) -> None:
        await self._finish(False)


async def _wait(aw: asyncio.Future[None], timeout: float | None) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(aw, timeout)


