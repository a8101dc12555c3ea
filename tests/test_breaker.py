"""Circuit breaker: when it opens, what it counts, cool-down, probes, and the
end-to-end promise: with the primary down, fallback takes over without
touching the primary until one probe after the cool-down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from modelwire import AsyncClient, Timeouts
from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    NotFoundError,
    ProviderConnectionError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from modelwire.hooks import BreakerClosed, BreakerHalfOpen, BreakerOpened, Hooks
from modelwire.middleware import Breaker, BreakerPolicy, RetryPolicy
from modelwire.pipeline import Call, Outcome, Target
from modelwire.registry import get_spec
from modelwire.response import Response
from modelwire.state import MemoryStore
from modelwire.testing import Fault, FaultServer
from modelwire.types import Message


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def target(model: str = "gpt-4o-mini", base: str = "http://127.0.0.1:9/v1") -> Target:
    return Target(get_spec("openai"), model, base, "sk-secret")


def call_for(t: Target, **options: Any) -> Call:
    return Call(messages=[Message("user", "hi")], target=t, options=dict(options))


class Terminal:
    """Counts calls; raises ``error`` while it is set, else returns a Response."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None

    async def __call__(self, call: Call) -> Outcome:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Response(text="ok")


def breaker(clock: Clock, events: list[Any] | None = None, **policy: Any) -> Breaker:
    hooks = Hooks()
    if events is not None:
        hooks.subscribe(events.append)
    return Breaker(BreakerPolicy(**policy), store=MemoryStore(clock=clock), hooks=hooks)


async def run(b: Breaker, term: Terminal, t: Target | None = None, **options: Any) -> str:
    """One call through the breaker: 'ok', or the error class name."""
    try:
        await b(call_for(t or target(), **options), term)
        return "ok"
    except Exception as e:  # the outcome is what the test inspects
        return type(e).__name__


# --- opening --------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: ServerError("x", status=503),
                                  lambda: RateLimitError("x", status=429),
                                  lambda: RequestTimeoutError("x"),
                                  lambda: ProviderConnectionError("x")])
async def test_opens_after_n_consecutive_provider_failures(make: Callable[[], Exception]) -> None:
    clock, term = Clock(), Terminal()
    events: list[Any] = []
    b = breaker(clock, events, failures=3, failure_rate=None)
    term.error = make()
    assert [await run(b, term) for _ in range(3)] == [type(term.error).__name__] * 3
    assert await b.state(target()) == "open"
    term.error = None
    assert await run(b, term) == "CircuitOpenError"
    assert term.calls == 3  # rejected without traffic
    assert events == [BreakerOpened("openai/gpt-4o-mini", "3 consecutive calls failed")]


@pytest.mark.parametrize("make", [lambda: BadRequestError("x", status=400),
                                  lambda: AuthenticationError("x", status=401),
                                  lambda: NotFoundError("x", status=404),
                                  lambda: ClientRateLimitError("ours")])
async def test_caller_faults_never_open_it(make: Callable[[], Exception]) -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=2, failure_rate=0.1, min_calls=2)
    term.error = make()
    for _ in range(50):
        await run(b, term)
    assert term.calls == 50
    assert await b.state(target()) == "closed"


async def test_a_success_resets_the_consecutive_count() -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=3, failure_rate=None)
    for _ in range(10):
        term.error = ServerError("x", status=500)
        await run(b, term)
        await run(b, term)
        term.error = None
        assert await run(b, term) == "ok"
    assert await b.state(target()) == "closed"


async def test_opens_on_failure_rate_once_min_calls_were_seen() -> None:
    clock, term = Clock(), Terminal()
    events: list[Any] = []
    b = breaker(clock, events, failures=100, failure_rate=0.5, min_calls=10, window=60.0)
    pattern = ["ok", "fail"] * 4 + ["ok"]  # 9 calls, 4 failures: below min_calls
    for outcome in pattern:
        term.error = None if outcome == "ok" else ServerError("x", status=500)
        await run(b, term)
        clock.t += 1
    assert await b.state(target()) == "closed"
    term.error = ServerError("x", status=500)
    await run(b, term)  # 10 calls, 5 failures: 50%
    assert await b.state(target()) == "open"
    assert events == [BreakerOpened("openai/gpt-4o-mini", "5 of 10 calls failed in 60s")]


async def test_failures_older_than_the_window_do_not_count() -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=100, failure_rate=0.5, min_calls=10, window=60.0)
    term.error = ServerError("x", status=500)
    for _ in range(4):
        await run(b, term)
    clock.t += 120  # those four failures have left the window
    for i in range(10):
        term.error = ServerError("x", status=500) if i < 4 else None
        await run(b, term)
    assert await b.state(target()) == "closed"  # 4 of 10 in the window


async def test_targets_have_separate_circuits() -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=2, failure_rate=None)
    term.error = ServerError("x", status=500)
    for _ in range(2):
        await run(b, term, target("gpt-4o-mini"))
    term.error = None
    assert await run(b, term, target("gpt-4o-mini")) == "CircuitOpenError"
    assert await run(b, term, target("gpt-4o")) == "ok"  # another model
    assert await run(b, term, target("gpt-4o-mini", "http://127.0.0.1:9/other")) == "ok"


async def test_per_call_breaker_false_bypasses_it() -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=1, failure_rate=None)
    term.error = ServerError("x", status=500)
    await run(b, term)
    term.error = None
    assert await run(b, term) == "CircuitOpenError"
    assert await run(b, term, breaker=False) == "ok"


# --- cool-down and half-open ---------------------------------------------------------


async def test_rejects_until_the_cooldown_then_one_probe_closes_it() -> None:
    clock, term = Clock(), Terminal()
    events: list[Any] = []
    b = breaker(clock, events, failures=1, failure_rate=None, cooldown=30.0)
    term.error = ServerError("x", status=500)
    await run(b, term)
    opened_at = clock.t
    clock.t = opened_at + 29.5
    term.error = None
    with pytest.raises(CircuitOpenError) as info:
        await b(call_for(target()), term)
    assert info.value.retry_after == pytest.approx(0.5)
    assert term.calls == 1
    clock.t = opened_at + 30.0
    assert await b.state(target()) == "half-open"
    assert await run(b, term) == "ok"  # the probe
    assert await b.state(target()) == "closed"
    assert [await run(b, term) for _ in range(5)] == ["ok"] * 5
    assert events == [BreakerOpened("openai/gpt-4o-mini", "a call failed"),
                      BreakerHalfOpen("openai/gpt-4o-mini"),
                      BreakerClosed("openai/gpt-4o-mini")]


async def test_half_open_admits_a_bounded_number_of_concurrent_probes() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    b = Breaker(BreakerPolicy(failures=1, failure_rate=None, cooldown=10.0,
                              half_open_probes=2), store=store)
    gate = asyncio.Event()
    reached = 0

    async def first(call: Call) -> Outcome:
        raise ServerError("x", status=500)

    async def slow(call: Call) -> Outcome:
        nonlocal reached
        reached += 1
        await gate.wait()
        return Response(text="ok")

    with pytest.raises(ServerError):
        await b(call_for(target()), first)
    clock.t += 10.0
    tasks = [asyncio.create_task(b(call_for(target()), slow)) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert reached == 2  # only the probes reached the provider
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, Response) for r in results) == 2
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 4
    assert await b.state(target()) == "closed"


async def test_a_failed_probe_opens_it_again_for_a_full_cooldown() -> None:
    clock, term = Clock(), Terminal()
    events: list[Any] = []
    b = breaker(clock, events, failures=1, failure_rate=None, cooldown=30.0)
    term.error = ServerError("x", status=500)
    await run(b, term)
    clock.t += 30.0
    assert await run(b, term) == "ServerError"  # the probe fails
    assert term.calls == 2
    clock.t += 29.0
    assert await run(b, term) == "CircuitOpenError"
    clock.t += 1.0
    term.error = None
    assert await run(b, term) == "ok"
    assert [type(e).__name__ for e in events] == [
        "BreakerOpened", "BreakerHalfOpen", "BreakerOpened", "BreakerHalfOpen", "BreakerClosed"]


async def test_a_probe_that_never_reached_the_provider_frees_its_slot() -> None:
    clock, term = Clock(), Terminal()
    b = breaker(clock, failures=1, failure_rate=None, cooldown=5.0)
    term.error = ServerError("x", status=500)
    await run(b, term)
    clock.t += 5.0
    term.error = ClientRateLimitError("our own limiter said no")
    assert await run(b, term) == "ClientRateLimitError"
    term.error = None
    assert await run(b, term) == "ok"  # the next caller may probe
    assert await b.state(target()) == "closed"


def test_policy_is_validated() -> None:
    for bad in ({"failures": 0}, {"failure_rate": 1.5}, {"cooldown": 0},
                {"half_open_probes": 0}, {"window": -1}):
        with pytest.raises(ConfigurationError):
            BreakerPolicy(**bad)
    with pytest.raises(ConfigurationError):
        AsyncClient(breaker="yes")


# --- end to end: the primary is down --------------------------------------------------


async def test_open_breaker_sends_every_call_to_the_fallback_then_one_probe() -> None:
    clock = Clock()
    events: list[Any] = []
    async with FaultServer() as server:
        server.default = Fault.ok("from the fallback")
        client = AsyncClient(
            api_keys={"openai": "sk-test", "anthropic": "ak-test"},
            base_urls={"openai": server.url_for("openai"),
                       "anthropic": server.url_for("anthropic")},
            fallbacks=["anthropic/claude-sonnet-4-5"], max_retries=2,
            retry=RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0),
            breaker=BreakerPolicy(failures=3, failure_rate=None, cooldown=30.0),
            state=MemoryStore(clock=clock), hooks=events.append,
            timeout=Timeouts(connect=2.0, read=2.0, total=10.0))

        def count(wire: str) -> int:
            return sum(r.wire == wire for r in server.requests)

        async with client:
            # "mw-status-503": the fault server always answers this model with 503
            primary = "openai/mw-status-503"
            for n in (1, 2):  # the breaker counts calls: each of these is 1 + 2 retries
                assert (await client.complete(primary, "hi")).provider == "anthropic"
                assert count("openai") == 3 * n
                assert not any(isinstance(e, BreakerOpened) for e in events)
            assert (await client.complete(primary, "hi")).provider == "anthropic"
            assert count("openai") == 9
            assert [e for e in events if isinstance(e, BreakerOpened)] == [
                BreakerOpened("openai/mw-status-503", "3 consecutive calls failed")]

            for _ in range(100):
                resp = await client.complete(primary, "hi")
                assert resp.provider == "anthropic"
                assert resp.attempts[0].error is not None
                assert resp.attempts[0].error.startswith("CircuitOpenError")
            assert count("openai") == 9  # zero attempts on the primary
            assert count("anthropic") == 103

            clock.t += 30.0  # cool-down over: exactly one probe request, no retries
            resp = await client.complete(primary, "hi")
            assert resp.provider == "anthropic"
            assert count("openai") == 10
            assert [type(e).__name__ for e in events].count("BreakerHalfOpen") == 1

            for _ in range(10):  # the probe failed: open again, no more traffic
                await client.complete(primary, "hi")
            assert count("openai") == 10


async def test_a_successful_probe_brings_the_primary_back() -> None:
    clock = Clock()
    async with FaultServer() as server:
        client = AsyncClient(
            api_keys={"openai": "sk-test", "gemini": "gk-test"},
            base_urls={"openai": server.url_for("openai"), "gemini": server.url_for("gemini")},
            fallbacks=["gemini/gemini-2.5-flash"], max_retries=0,
            breaker=BreakerPolicy(failures=2, failure_rate=None, cooldown=10.0),
            state=MemoryStore(clock=clock))
        async with client:
            server.script(Fault.status(500), Fault.ok(), Fault.status(500))
            for _ in range(2):
                assert (await client.complete("openai/gpt-4o-mini", "hi")).provider == "gemini"
            assert (await client.complete("openai/gpt-4o-mini", "hi")).provider == "gemini"
            before = sum(r.wire == "openai" for r in server.requests)
            assert before == 2
            clock.t += 10.0
            resp = await client.complete("openai/gpt-4o-mini", "hi")  # the probe succeeds
            assert resp.provider == "openai"
            for _ in range(5):
                assert (await client.complete("openai/gpt-4o-mini", "hi")).provider == "openai"
            assert sum(r.wire == "openai" for r in server.requests) == before + 6


# --- the memory store under the breaker ------------------------------------------------


async def test_memory_store_implements_the_protocol_with_ttls() -> None:
    from modelwire.state import StateStore
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert isinstance(store, StateStore)
    assert await store.incr("n", 2, ttl=10) == 2
    assert await store.incr("n", -0.5, ttl=99) == 1.5  # ttl only applies on creation
    assert await store.add("a", 1) and not await store.add("a", 2)
    await store.set("s", 7, ttl=5)
    assert await store.get_many(["n", "a", "s", "missing"]) == [1.5, 1.0, 7.0, None]
    clock.t += 5
    assert await store.get_many(["n", "a", "s"]) == [1.5, 1.0, None]
    clock.t += 5
    assert await store.get("n") is None and await store.add("n", 3)
    await store.delete("a", "n")
    assert await store.get("a") is None and await store.get("n") is None


async def test_default_breaker_counts_calls_not_attempts_and_says_why_it_opened() -> None:
    """With the defaults (2 retries per call, 5 failed calls to open), exploring
    errors against a failing server never meets an open breaker on the 2nd call."""
    clock = Clock()
    async with FaultServer() as server:
        client = AsyncClient(api_keys={"openai": "sk-test"},
                             base_urls={"openai": server.url_for("openai")},
                             retry=RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0),
                             state=MemoryStore(clock=clock))
        async with client:
            for n in range(1, 6):
                with pytest.raises(ServerError):
                    await client.complete("openai/mw-status-503", "hi")
                assert len(server.requests) == 3 * n
            with pytest.raises(CircuitOpenError) as info:
                await client.complete("openai/mw-status-503", "hi")
            assert len(server.requests) == 15
    message = str(info.value)
    assert "openai/mw-status-503" in message
    assert "5 consecutive calls failed" in message
    assert "open for another 30s" in message
    assert "breaker=False" in message and "BreakerPolicy(" in message
    assert info.value.retry_after == pytest.approx(30.0)
    assert "sk-test" not in message
