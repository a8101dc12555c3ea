"""client.metrics: counters, distributions (bounded memory), hooks, streams, snapshot/reset."""

from __future__ import annotations

import json
import random

import pytest

from modelwire import AsyncClient
from modelwire.errors import RateLimitError, StreamInterruptedError
from modelwire.hooks import BreakerOpened, RateLimitWait
from modelwire.middleware import BreakerPolicy, RetryPolicy
from modelwire.mock import MockReply
from modelwire.observe.metrics import Histogram, MetricsCollector

FAST = RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0)


def exact_quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[int(-(-(q * (len(s) - 1) + 1) // 1)) - 1]  # rank rounded up, 1-based


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_histogram_quantiles_within_two_percent(dist: str) -> None:
    rng = random.Random(7)
    if dist == "lognormal":
        values = [rng.lognormvariate(-3, 1.5) for _ in range(20_000)]
    elif dist == "uniform":
        values = [rng.uniform(0.001, 5) for _ in range(20_000)]
    else:
        values = [rng.choice((0.01, 2.0)) * rng.uniform(0.9, 1.1) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.add(v)
    for q in (0.5, 0.95, 0.99):
        got, want = h.quantile(q), exact_quantile(values, q)
        assert got is not None and abs(got - want) <= 0.021 * want, (q, got, want)
    assert h.summary()["count"] == 20_000 and h.min == min(values) and h.max == max(values)


def test_histogram_memory_is_fixed() -> None:
    from modelwire.observe.metrics import _NBUCKETS
    h = Histogram()
    assert len(h.buckets) == 0  # allocated as values land: an unused model costs little
    for i in range(100_000):
        h.add(i * 1e-3)
    h.add(1e9)  # overflow bucket
    h.add(0.0)  # underflow bucket
    h.add(float("nan"))  # ignored
    assert 0 < len(h.buckets) <= _NBUCKETS and h.count == 100_002
    for i in range(1, 3_000):  # values over the whole range: still at most _NBUCKETS
        h.add(10.0 ** (-7 + i * 15 / 3_000))
    assert len(h.buckets) <= _NBUCKETS
    assert h.quantile(1.0) == 1e9 and h.quantile(0.0) == 0.0


async def test_calls_tokens_latency_and_errors_by_type() -> None:
    async with AsyncClient(max_retries=0) as client:
        client.mock.script(MockReply("a b c", usage=(10, 3)), MockReply("d", usage=(7, 1)),
                           MockReply(status=429))
        await client.complete("mock/m1", "hi")
        await client.complete("mock/m1", "hi")
        with pytest.raises(RateLimitError):
            await client.complete("mock/m1", "hi")
        assert client.metrics is not None
        row = client.metrics.snapshot()["models"]["mock/m1"]
    assert row["calls"] == 3 and row["successes"] == 2
    assert row["errors"] == {"RateLimitError": 1}
    assert (row["input_tokens"], row["output_tokens"]) == (17, 4)
    assert row["latency"]["count"] == 2 and row["latency"]["p50"] > 0
    assert row["output_tps"]["count"] == 2
    assert row["cost_usd"] == 0.0 and "mock" in row["cost_note"]


async def test_retries_fallbacks_and_breaker_openings_come_from_hooks() -> None:
    # the breaker counts failed calls (after retries): one failed call opens it at 1
    async with AsyncClient(max_retries=1, retry=FAST, fallbacks=["mock/backup"],
                           breaker=BreakerPolicy(failures=1)) as client:
        client.mock.script(MockReply(status=500), MockReply(status=500), MockReply("ok"))
        r = await client.complete("mock/main", "hi")
        assert r.text == "ok"
        assert client.metrics is not None
        snap = client.metrics.snapshot()
    main, backup = snap["models"]["mock/main"], snap["models"]["mock/backup"]
    assert main["retries"] == 1 and main["fallbacks"] == 1 and main["breaker_openings"] == 1
    assert main["calls"] == 0 and backup["calls"] == 1 and backup["successes"] == 1
    assert snap["totals"]["calls"] == 1


async def test_limiter_waits_and_breaker_events_are_counted() -> None:
    async with AsyncClient() as client:
        client.hooks.emit(RateLimitWait("mock/x", 0.25))
        client.hooks.emit(RateLimitWait("mock/x", 0.5))
        client.hooks.emit(BreakerOpened("mock/x", "test"))
        assert client.metrics is not None
        row = client.metrics.snapshot()["models"]["mock/x"]
    assert row["limiter_waits"] == 2 and row["limiter_wait_seconds"] == 0.75
    assert row["breaker_openings"] == 1


async def test_streams_record_ttft_and_mid_stream_failures() -> None:
    async with AsyncClient() as client:
        client.mock.script(MockReply("one two three", usage=(5, 3)),
                           MockReply("a b c d e f", disconnect_after=3))
        async with client.stream("mock/s", "hi") as s:
            await s.collect()
        with pytest.raises(StreamInterruptedError):
            async with client.stream("mock/s", "hi") as s:
                await s.collect()
        assert client.metrics is not None
        row = client.metrics.snapshot()["models"]["mock/s"]
    assert row["ttft"]["count"] == 1 and row["latency"]["count"] == 1
    assert row["calls"] == 2 and row["errors"] == {"StreamInterruptedError": 1}


async def test_snapshot_is_json_and_reset_clears() -> None:
    async with AsyncClient() as client:
        await client.complete("mock/echo", "hello")
        assert client.metrics is not None
        snap = client.metrics.snapshot()
        assert json.loads(json.dumps(snap))["totals"]["calls"] == 1
        client.metrics.reset()
        assert client.metrics.snapshot()["models"] == {}
        await client.count_tokens("mock/echo", "not a model call")
        assert client.metrics.snapshot()["models"] == {}


async def test_metrics_can_be_off_or_shared() -> None:
    async with AsyncClient(metrics=False) as client:
        assert client.metrics is None
        await client.complete("mock/echo", "hi")
    shared = MetricsCollector()
    for _ in range(2):
        async with AsyncClient(metrics=shared) as client:
            await client.complete("mock/echo", "hi")
    assert shared.snapshot()["totals"]["calls"] == 2
    from modelwire.errors import ConfigurationError
    with pytest.raises(ConfigurationError):
        AsyncClient(metrics="yes")


async def test_a_stream_closed_early_counts_as_abandoned_not_as_an_error() -> None:
    async with AsyncClient() as client:
        client.mock.script(MockReply("a b c d e f g h", chunk_delay=0.0))
        async with client.stream("mock/s", "hi") as s:
            async for _ in s:
                break
        assert client.metrics is not None
        row = client.metrics.snapshot()["models"]["mock/s"]
    assert row["calls"] == 1 and row["streams_abandoned"] == 1 and row["errors"] == {}
    assert row["successes"] == 0
