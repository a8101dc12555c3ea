"""Client-side rate limits: exact windows under a fake clock, tokens, deadlines.

Both backends run the same tests: the window log in a StateStore (clock
injected) and the ``limits`` library (its module clock swapped for the same
fake clock; it reads ``time.time()`` and takes no clock argument).
"""

from __future__ import annotations

import asyncio
import math
import types
from collections.abc import Iterator
from typing import Any

import pytest

from modelwire import AsyncClient
from modelwire.errors import ClientRateLimitError, ConfigurationError
from modelwire.hooks import Hooks, RateLimitWait
from modelwire.middleware import (
    LimitsBackend,
    RateLimit,
    RateLimiter,
    StoreBackend,
    default_middleware,
)
from modelwire.middleware.ratelimit import estimate_tokens
from modelwire.pipeline import Call, Outcome, Target
from modelwire.registry import get_spec
from modelwire.response import Response, ToolCall, Usage
from modelwire.state import MemoryStore
from modelwire.testing import Fault, FaultServer
from modelwire.types import ImagePart, Message, TextPart, Tool

MODEL = "openai/gpt-4o-mini"


class FakeClock:
    """Sleep advances time to at least ``now + seconds`` (so concurrent sleepers
    each wake no earlier than they asked, like a real loop)."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.t + seconds
        await asyncio.sleep(0)
        self.t = max(self.t, wake)


@pytest.fixture(params=["store", "limits"])
def setup(request: pytest.FixtureRequest,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeClock, Any]]:
    clock = FakeClock()
    if request.param == "store":
        yield clock, StoreBackend(MemoryStore(clock=clock))
        return
    import limits.aio.storage.memory as limits_memory
    import limits.aio.strategies as limits_strategies
    fake_time = types.SimpleNamespace(time=clock)
    monkeypatch.setattr(limits_memory, "time", fake_time)
    monkeypatch.setattr(limits_strategies, "time", fake_time)
    yield clock, LimitsBackend(clock=clock)


def target(model: str = "gpt-4o-mini") -> Target:
    return Target(get_spec("openai"), model, "http://127.0.0.1:9/v1", "sk-secret")


def make_call(text: str = "hi", *, deadline: float | None = None, max_tokens: int | None = None,
              model: str = "gpt-4o-mini") -> Call:
    return Call(messages=[Message("user", text)], target=target(model), deadline=deadline,
                max_tokens=max_tokens)


class Recorder:
    """The terminal step: records the fake time of every request it lets through."""

    def __init__(self, clock: FakeClock, usage: Usage | None = None) -> None:
        self.clock = clock
        self.times: list[float] = []
        self.usage = usage or Usage()

    async def __call__(self, call: Call) -> Outcome:
        self.times.append(self.clock())
        return Response(text="ok", usage=self.usage)


def limiter(clock: FakeClock, backend: Any, hooks: Hooks | None = None,
            **limit: Any) -> RateLimiter:
    return RateLimiter({MODEL: RateLimit(**limit)}, backend=backend, hooks=hooks,
                       clock=clock, sleep=clock.sleep)


def max_in_any_window(times: list[float], window: float = 60.0) -> int:
    """The most requests in any half-open window [t, t + window), checked at every
    recorded timestamp (a window starting anywhere else holds no more than the
    one starting at its first request)."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


# --- requests per minute --------------------------------------------------------


async def test_200_sequential_calls_never_exceed_60_in_any_minute(setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, rpm=60), None
    term = Recorder(clock)
    start = clock()
    for _ in range(200):
        await rl(make_call(), term)
    assert len(term.times) == 200
    assert max_in_any_window(term.times) == 60
    # and the limiter gives the full rate: 200 calls need just over 3 minutes
    assert term.times[59] == start and term.times[60] >= start + 60.0
    assert term.times[-1] < start + 3 * 60.0 + 1.0


async def test_200_concurrent_calls_never_exceed_60_in_any_minute(setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, rpm=60), Recorder(clock)
    await asyncio.gather(*(rl(make_call(), term) for _ in range(200)))
    assert len(term.times) == 200
    assert max_in_any_window(term.times) <= 60


async def test_a_wait_longer_than_the_deadline_fails_at_once_without_traffic(
        setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, rpm=2), Recorder(clock)
    for _ in range(2):
        await rl(make_call(deadline=clock() + 5), term)
    with pytest.raises(ClientRateLimitError) as info:
        await rl(make_call(deadline=clock() + 5), term)
    assert len(term.times) == 2 and clock.sleeps == []
    err = info.value
    assert (err.provider, err.model, err.retryable) == ("openai", "gpt-4o-mini", False)
    assert err.retry_after is not None and 59.0 < err.retry_after <= 60.01
    assert "no request was sent" in err.message


async def test_a_call_waits_for_capacity_within_its_deadline(setup: Any) -> None:
    clock, backend = setup
    hooks, events = Hooks(), list[Any]()
    hooks.subscribe(events.append)
    rl, term = limiter(clock, backend, hooks, rpm=2), Recorder(clock)
    start = clock()
    await rl(make_call(), term)
    clock.t += 20
    await rl(make_call(), term)
    await rl(make_call(deadline=clock() + 100), term)
    assert term.times[2] == pytest.approx(start + 60.0, abs=0.01)  # the first one left
    assert len(events) == 1 and isinstance(events[0], RateLimitWait)
    assert events[0].target == MODEL and events[0].seconds == pytest.approx(40.0, abs=0.01)


async def test_max_wait_bounds_the_wait_without_a_deadline(setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, rpm=1, max_wait=10.0), Recorder(clock)
    await rl(make_call(), term)
    with pytest.raises(ClientRateLimitError):
        await rl(make_call(), term)
    assert len(term.times) == 1


# --- tokens per minute ------------------------------------------------------------


async def test_tokens_per_minute_use_the_estimate(setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, tpm=1000), Recorder(clock)
    text = "x" * 400  # 100 input tokens, + max_tokens 100 = 200 a call
    start = clock()
    for _ in range(6):
        await rl(make_call(text, max_tokens=100), term)
    assert term.times[:5] == [start] * 5
    assert term.times[5] > start + 30.0  # the sixth had to wait for room


async def test_a_call_larger_than_the_whole_budget_fails_at_once(setup: Any) -> None:
    clock, backend = setup
    rl, term = limiter(clock, backend, tpm=500), Recorder(clock)
    with pytest.raises(ClientRateLimitError, match="exceed the client-side limit of 500"):
        await rl(make_call("x" * 4000, deadline=clock() + 1000), term)
    assert term.times == [] and clock.sleeps == []


async def test_reported_usage_refunds_an_overestimate(setup: Any) -> None:
    clock, backend = setup
    reported = Usage(input_tokens=30, output_tokens=20, total_tokens=50, source="reported")
    rl, term = limiter(clock, backend, tpm=1000), Recorder(clock, reported)
    start = clock()
    for _ in range(6):  # estimate 500 each, but only 50 really used
        await rl(make_call(max_tokens=499), term)
    assert term.times == [start] * 6


async def test_estimated_usage_is_not_taken_as_a_correction(setup: Any) -> None:
    clock, backend = setup
    guessed = Usage(input_tokens=30, output_tokens=20, total_tokens=50, source="estimated")
    rl, term = limiter(clock, backend, tpm=1000), Recorder(clock, guessed)
    start = clock()
    for _ in range(3):
        await rl(make_call(max_tokens=499), term)
    assert term.times[:2] == [start] * 2 and term.times[2] > start


async def test_reported_usage_charges_an_underestimate(setup: Any) -> None:
    clock, backend = setup
    heavy = Usage(input_tokens=190, output_tokens=800, total_tokens=990, source="reported")
    rl, term = limiter(clock, backend, tpm=1000), Recorder(clock, heavy)
    start = clock()
    await rl(make_call(max_tokens=10), term)  # estimated 1 + 10 = 11, really 990
    await rl(make_call(max_tokens=10), term)  # 990 + 11 would exceed 1000: waits
    assert term.times[0] == start and term.times[1] > start


# --- configuration and scope ---------------------------------------------------------


async def test_targets_without_a_limit_pass_straight_through() -> None:
    clock = FakeClock()
    rl = RateLimiter({MODEL: RateLimit(rpm=1)}, backend=StoreBackend(MemoryStore(clock)),
                     clock=clock, sleep=clock.sleep)
    term = Recorder(clock)
    for _ in range(20):
        await rl(make_call(model="gpt-4o"), term)
    assert len(term.times) == 20 and clock.sleeps == []


async def test_a_bare_provider_key_limits_each_of_its_models() -> None:
    clock = FakeClock()
    rl = RateLimiter({"openai": RateLimit(rpm=1)}, backend=StoreBackend(MemoryStore(clock)),
                     clock=clock, sleep=clock.sleep)
    term = Recorder(clock)
    await rl(make_call(model="a"), term)
    await rl(make_call(model="b"), term)  # its own window
    with pytest.raises(ClientRateLimitError):
        await rl(make_call(model="a", deadline=clock() + 1), term)


@pytest.mark.parametrize("bad", [{"rpm": 0}, {"tpm": -5}, {}, {"rpm": 1.5},
                                 {"rpm": 5, "max_wait": -1}, {"rpm": True}])
def test_rate_limit_values_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimit(**bad)


def test_client_options_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        AsyncClient(rate_limits={MODEL: 60})
    with pytest.raises(ConfigurationError):
        AsyncClient(rate_limits={MODEL: {"rpm": 10, "bogus": 1}})
    with pytest.raises(TypeError, match="rate_limit, retries"):
        AsyncClient(rate_limit={}, retries=3)
    client = AsyncClient(rate_limits={MODEL: {"rpm": 10}}, state=MemoryStore())
    assert [type(m).__name__ for m in client.middleware] == [
        "MetricsMiddleware", "Fallback", "BudgetMiddleware", "Breaker", "Retry", "RateLimiter"]
    assert [type(m).__name__ for m in default_middleware(client, breaker=False)] == [
        "MetricsMiddleware", "Fallback", "BudgetMiddleware", "Retry"]


def test_estimate_counts_text_tools_images_and_output() -> None:
    msgs = [Message("system", "s" * 40),
            Message("user", [TextPart("u" * 40), ImagePart("https://x/y.png")]),
            Message("assistant", "", tool_calls=[ToolCall("id", "f" * 4, {}, "a" * 36)])]
    call = Call(messages=msgs, target=target(), max_tokens=7,
                tools=[Tool("t" * 4, "d" * 4, {})])
    # (40 + 40 + 40 + 4 + 4 + len("{}")) chars / 4 = 32.5 -> 33; + one image + 7
    assert estimate_tokens(call, 1024) == 33 + 800 + 7
    call.max_tokens = None
    assert estimate_tokens(call, 1024) == 33 + 800 + 1024


# --- the window log itself ------------------------------------------------------------


async def test_window_log_waits_are_exact_and_refunds_come_from_the_newest() -> None:
    clock = FakeClock(0.0)
    store = MemoryStore(clock=clock)
    assert await store.window_acquire("k", 10, 60, 4) == 0.0
    clock.t = 10.0
    assert await store.window_acquire("k", 10, 60, 6) == 0.0
    clock.t = 20.0
    assert await store.window_acquire("k", 10, 60, 3) == 40.0  # the 4 at t=0 must leave
    assert await store.window_acquire("k", 10, 60, 7) == 50.0  # and the 6 at t=10 too
    assert await store.window_acquire("k", 10, 60, 11) == math.inf
    await store.window_adjust("k", 60, -6)  # refund the newest entry
    assert await store.window_acquire("k", 10, 60, 6) == 0.0
    clock.t = 60.0
    assert await store.window_acquire("k", 10, 60, 4) == 0.0  # t=0 entry left at exactly 60


# --- end to end -------------------------------------------------------------------------


async def test_refused_calls_never_reach_the_server() -> None:
    async with FaultServer() as server:
        server.default = Fault.ok()
        client = AsyncClient(api_keys={"openai": "sk-test"},
                             base_urls={"openai": server.url_for("openai")},
                             rate_limits={MODEL: RateLimit(rpm=2, max_wait=0.0)})
        async with client:
            await client.complete(MODEL, "a")
            await client.complete(MODEL, "b")
            with pytest.raises(ClientRateLimitError):
                await client.complete(MODEL, "c")
            # no fallback was configured and the limiter's refusal is not retried
        assert len(server.requests) == 2
