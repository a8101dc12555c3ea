"""The response cache: hits and misses, TTL, eviction, tenants, stream replay,
single flight; memory, disk and Redis backends (Redis shared across processes)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient, Client, ServerError
from modelwire.cache import DiskCache, MemoryCache
from modelwire.cache.key import request_key
from modelwire.errors import ConfigurationError
from modelwire.middleware import ResponseCache
from modelwire.mock import MockReply

sys.path.insert(0, str(Path(__file__).parent))
from redis_server import RedisServer, fresh_url, result, serve, spawn

MODEL = "mock/cached"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from serve()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    return fresh_url(redis_server)


# --- hits, misses, what counts as the same request --------------------------------


async def test_a_repeat_is_served_from_the_cache_with_the_original_usage() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("first answer", usage=(12, 3)))
    first = await client.complete(MODEL, "hello", temperature=0)
    again = await client.complete(MODEL, "hello", temperature=0)
    assert len(client.mock.requests) == 1
    assert (first.cached, again.cached) == (False, True)
    assert again.text == "first answer" and again.usage == first.usage
    assert again.usage.input_tokens == 12 and again.provider == "mock"


@pytest.mark.parametrize("change", [
    {"messages": "hello!"}, {"max_tokens": 5}, {"stop": ["x"]}, {"top_p": 0.5},
    {"seed": 7}, {"extra": {"user": "u"}}, {"tools": [{"name": "f", "parameters": {}}]},
    {"model": "mock/other"}, {"fallbacks": ["mock/backup"]},
])
async def test_any_difference_in_the_request_is_a_miss(change: dict[str, Any]) -> None:
    client = AsyncClient(cache=True)
    base: dict[str, Any] = {"model": MODEL, "messages": "hello"}
    await client.complete(**base)
    r = await client.complete(**{**base, **change})
    assert not r.cached and len(client.mock.requests) == 2


async def test_sampled_calls_are_cached_only_when_asked() -> None:
    client = AsyncClient(cache=True)
    for _ in range(2):
        assert not (await client.complete(MODEL, "hi", temperature=0.7)).cached
    assert len(client.mock.requests) == 2
    await client.complete(MODEL, "hi", temperature=0.7, cache=True)
    assert (await client.complete(MODEL, "hi", temperature=0.7, cache=True)).cached
    sampled = AsyncClient(cache=ResponseCache(MemoryCache(), sampled=True))
    await sampled.complete(MODEL, "hi", temperature=1.0)
    assert (await sampled.complete(MODEL, "hi", temperature=1.0)).cached


async def test_cache_false_on_a_call_bypasses_it() -> None:
    client = AsyncClient(cache=True)
    await client.complete(MODEL, "hi")
    assert not (await client.complete(MODEL, "hi", cache=False)).cached
    assert len(client.mock.requests) == 2


async def test_errors_are_not_cached() -> None:
    client = AsyncClient(cache=True, max_retries=0)
    client.mock.script(MockReply(status=500), MockReply("ok"))
    with pytest.raises(ServerError):
        await client.complete(MODEL, "hi")
    assert (await client.complete(MODEL, "hi")).text == "ok"


def test_bad_cache_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cache="):
        AsyncClient(cache="yes please")
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryCache(max_entries=0)


def test_the_sync_client_caches_too() -> None:
    with Client(cache=True) as client:
        client.complete(MODEL, "hi")
        assert client.complete(MODEL, "hi").cached
        with client.stream(MODEL, "a b c") as s:
            first = list(s)
        with client.stream(MODEL, "a b c") as s:
            assert list(s) == first and s.response.cached
        assert len(client.mock.requests) == 2


# --- TTL and eviction --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_entries_expire_after_their_ttl(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()
    backend = (MemoryCache(ttl=10, clock=clock) if kind == "memory"
               else DiskCache(tmp_path / "c.db", ttl=10, clock=clock))
    client = AsyncClient(cache=backend)
    await client.complete(MODEL, "hi")
    clock.now += 9.9
    assert (await client.complete(MODEL, "hi")).cached
    clock.now += 0.2
    assert not (await client.complete(MODEL, "hi")).cached
    assert len(client.mock.requests) == 2


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_least_recently_used_entries_are_evicted(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()
    backend = (MemoryCache(max_entries=2, clock=clock) if kind == "memory"
               else DiskCache(tmp_path / "c.db", max_entries=2, clock=clock))
    client = AsyncClient(cache=backend)
    for text in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest
        clock.now += 1
        await client.complete(MODEL, text)
    assert len(backend) == 2
    clock.now += 1
    assert (await client.complete(MODEL, "a")).cached
    assert (await client.complete(MODEL, "c")).cached
    assert not (await client.complete(MODEL, "b")).cached


async def test_the_disk_cache_survives_a_new_process_object(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = AsyncClient(cache=DiskCache(path))
    first.mock.script(MockReply("kept on disk"))
    await first.complete(MODEL, "hi")
    second = AsyncClient(cache=DiskCache(path))
    r = await second.complete(MODEL, "hi")
    assert r.cached and r.text == "kept on disk" and not second.mock.requests


# --- tenants --------------------------------------------------------------------------


async def test_two_tenants_never_share_and_keys_never_enter_the_cache() -> None:
    backend = MemoryCache()
    alice = AsyncClient(cache=backend, api_keys={"mock": "sk-alice-secret"})
    bob = AsyncClient(cache=backend, api_keys={"mock": "sk-bob-secret"})
    alice.mock.script(MockReply("for alice"))
    bob.mock.script(MockReply("for bob"))
    assert (await alice.complete(MODEL, "hi")).text == "for alice"
    r = await bob.complete(MODEL, "hi")
    assert r.text == "for bob" and not r.cached
    assert (await AsyncClient(cache=backend, api_keys={"mock": "sk-alice-secret"})
            .complete(MODEL, "hi")).text == "for alice"
    stored = json.dumps([[k, v] for k, v in backend._entries.items()])
    assert "secret" not in stored and len(backend) == 2


def test_tenant_option_separates_callers_sharing_one_key() -> None:
    call = AsyncClient().build_call(MODEL, "hi")
    assert request_key(call, "tenant-a") != request_key(call, "tenant-b")
    assert request_key(call, "tenant-a") == request_key(call, "tenant-a")


# --- streams -------------------------------------------------------------------------


async def test_a_cached_stream_replays_the_original_events() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("one two three four", tool_calls=[("lookup", {"q": "x"})],
                                 reasoning="thinking", usage=(5, 9)))
    async with client.stream(MODEL, "go") as s:
        original = [e async for e in s]
        first = s.response
    async with client.stream(MODEL, "go") as s:
        replayed = [e async for e in s]
        again = s.response
    assert len(client.mock.requests) == 1
    assert replayed == original and len(original) > 5
    assert again.cached and not first.cached
    assert (again.text, again.tool_calls, again.usage, again.reasoning) == (
        first.text, first.tool_calls, first.usage, first.reasoning)
    # a complete() of the same request is its own entry (stream is part of the key)
    assert not (await client.complete(MODEL, "go")).cached


async def test_a_stream_closed_early_is_not_cached() -> None:
    client = AsyncClient(cache=True)
    async with client.stream(MODEL, "one two three four five", max_tokens=50) as s:
        async for _ in s:
            break
    async with client.stream(MODEL, "one two three four five", max_tokens=50) as s:
        [e async for e in s]
        assert not s.response.cached
    assert len(client.mock.requests) == 2


# --- single flight --------------------------------------------------------------------


async def test_concurrent_identical_calls_send_one_request() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("shared", latency=0.2))
    results = await asyncio.gather(*(client.complete(MODEL, "same") for _ in range(8)))
    assert len(client.mock.requests) == 1
    assert {r.text for r in results} == {"shared"}
    assert sorted(r.cached for r in results) == [False] + [True] * 7


async def test_concurrent_identical_streams_send_one_request() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("a b c", chunk_delay=0.02))

    async def read() -> list[Any]:
        async with client.stream(MODEL, "same") as s:
            return [e async for e in s]

    results = await asyncio.gather(*(read() for _ in range(4)))
    assert len(client.mock.requests) == 1
    assert all(r == results[0] for r in results)


async def test_waiters_go_themselves_when_the_leader_fails() -> None:
    client = AsyncClient(cache=True, max_retries=0)
    client.mock.script(MockReply(status=500, latency=0.1), MockReply("second try"))
    outcomes = await asyncio.gather(*(client.complete(MODEL, "same") for _ in range(3)),
                                    return_exceptions=True)
    assert isinstance(outcomes[0], ServerError)
    assert [getattr(o, "text", None) for o in outcomes[1:]] == ["second try"] * 2
    assert len(client.mock.requests) == 2


# --- Redis: one cache for every process -------------------------------------------------


@pytest.mark.slow
def test_the_redis_cache_is_shared_across_processes(redis_url: str) -> None:
    first = result(spawn("cached_call", url=redis_url, text="from process one"))
    assert first == {"cached": False, "text": "from process one", "requests": 1}
    second = result(spawn("cached_call", url=redis_url, text="never sent"))
    assert second == {"cached": True, "text": "from process one", "requests": 0}


@pytest.mark.slow
def test_single_flight_across_processes(redis_url: str) -> None:
    start = time.time() + 3.0
    procs = [spawn("cached_call", url=redis_url, text=f"answer {i}", latency=1.0, start=start)
             for i in range(4)]
    results = [result(p) for p in procs]
    assert sum(r["requests"] for r in results) == 1, results
    assert len({r["text"] for r in results}) == 1
    assert sorted(r["cached"] for r in results) == [False, True, True, True]


@pytest.mark.slow
async def test_a_waiter_goes_to_the_provider_when_the_lock_holder_dies(redis_url: str) -> None:
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
            pytest.fail("the first process never took the lock")
    finally:
        await r.aclose()
    holder.kill()
    holder.communicate()
    waiter = AsyncClient(cache=RedisCache(redis_url, lock_timeout=1.0, timeout=5.0))
    waiter.mock.script(MockReply("went myself"))
    response = await waiter.complete("mock/shared", "what is shared?")
    assert response.text == "went myself" and not response.cached
    assert len(waiter.mock.requests) == 1


async def test_redis_cache_down_means_misses_not_failures(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    pytest.importorskip("redis", reason="the redis package is not installed")
    from redis_server import free_port

    from modelwire.cache.redis import RedisCache
    client = AsyncClient(cache=RedisCache(f"redis://127.0.0.1:{free_port()}/0"))
    for _ in range(3):
        assert not (await client.complete(MODEL, "hi")).cached
    assert len(client.mock.requests) == 3
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.slow
def test_a_stream_in_flight_in_one_process_is_replayed_to_another(redis_url: str) -> None:
    start = time.time() + 3.0
    text = "one two three four five six seven eight"
    first = spawn("cached_stream", url=redis_url, text=text, chunk_delay=0.1, start=start)
    second = spawn("cached_stream", url=redis_url, text="never sent", start=start + 0.3)
    a, b = result(first), result(second)
    assert (a["requests"], b["requests"]) == (1, 0)
    assert (a["cached"], b["cached"]) == (False, True)
    assert b["events"] == a["events"] and len(a["events"]) > 8


# --- what the merge with tools, structured output and metrics must keep true -------


async def test_a_tool_is_the_same_request_after_its_wire_forms_are_cached() -> None:
    """A Tool keeps per-provider translations of itself once sent: they must not
    change the cache key, or the second identical call would be a miss."""
    from modelwire import Tool

    weather = Tool("weather", "Weather for a city",
                   {"type": "object", "properties": {"city": {"type": "string"}}})
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("sunny"))
    await client.complete(MODEL, "hello", tools=[weather], temperature=0)
    again = await client.complete(MODEL, "hello", tools=[weather], temperature=0)
    assert again.cached and len(client.mock.requests) == 1


async def test_a_different_response_format_is_a_miss() -> None:
    client = AsyncClient(cache=True)
    a = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    b = {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}
    client.mock.script(MockReply('{"a": 1}'), MockReply('{"b": 2}'))
    first = await client.complete(MODEL, "json please", response_format=a, temperature=0)
    second = await client.complete(MODEL, "json please", response_format=b, temperature=0)
    assert (first.parsed, second.parsed) == ({"a": 1}, {"b": 2})
    assert len(client.mock.requests) == 2


async def test_cache_hits_cost_nothing_in_metrics_and_count_the_saving() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("answer", usage=(100, 20)))
    for _ in range(3):
        await client.complete(MODEL, "hello", temperature=0)
    assert client.metrics is not None
    row = client.metrics.snapshot()["models"][MODEL]
    assert (row["calls"], row["cache_hits"]) == (3, 2)
    assert (row["input_tokens"], row["output_tokens"]) == (100, 20)  # spent once
    assert (row["cache_saved_input_tokens"], row["cache_saved_output_tokens"]) == (200, 40)


async def test_embeddings_are_not_served_from_the_chat_cache() -> None:
    client = AsyncClient(cache=True)
    one = await client.embed("mock/embed", ["a", "b"])
    two = await client.embed("mock/embed", ["a", "b"])
    assert len(one.vectors) == len(two.vectors) == 2 and not two.cached
