"""Worker processes for the Redis sharing tests: ``python redis_workers.py MODE JSON``.

Each prints one JSON line with what it saw. Run by tests/test_redis_store.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from modelwire import AsyncClient, CircuitOpenError, ClientRateLimitError
from modelwire.middleware import Breaker, BreakerPolicy, RateLimit, RateLimiter, link_gate
from modelwire.middleware.ratelimit import StoreBackend
from modelwire.mock import MockReply
from modelwire.pipeline import Call, Next, Outcome
from modelwire.state.redis import RedisStore

MODEL = "mock/shared"


class Stamp:
    """Innermost middleware: when each request left."""

    def __init__(self) -> None:
        self.sent: list[float] = []

    async def __call__(self, call: Call, next: Next) -> Outcome:
        self.sent.append(time.time())
        return await next(call)


def client(url: str, *, rpm: int | None = None, window: float = 60.0,
           max_wait: float | None = None) -> tuple[AsyncClient, Stamp]:
    # A generous timeout: these workers test sharing on a busy machine, not outages.
    store = RedisStore(url, timeout=5.0, max_backoff=0.5)
    stamp = Stamp()
    chain: list[Any] = [Breaker(BreakerPolicy(failures=3, failure_rate=None, cooldown=60),
                                store=store)]
    if rpm is not None:
        chain.append(RateLimiter({MODEL: RateLimit(rpm=rpm, max_wait=max_wait)},
                                 backend=StoreBackend(store, window=window)))
    chain.append(stamp)
    link_gate(chain)
    return AsyncClient(middleware=chain), stamp


async def rpm(a: dict[str, Any]) -> dict[str, Any]:
    c, stamp = client(a["url"], rpm=a["limit"], window=a["window"], max_wait=a["window"] * 2)
    end = a["start"] + a["duration"]
    refused = 0

    async def task() -> None:
        nonlocal refused
        while time.time() < end:
            try:
                await c.complete(MODEL, "hi")
            except ClientRateLimitError:
                refused += 1

    await asyncio.sleep(max(a["start"] - time.time(), 0))
    await asyncio.gather(*(task() for _ in range(a["tasks"])))
    return {"sent": stamp.sent, "refused": refused}


async def open_breaker(a: dict[str, Any]) -> dict[str, Any]:
    c, _ = client(a["url"])
    c.mock.script(*[MockReply(status=500)] * 3)
    errors = []
    for _ in range(3):
        try:
            await c.complete(MODEL, "hi", max_retries=0)
        except Exception as e:
            errors.append(type(e).__name__)
    return {"errors": errors}


async def one_call(a: dict[str, Any]) -> dict[str, Any]:
    c, _ = client(a["url"])
    try:
        await c.complete(MODEL, "hi", max_retries=0)
        result = "ok"
    except CircuitOpenError:
        result = "CircuitOpenError"
    return {"result": result, "requests": len(c.mock.requests)}


async def cached_call(a: dict[str, Any]) -> dict[str, Any]:
    from modelwire.cache.redis import RedisCache
    c = AsyncClient(cache=RedisCache(a["url"], lock_timeout=a.get("lock_timeout", 10.0),
                                     timeout=5.0))
    c.mock.script(MockReply(a["text"], latency=a.get("latency", 0.0)))
    await asyncio.sleep(max(a.get("start", 0) - time.time(), 0))
    r = await c.complete(MODEL, "what is shared?")
    return {"cached": r.cached, "text": r.text, "requests": len(c.mock.requests)}


async def cached_stream(a: dict[str, Any]) -> dict[str, Any]:
    from modelwire.cache.redis import RedisCache
    c = AsyncClient(cache=RedisCache(a["url"], timeout=5.0))
    c.mock.script(MockReply(a["text"], chunk_delay=a.get("chunk_delay", 0.0),
                            tool_calls=[("f", {"x": 1})]))
    await asyncio.sleep(max(a.get("start", 0) - time.time(), 0))
    async with c.stream(MODEL, "stream it") as s:
        events = [repr(e) async for e in s]
        response = s.response
    return {"cached": response.cached, "events": events, "requests": len(c.mock.requests)}


MODES = {"rpm": rpm, "open_breaker": open_breaker, "one_call": one_call,
         "cached_call": cached_call, "cached_stream": cached_stream}

if __name__ == "__main__":
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(MODES[mode](args))))
