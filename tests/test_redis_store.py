"""RedisStore against a real redis-server: atomic operations, sharing across
processes (rate limit, breaker), outages (local state, one warning, reconnect)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient, CircuitOpenError, Client
from modelwire.errors import ConfigurationError, MissingDependencyError, StateStoreError
from modelwire.middleware import RateLimit
from modelwire.state import MemoryStore
from modelwire.state.redis import RedisStore, redis_key

sys.path.insert(0, str(Path(__file__).parent))
from redis_server import RedisServer, fresh_url, result, serve, spawn


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from serve()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    return fresh_url(redis_server)


async def keys_and_values(url: str) -> list[bytes]:
    import redis.asyncio as aioredis
    r = aioredis.Redis.from_url(url)
    found: list[bytes] = []
    async for k in r.scan_iter("*"):
        found.append(k)
        kind = await r.type(k)
        if kind == b"string":
            found.append(await r.get(k) or b"")
        elif kind == b"zset":
            found += await r.zrange(k, 0, -1)
    await r.aclose()
    return found


# --- the protocol, atomically ---------------------------------------------------


async def test_operations_match_the_memory_store(redis_url: str) -> None:
    t = [1000.0]
    redis, memory = RedisStore(redis_url, clock=lambda: t[0]), MemoryStore(clock=lambda: t[0])
    for store in (redis, memory):
        got: list[Any] = [
            await store.get("cb|a"), await store.add("cb|a", 5, 30),
            await store.add("cb|a", 6), await store.get("cb|a"),
            await store.incr("cb|n", 2, 30), await store.incr("cb|n", -0.5),
            await store.get_many(["cb|n", "cb|none"]),
            [await store.window_acquire("rl|w", 3, 10, 1) for _ in range(3)],
            await store.window_acquire("rl|w", 3, 10, 2),
            await store.window_acquire("rl|w", 3, 10, 9),
        ]
        await store.window_adjust("rl|w", 10, -2)
        got.append(await store.window_acquire("rl|w", 3, 10, 2))
        got.append(await store.record([("cb|x", 1, 5), ("cb|y", 2, None)], ["cb|n"]))
        got.append(await store.get("cb|n"))
        got.append(await store.gate("cb|a", [("rl|g", 1, 10, 1)]))
        await store.delete("cb|a")
        got.append([await store.gate("cb|a", [("rl|g", 1, 10, 1)]) for _ in range(2)])
        if store is redis:
            from_redis = got
    # Windows on Redis are stamped with the server's clock, which moved on by the
    # few milliseconds the test took: waits agree to within that.
    assert flat(from_redis) == pytest.approx(flat(got), abs=0.5)
    assert got[7] == [0.0, 0.0, 0.0]
    assert got[8] == pytest.approx(10.0) and got[9] == float("inf")
    assert got[-1] == [(None, 0.0), (None, pytest.approx(10.0))]


def flat(values: Any) -> list[float]:
    if isinstance(values, (list, tuple)):
        return [x for v in values for x in flat(v)]
    return [-1.0 if values is None else float(values)]


async def test_concurrent_increments_are_not_lost(redis_url: str) -> None:
    stores = [RedisStore(redis_url, timeout=10) for _ in range(4)]  # atomicity, not outages
    await asyncio.gather(*(s.incr("cb|count", 1) for s in stores for _ in range(50)))
    assert await stores[0].get("cb|count") == 200


async def test_keys_never_hold_the_base_url_or_key(redis_url: str) -> None:
    store = RedisStore(redis_url, namespace="mw-test")
    secret = "sk-secret-in-url"
    client = AsyncClient(state=store, api_keys={"mock": "sk-the-api-key"},
                         base_urls={"mock": f"http://user:{secret}@127.0.0.1:9/v1"},
                         rate_limits={"mock/m": RateLimit(rpm=100, tpm=10_000)})
    await client.complete("mock/m", "hi")
    stored = await keys_and_values(redis_url)
    assert stored and all(k.startswith(b"mw-test:") for k in stored if b":" in k[:8])
    blob = b" ".join(stored)
    assert secret.encode() not in blob and b"sk-the-api-key" not in blob and b"mock" not in blob
    assert secret not in repr(store) and "127.0.0.1" in repr(store)


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStore("http://localhost:6379")
    with pytest.raises(ConfigurationError, match="on_error"):
        RedisStore("redis://127.0.0.1:1", on_error="ignore")  # type: ignore[arg-type]


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError, match=r"modelwire\[redis\]"):
        RedisStore("redis://127.0.0.1:6379")


async def test_one_round_trip_per_call_for_breaker_and_limiter(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RedisStore(redis_url, flush_delay=60)  # held-back writes wait for the next call
    client = AsyncClient(state=store, rate_limits={"mock/m": RateLimit(rpm=1000, tpm=100_000)})
    await client.complete("mock/m", "warm up")
    trips = 0
    real = store._exec

    async def counting(issue: Any) -> Any:
        nonlocal trips
        trips += 1
        return await real(issue)

    monkeypatch.setattr(store, "_exec", counting)
    for _ in range(10):
        await client.complete("mock/m", "hi")
    # Each call: one pipelined round trip carrying the previous call's breaker
    # success and token correction, then the gate (breaker state + both windows).
    assert trips == 10
    await store.flush()
    assert trips == 11 and not store._pending
    # ... and the held-back successes all landed: 11 calls in the breaker's window.
    from modelwire.middleware import Breaker, find
    breaker = find(client.middleware, Breaker)
    key = client.build_call("mock/m", "x").target.key
    counts = await store.get_many(breaker._bucket_keys(key, store.clock())[:10])
    assert sum(c or 0 for c in counts) == 11


async def test_held_back_writes_land_before_the_next_read(redis_url: str) -> None:
    store = RedisStore(redis_url, flush_delay=60)
    for _ in range(3):
        await store.defer_record([("cb|x", 1.0, None)], ["cb|gone"])
    await store.window_adjust("rl|w", 10, 4)
    assert len(store._pending) == 4
    assert await store.get("cb|x") == 3.0
    assert await store.window_acquire("rl|w", 5, 10, 1) == 0.0
    assert await store.window_acquire("rl|w", 5, 10, 1) > 0  # 4 + 1 used, the limit is 5
    other = RedisStore(redis_url)
    assert await other.get("cb|x") == 3.0


async def test_held_back_writes_are_sent_on_their_own_after_flush_delay(
        redis_url: str) -> None:
    store, other = RedisStore(redis_url, flush_delay=0.01), RedisStore(redis_url)
    await store.defer_record([("cb|y", 2.0, None)])
    for _ in range(200):
        if await other.get("cb|y") == 2.0:
            break
        await asyncio.sleep(0.01)
    assert await other.get("cb|y") == 2.0 and not store._pending


def test_the_sync_client_shares_the_store(redis_url: str) -> None:
    with Client(state=RedisStore(redis_url), rate_limits={"mock/m": RateLimit(rpm=2)}) as c:
        c.complete("mock/m", "one")
        c.complete("mock/m", "two")
    other = AsyncClient(state=RedisStore(redis_url),
                        rate_limits={"mock/m": RateLimit(rpm=2, max_wait=0)})
    from modelwire import ClientRateLimitError
    with pytest.raises(ClientRateLimitError):
        asyncio.run(other.complete("mock/m", "three"))


# --- sharing across processes ---------------------------------------------------


@pytest.mark.slow
def test_four_processes_share_one_rpm_limit(redis_url: str) -> None:
    # A per-2-seconds limit stands in for "per minute": the same code with a
    # shorter window (StoreBackend(window=...)), so the test takes seconds.
    limit, window, rounds = 40, 2.0, 3
    start = time.time() + 4.0
    procs = [spawn("rpm", url=redis_url, limit=limit, window=window, start=start,
                   duration=rounds * window + 0.5, tasks=4) for _ in range(4)]
    # Watch the shared window log itself: every admitted request is an entry
    # stamped by the server; an entry lives `window` seconds, so polling more
    # often than that sees each one.
    key = AsyncClient().build_call("mock/shared", "x").target.key
    log = redis_key("modelwire", f"rl|{key}|requests")
    entries = asyncio.run(watch(redis_url, log, procs))
    results = [result(p, timeout=120) for p in procs]
    sent = sum(len(r["sent"]) for r in results)
    assert all(r["sent"] for r in results), "every process sent requests"
    assert len(entries) == sent, "every request sent was admitted by the shared log"
    stamps = sorted(entries.values())
    assert busiest(stamps, window) <= limit * 1.05
    # ... and together the four reach the limit: `rounds` full windows of it.
    reached = sum(1 for s in stamps if s < stamps[0] + rounds * window)
    assert reached >= rounds * limit * 0.95, f"only {reached} of {rounds * limit}"


async def watch(url: str, key: str, procs: list[Any]) -> dict[bytes, float]:
    import redis.asyncio as aioredis
    r = aioredis.Redis.from_url(url)
    seen: dict[bytes, float] = {}
    try:
        while True:
            running = any(p.poll() is None for p in procs)
            for member, score in await r.zrange(key, 0, -1, withscores=True):
                seen[member] = score
            if not running:
                return seen
            await asyncio.sleep(0.2)
    finally:
        await r.aclose()


def busiest(stamps: list[float], window: float) -> int:
    """The most stamps inside any window of ``window`` seconds."""
    j = worst = 0
    for i, s in enumerate(stamps):
        while stamps[j] <= s - window:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


@pytest.mark.slow
def test_one_process_opening_the_breaker_is_seen_by_the_others(redis_url: str) -> None:
    opened = result(spawn("open_breaker", url=redis_url))
    assert opened["errors"] == ["ServerError"] * 3
    others = [result(p) for p in [spawn("one_call", url=redis_url) for _ in range(3)]]
    assert others == [{"result": "CircuitOpenError", "requests": 0}] * 3


# --- outages --------------------------------------------------------------------


@pytest.mark.slow
async def test_redis_down_calls_go_on_then_sharing_resumes(
        redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(redis_url, max_backoff=0.2)
    client = AsyncClient(state=store, rate_limits={"mock/shared": RateLimit(rpm=10_000)})
    await client.complete("mock/shared", "before")
    redis_server.stop()
    caplog.set_level(logging.WARNING, "modelwire.state")
    try:
        for i in range(20):
            began = time.monotonic()
            response = await client.complete("mock/shared", f"during {i}")
            assert response.text == f"during {i}"
            assert time.monotonic() - began < 3.0  # bounded by the 0.5 s timeout, generously
            await asyncio.sleep(0.02)
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1, [r.getMessage() for r in caplog.records]
        assert "127.0.0.1" in down[0].getMessage()
    finally:
        redis_server.start()
    # Another process opens the breaker; once the backoff passes we see it again.
    assert result(spawn("open_breaker", url=redis_url))["errors"] == ["ServerError"] * 3
    seen = None
    for _ in range(100):
        try:
            await client.complete("mock/shared", "after", max_retries=0)
        except CircuitOpenError as e:
            seen = e
            break
        await asyncio.sleep(0.05)
    assert seen is not None, "the breaker opened by another process was never seen"
    assert any("back" in r.getMessage() for r in caplog.records)


async def test_on_error_raise_raises_a_typed_error() -> None:
    from redis_server import free_port
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", on_error="raise")
    with pytest.raises(StateStoreError, match=r"127\.0\.0\.1"):
        await store.get("cb|x")
    with pytest.raises(StateStoreError):  # still down: fails fast without trying
        await store.get("cb|x")


@pytest.mark.slow
async def test_auth_from_the_url_and_the_password_never_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from redis_server import find_redis_server
    server = RedisServer(find_redis_server(), str(tmp_path))
    server.extra = ["--requirepass", "s3cret-pw"]
    server.start()
    try:
        good = RedisStore(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
        assert await good.incr("cb|n", 1) == 1.0
        assert good.conn.outages == 0 and "s3cret" not in repr(good)
        bad = RedisStore(f"redis://:wrong-pw@127.0.0.1:{server.port}/0")
        assert await bad.incr("cb|n", 1) == 1.0  # served locally: the call goes on
        assert bad.conn.outages == 1
        assert await good.get("cb|n") == 1.0  # the bad one never wrote
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "unreachable" in text and "wrong-pw" not in text and "s3cret" not in text
    finally:
        server.stop()


async def test_the_limits_librarys_redis_storage_also_shares_a_window(redis_url: str) -> None:
    # The alternative the README names: the `limits` backend on its own Redis storage.
    from limits.aio.storage import RedisStorage

    from modelwire.middleware import LimitsBackend
    uri = "async+" + redis_url.rsplit("/", 1)[0]
    one, two = (LimitsBackend(RedisStorage(uri, implementation="redispy")) for _ in range(2))
    assert [await one.acquire("k", 3, None, 0) for _ in range(2)] == [0.0, 0.0]
    assert await two.acquire("k", 3, None, 0) == 0.0
    assert await two.acquire("k", 3, None, 0) > 0  # the fourth of 3 per minute waits


async def test_a_redis_that_never_answers_costs_a_call_one_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis", reason="the redis package is not installed")
    import socket
    silent = socket.socket()  # accepts connections, never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        client = AsyncClient(state=store, rate_limits={"mock/m": RateLimit(rpm=100)})
        took = []
        for i in range(5):
            began = time.monotonic()
            assert (await client.complete("mock/m", f"call {i}")).text == f"call {i}"
            took.append(time.monotonic() - began)
        assert max(took) < 2.0  # one 0.2 s timeout, then local state (generous bound)
        assert store.conn.outages == 1
        assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1
    finally:
        silent.close()
