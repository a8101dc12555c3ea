"""Shared state on a real Redis at its edges: budgets across processes, the
breaker/limiter hand-off under retries, probes and streams, a Redis that loses
its data, forgets its scripts or refuses a command."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelwire import AsyncClient, CircuitOpenError, ClientRateLimitError, ServerError
from modelwire.middleware import BreakerPolicy, RateLimit, RetryPolicy
from modelwire.mock import MockReply
from modelwire.observe.budget import Budget
from modelwire.state.redis import RedisStore, redis_key

sys.path.insert(0, str(Path(__file__).parent))
from redis_server import RedisServer, fresh_url, result, serve, spawn

MODEL = "mock/shared"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from serve()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    return fresh_url(redis_server)


async def admitted(url: str, client: AsyncClient) -> int:
    """Requests in the shared rate-limit window log of MODEL."""
    import redis.asyncio as aioredis
    key = client.build_call(MODEL, "x").target.key
    r = aioredis.Redis.from_url(url)
    try:
        return int(await r.zcard(redis_key("modelwire", f"rl|{key}|requests")))
    finally:
        await r.aclose()


# --- budgets share one spend across processes --------------------------------------


@pytest.mark.slow
def test_four_processes_share_one_token_budget(redis_url: str) -> None:
    limit = 600  # 40 calls of 15 reported tokens (as estimated: "hi" + max_tokens=10)
    start = time.time() + 3.0
    procs = [spawn("budget", url=redis_url, limit=limit, start=start, tasks=3)
             for _ in range(4)]
    results = [result(p, timeout=120) for p in procs]
    spent = sum(r["spent"] for r in results)
    # Every call reserves its estimate first (atomically, on the server), so the
    # processes together never pass the limit, and they reach it.
    assert spent == limit, results
    assert all(r["requests"] * 15 == r["spent"] for r in results)  # refused: nothing sent
    # A fifth process is refused at once: the spend is shared, and the store holds
    # exactly the reported spend of all four (no lost update, every reservation
    # corrected to the reported usage or given back).
    fifth = result(spawn("budget", url=redis_url, limit=spent, start=0, tasks=1))
    assert fifth == {"spent": 0, "refused": 1, "requests": 0, "status": float(spent)}


# --- the breaker/limiter hand-off (StateStore.gate) under retries ------------------


async def test_a_retried_attempt_takes_rate_limit_capacity_again(redis_url: str) -> None:
    client = AsyncClient(state=RedisStore(redis_url, timeout=5.0),
                         rate_limits={MODEL: RateLimit(rpm=100)},
                         retry=RetryPolicy(initial=0, jitter=0))
    client.mock.script(MockReply(status=500), MockReply(status=503), MockReply("ok"))
    assert (await client.complete(MODEL, "hi", max_retries=2)).text == "ok"
    assert len(client.mock.requests) == 3
    assert await admitted(redis_url, client) == 3  # one window entry per attempt


async def test_a_retry_without_capacity_is_not_sent_and_the_failure_still_counts(
        redis_url: str) -> None:
    client = AsyncClient(state=RedisStore(redis_url, timeout=5.0),
                         rate_limits={MODEL: RateLimit(rpm=1, max_wait=0)},
                         retry=RetryPolicy(initial=0, jitter=0),
                         breaker=BreakerPolicy(failures=1, failure_rate=None, cooldown=600))
    client.mock.script(MockReply(status=500), MockReply("never sent"))
    # The call failed with the provider's 500 (the limiter only refused its retry):
    # that is what the caller sees, and what the breaker (outside retry) counts.
    with pytest.raises(ServerError) as info:
        await client.complete(MODEL, "hi", max_retries=1)
    assert any("retry was not sent" in n for n in getattr(info.value, "__notes__", []))
    assert len(client.mock.requests) == 1 and await admitted(redis_url, client) == 1
    with pytest.raises(CircuitOpenError):
        await client.complete(MODEL, "hi")
    with pytest.raises(ClientRateLimitError):  # a first attempt refused: the refusal itself
        await client.complete(MODEL, "other", breaker=False)


async def test_a_half_open_probe_and_a_stream_take_capacity(redis_url: str) -> None:
    client = AsyncClient(state=RedisStore(redis_url, timeout=5.0),
                         rate_limits={MODEL: RateLimit(rpm=100)}, max_retries=0,
                         breaker=BreakerPolicy(failures=1, failure_rate=None, cooldown=0.05))
    client.mock.script(MockReply(status=500))
    with pytest.raises(ServerError):
        await client.complete(MODEL, "hi")
    time.sleep(0.1)
    assert (await client.complete(MODEL, "probe")).text == "probe"  # the probe closes it
    assert await admitted(redis_url, client) == 2
    async with client.stream(MODEL, "a stream") as s:
        assert [e async for e in s]
    assert await admitted(redis_url, client) == 3


# --- a Redis that refuses, forgets or loses ------------------------------------------


async def test_an_acl_without_evalsha_means_local_state_and_one_warning(
        redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import redis.asyncio as aioredis
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command("ACL", "SETUSER", "no-scripts", "on", ">pw", "~*", "+@all",
                                "-evalsha", "-eval")
    await admin.aclose()
    url = f"redis://no-scripts:pw@127.0.0.1:{redis_server.port}/0"
    caplog.set_level(logging.DEBUG, "modelwire.state")
    for limits in (None, {MODEL: RateLimit(rpm=1000)}):
        # GET works, EVALSHA does not: the store "comes back" on every read and fails
        # again on the next script (and a background flush fails while a call reads).
        store = RedisStore(url, max_backoff=0.05, flush_delay=0.001)
        client = AsyncClient(state=store, rate_limits=limits)
        for i in range(25):
            assert (await client.complete(MODEL, f"call {i}")).text == f"call {i}"
            await asyncio.sleep(0.01)
        await store.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and "refused" in r.getMessage()]
    assert len(warnings) == 2, warnings  # one per store, however often it flapped
    assert "NoPermissionError" in warnings[0] and "evalsha" in warnings[0]
    assert "unreachable" not in warnings[0] and "pw" not in " ".join(warnings)


async def test_scripts_flushed_mid_run_are_loaded_again(redis_url: str) -> None:
    import redis.asyncio as aioredis
    store = RedisStore(redis_url, timeout=5.0, flush_delay=60)
    client = AsyncClient(state=store, rate_limits={MODEL: RateLimit(rpm=1000, tpm=10**6)})
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(3):
            await client.complete(MODEL, "before")
        await admin.script_flush()  # held-back writes and the next gate all meet NOSCRIPT
        for _ in range(3):
            await client.complete(MODEL, "after")
        await store.flush()
        assert store.conn.outages == 0
        assert await admitted(redis_url, client) == 6
    finally:
        await admin.aclose()


async def test_a_redis_that_lost_its_data_closes_the_breaker(redis_url: str) -> None:
    import redis.asyncio as aioredis
    client = AsyncClient(state=RedisStore(redis_url, timeout=5.0), max_retries=0,
                         breaker=BreakerPolicy(failures=1, failure_rate=None, cooldown=600))
    client.mock.script(MockReply(status=500))
    with pytest.raises(ServerError):
        await client.complete(MODEL, "hi")
    with pytest.raises(CircuitOpenError):
        await client.complete(MODEL, "hi")
    admin = aioredis.Redis.from_url(redis_url)
    await admin.flushall()  # a restart without persistence
    await admin.aclose()
    # The open state is gone: the breaker starts afresh (closed), as a new process would.
    assert (await client.complete(MODEL, "again")).text == "again"


async def test_a_paused_redis_costs_a_call_one_timeout_per_redis_object(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import redis.asyncio as aioredis

    from modelwire.cache.redis import RedisCache
    store, cache = RedisStore(redis_url, timeout=0.2), RedisCache(redis_url, timeout=0.2)
    client = AsyncClient(state=store, cache=cache, rate_limits={MODEL: RateLimit(rpm=1000)},
                         budget=Budget(tokens=10**6))
    await client.complete(MODEL, "warm up")
    admin = aioredis.Redis.from_url(redis_url)
    await admin.client_pause(2000)  # every client of the server stalls for 2 s
    try:
        took = []
        for i in range(4):
            began = time.monotonic()
            assert (await client.complete(MODEL, f"paused {i}")).text == f"paused {i}"
            took.append(time.monotonic() - began)
        # the cache's lookup and the store's first read each wait one 0.2 s timeout,
        # then both serve from their fallbacks (generous bound: a busy machine)
        assert took[0] < 1.5 and max(took[1:]) < 0.5, took
        assert (store.conn.outages, cache.conn.outages) == (1, 1)
        text = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("response cache" in t and "every lookup is a miss" in t for t in text)
    finally:
        await admin.client_unpause()
        await admin.aclose()


async def test_nothing_stored_in_redis_names_a_key_a_url_or_a_prompt(redis_url: str) -> None:
    from modelwire.cache.redis import RedisCache
    from modelwire.testing.fault_server import Fault, FaultServer
    model = "openai/gpt-4o-mini"
    async with FaultServer() as server:
        server.script(Fault.ok("answer one", usage=(10, 5)), Fault.ok("answer two", usage=(10, 5)))
        base = server.url_for("openai")
        async with AsyncClient(api_keys={"openai": "sk-APIKEY-SECRET"},
                               base_urls={"openai": base}, state=RedisStore(redis_url),
                               cache=RedisCache(redis_url),
                               rate_limits={model: RateLimit(rpm=100, tpm=10**5)},
                               budget=[Budget(usd=1.0, tokens=10**6),
                                       Budget(tokens=10**6, tag="secret-tag")]) as client:
            await client.complete(model, "prompt-one", tags=["secret-tag"])
            async with client.stream(model, "prompt-two") as s:
                assert [e async for e in s]
            assert (await client.complete(model, "prompt-one", tags=["secret-tag"])).cached
    import redis.asyncio as aioredis
    r = aioredis.Redis.from_url(redis_url)
    keys, values = [], []
    async for k in r.scan_iter("*"):
        keys.append(k)
        kind = await r.type(k)
        values += [await r.get(k) or b""] if kind == b"string" else await r.zrange(k, 0, -1)
    await r.aclose()
    assert len(keys) >= 8  # breaker, both windows, budgets, two cache entries
    hosts = base.split("//", 1)[1].split("/", 1)[0].encode()
    for blob in (b" ".join(keys), b" ".join(values)):
        assert b"APIKEY-SECRET" not in blob and hosts not in blob and b"127.0.0.1" not in blob
    # keys name no model, prompt or tag either (a prompt is in its cached answer only
    # as far as the answer repeats it)
    assert not any(w in b" ".join(keys) for w in (b"gpt", b"openai", b"prompt", b"secret-tag"))
    assert not any(w in b" ".join(values) for w in (b"prompt-one", b"prompt-two"))


# --- single flight across processes when the holder is killed --------------------------


@pytest.mark.slow
async def test_a_waiting_process_goes_itself_once_the_killed_holders_lock_expires(
        redis_url: str) -> None:
    import redis.asyncio as aioredis

    from modelwire.cache.redis import RedisCache
    holder = spawn("cached_call", url=redis_url, text="never finished", latency=60,
                   lock_timeout=1.0)
    r = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(400):
            if [k async for k in r.scan_iter("modelwire:cache-lock:*")]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the holder never took the lock")
        waiter = AsyncClient(cache=RedisCache(redis_url, lock_timeout=1.0, timeout=5.0))
        waiter.mock.script(MockReply("went myself"))
        task = asyncio.create_task(waiter.complete("mock/shared", "what is shared?"))
        await asyncio.sleep(0.5)
        assert not task.done() and not waiter.mock.requests  # it waits for the holder
        holder.kill()  # SIGKILL: no unlock, no last word
        holder.communicate()
        response = await asyncio.wait_for(task, 20)  # the lock expires within 1 s
        assert response.text == "went myself" and not response.cached
        assert len(waiter.mock.requests) == 1
        assert not [k async for k in r.scan_iter("modelwire:cache-lock:*")]  # unlocked
    finally:
        await r.aclose()


async def test_an_answer_larger_than_the_redis_entry_bound_is_not_cached(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from modelwire.cache.redis import RedisCache
    client = AsyncClient(cache=RedisCache(redis_url, max_entry_bytes=64 * 1024, timeout=5.0))
    client.mock.script(*[MockReply("word " * 40_000)] * 2, MockReply("small"))  # ~200 KB
    for _ in range(2):
        assert not (await client.complete(MODEL, "huge")).cached
    await client.complete(MODEL, "tiny")
    assert (await client.complete(MODEL, "tiny")).cached
    r = aioredis.Redis.from_url(redis_url)
    try:
        entries = [k async for k in r.scan_iter("modelwire:cache:*")]
        assert len(entries) == 1 and await r.strlen(entries[0]) < 64 * 1024
        assert await r.pttl(entries[0]) > 0  # every entry has its TTL
    finally:
        await r.aclose()


async def test_writes_held_back_when_redis_dies_land_in_the_local_state(
        tmp_path: Path) -> None:
    from redis_server import find_redis_server
    server = RedisServer(find_redis_server(), str(tmp_path))
    server.start()
    try:
        store = RedisStore(server.url, flush_delay=60)
        await store.defer_record([("cb|x", 2.0, None)], ["cb|streak"])
        await store.window_adjust("rl|w", 10, 3)
        assert len(store._pending) == 2
    finally:
        server.stop()
    assert await store.get("cb|x") == 2.0  # Redis is gone: served locally, writes kept
    assert store.conn.outages == 1
    assert await store.window_acquire("rl|w", 4, 10, 1) == 0.0
    assert await store.window_acquire("rl|w", 4, 10, 1) > 0  # 3 + 1 used of 4


async def test_a_db_the_server_does_not_have_means_local_state_and_a_clear_warning(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(redis_url.rsplit("/", 1)[0] + "/99")  # 16 dbs by default
    client = AsyncClient(state=store, rate_limits={MODEL: RateLimit(rpm=100)})
    for i in range(3):
        assert (await client.complete(MODEL, f"call {i}")).text == f"call {i}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "DB index is out of range" in warnings[0], warnings
