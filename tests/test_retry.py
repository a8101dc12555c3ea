"""Retry middleware: which errors, how long it waits, the deadline, streams."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import tenacity

from modelwire import AsyncClient, Timeouts
from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    ContextWindowExceededError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamInterruptedError,
    error_for,
)
from modelwire.hooks import Hooks, RetryScheduled
from modelwire.middleware import Fallback, Retry, RetryPolicy
from modelwire.pipeline import Call, Outcome, Target
from modelwire.registry import get_spec
from modelwire.response import Response
from modelwire.testing import Fault, FaultServer
from modelwire.types import Message

NO_JITTER = RetryPolicy(initial=0.5, max_wait=8.0, jitter=0.0)


class FakeClock:
    """A clock whose sleep advances it by exactly the time asked."""

    def __init__(self, start: float | None = None) -> None:
        # The call's deadline is on time.monotonic(), which starts near 0 on a fresh boot.
        self.t = time.monotonic() if start is None else start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def make_call(deadline: float | None = None, **options: Any) -> Call:
    target = Target(get_spec("openai"), "gpt-4o-mini", "http://127.0.0.1:9", "sk-secret")
    return Call(messages=[Message("user", "hi")], target=target, deadline=deadline,
                options=dict(options))


def scripted(*steps: BaseException | Response) -> tuple[Callable[[Call], Any], list[Call]]:
    """A terminal step that raises or returns each scripted item in turn."""
    seen: list[Call] = []
    queue = list(steps)

    async def terminal(call: Call) -> Outcome:
        seen.append(call)
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return terminal, seen


def ok(text: str = "done") -> Response:
    return Response(text=text, provider="openai", model="gpt-4o-mini")


# --- Retry-After ------------------------------------------------------------


async def test_retry_after_seconds_and_ms_are_waited_exactly() -> None:
    clock = FakeClock()
    retry = Retry(3, NO_JITTER, clock=clock, sleep=clock.sleep)
    terminal, seen = scripted(
        error_for(429, "slow down", headers={"retry-after": "7"}),
        error_for(429, "slow down", headers={"retry-after-ms": "1250"}),
        error_for(503, "busy", headers={"retry-after-ms": "40", "retry-after": "9"}),
        ok(),
    )
    result = await retry(make_call(), terminal)
    assert isinstance(result, Response) and result.text == "done"
    # retry-after-ms wins over retry-after when both are present (OpenAI SDK rule)
    assert clock.sleeps == [7.0, 1.25, 0.04]
    assert len(seen) == 4


async def test_retry_after_http_date_is_waited_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_750_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    when = email.utils.format_datetime(datetime.fromtimestamp(now + 30, timezone.utc),
                                       usegmt=True)
    clock = FakeClock()
    retry = Retry(2, NO_JITTER, clock=clock, sleep=clock.sleep)
    terminal, _ = scripted(error_for(429, "later", headers={"retry-after": when}), ok())
    await retry(make_call(), terminal)
    assert clock.sleeps == [30.0]


async def test_retry_after_over_the_cap_stops_retrying_at_once() -> None:
    clock = FakeClock()
    retry = Retry(5, RetryPolicy(max_retry_after=60), clock=clock, sleep=clock.sleep)
    err = error_for(429, "daily quota", headers={"retry-after": "3600"})
    terminal, seen = scripted(err, ok())
    with pytest.raises(RateLimitError) as info:
        await retry(make_call(), terminal)
    assert info.value is err and info.value.retry_after is not None
    assert info.value.retry_after > 60  # kept on the error for the caller
    assert clock.sleeps == [] and len(seen) == 1


async def test_retry_after_header_end_to_end_through_the_wire() -> None:
    clock = FakeClock()
    async with FaultServer() as server:
        server.script(Fault.status(429, headers={"retry-after": "2"}),
                      Fault.status(429, headers={"retry-after-ms": "1500"}), Fault.ok("fine"))
        client = AsyncClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": server.url_for("openai")},
            middleware=[Fallback(), Retry(2, NO_JITTER, clock=clock, sleep=clock.sleep)])
        async with client:
            resp = await client.complete("openai/gpt-4o-mini", "hi")
        assert resp.text == "fine"
        assert clock.sleeps == [2.0, 1.5]
        assert len(server.requests) == 3


# --- backoff ------------------------------------------------------------------


async def test_backoff_doubles_up_to_the_ceiling_without_jitter() -> None:
    clock = FakeClock()
    retry = Retry(5, RetryPolicy(initial=0.5, max_wait=3.0, jitter=0.0), clock=clock,
                  sleep=clock.sleep)
    terminal, seen = scripted(*[ServerError("boom", status=500) for _ in range(5)], ok())
    await retry(make_call(), terminal)
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(seen) == 6


async def test_backoff_jitter_stays_within_bounds_and_varies() -> None:
    waits: list[float] = []
    for _ in range(30):
        clock = FakeClock()
        retry = Retry(1, RetryPolicy(initial=1.0, jitter=0.5), clock=clock, sleep=clock.sleep)
        terminal, _ = scripted(ServerError("boom", status=502), ok())
        await retry(make_call(), terminal)
        waits += clock.sleeps
    assert all(1.0 <= w <= 1.5 for w in waits)
    assert len(set(waits)) > 1  # jittered, not a constant


# --- which errors ---------------------------------------------------------------

RETRYABLE = [
    lambda: RateLimitError("429", status=429),
    lambda: error_for(408, "timeout"),
    lambda: error_for(409, "conflict"),
    lambda: ServerError("500", status=500),
    lambda: error_for(502, "bad gateway"),
    lambda: error_for(503, "unavailable"),
    lambda: OverloadedError("overloaded", status=529),
    lambda: RequestTimeoutError("read timed out"),
    lambda: ProviderConnectionError("connection reset"),
]

FINAL = [
    lambda: BadRequestError("bad", status=400),
    lambda: AuthenticationError("no", status=401),
    lambda: PermissionDeniedError("no", status=403),
    lambda: NotFoundError("no model", status=404),
    lambda: ContextWindowExceededError("too long", status=400),
    lambda: CircuitOpenError("open"),
    lambda: ClientRateLimitError("our quota"),
    lambda: MalformedResponseError("garbage"),
    lambda: StreamInterruptedError("mid-stream", retryable=True),
]


@pytest.mark.parametrize("make", RETRYABLE)
async def test_retryable_errors_are_retried(make: Callable[[], ProviderError]) -> None:
    clock = FakeClock()
    terminal, seen = scripted(make(), ok())
    result = await Retry(2, NO_JITTER, clock=clock, sleep=clock.sleep)(make_call(), terminal)
    assert isinstance(result, Response) and len(seen) == 2


@pytest.mark.parametrize("make", FINAL)
async def test_other_errors_are_raised_without_retry(make: Callable[[], ProviderError]) -> None:
    clock = FakeClock()
    err = make()
    terminal, seen = scripted(err, ok())
    with pytest.raises(ProviderError) as info:
        await Retry(2, NO_JITTER, clock=clock, sleep=clock.sleep)(make_call(), terminal)
    assert info.value is err and len(seen) == 1 and clock.sleeps == []


async def test_exhausted_retries_raise_the_last_error() -> None:
    clock = FakeClock()
    errors = [ServerError(f"boom {i}", status=500) for i in range(3)]
    terminal, seen = scripted(*errors, ok())
    with pytest.raises(ServerError) as info:
        await Retry(2, NO_JITTER, clock=clock, sleep=clock.sleep)(make_call(), terminal)
    assert info.value is errors[-1]
    assert len(seen) == 3 and clock.sleeps == [0.5, 1.0]


# --- max_retries per client and per call ----------------------------------------


async def test_max_retries_zero_disables() -> None:
    terminal, seen = scripted(ServerError("boom", status=500), ok())
    with pytest.raises(ServerError):
        await Retry(0)(make_call(), terminal)
    assert len(seen) == 1


@pytest.mark.parametrize(("client_value", "per_call", "expected_calls"),
                         [(2, 0, 1), (0, 3, 4), (1, None, 2), (2, 1, 2)])
async def test_per_call_max_retries_overrides_the_client(
        client_value: int, per_call: int | None, expected_calls: int) -> None:
    clock = FakeClock()
    terminal, seen = scripted(*[ServerError("x", status=500) for _ in range(10)])
    options = {} if per_call is None else {"max_retries": per_call}
    with pytest.raises(ServerError):
        await Retry(client_value, NO_JITTER, clock=clock, sleep=clock.sleep)(
            make_call(**options), terminal)
    assert len(seen) == expected_calls


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
async def test_invalid_max_retries_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        AsyncClient(max_retries=bad)
    terminal, _ = scripted(ServerError("x", status=500))
    with pytest.raises(ConfigurationError, match="max_retries"):
        await Retry(2)(make_call(max_retries=bad), terminal)


# --- the deadline -----------------------------------------------------------------


async def test_deadline_bounds_attempts_plus_waits() -> None:
    clock = FakeClock(start=0.0)
    retry = Retry(10, NO_JITTER, clock=clock, sleep=clock.sleep)
    err = [error_for(503, "busy", headers={"retry-after": "4"}) for _ in range(10)]
    terminal, seen = scripted(*err, ok())
    with pytest.raises(ServerError) as info:
        await retry(make_call(deadline=10.0), terminal)
    # attempts at t=0, 4, 8; a third 4 s wait would end at 12 > 10: raise instead
    assert clock.sleeps == [4.0, 4.0]
    assert info.value is err[2] and len(seen) == 3
    assert clock.t <= 10.0


async def test_no_sleep_when_the_first_wait_passes_the_deadline() -> None:
    clock = FakeClock(start=0.0)
    terminal, seen = scripted(error_for(429, "x", headers={"retry-after": "5"}), ok())
    with pytest.raises(RateLimitError):
        await Retry(3, clock=clock, sleep=clock.sleep)(make_call(deadline=3.0), terminal)
    assert clock.sleeps == [] and len(seen) == 1


async def test_real_deadline_bounds_total_time_against_a_slow_server() -> None:
    async with FaultServer() as server:
        server.default = Fault.slow_first_byte(3.0)
        client = AsyncClient(api_keys={"openai": "sk-test"},
                             base_urls={"openai": server.url_for("openai")},
                             timeout=Timeouts(connect=1.0, read=5.0, total=0.4), max_retries=5)
        started = time.monotonic()
        async with client:
            with pytest.raises(RequestTimeoutError):
                await client.complete("openai/gpt-4o-mini", "hi")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5  # the 0.4 s deadline, not 6 attempts of 3 s
    assert len(server.requests) == 1


# --- hooks and the happy path -------------------------------------------------------


async def test_retry_scheduled_hook_reports_attempt_wait_and_error() -> None:
    clock = FakeClock()
    hooks = Hooks()
    events: list[Any] = []
    hooks.subscribe(events.append)
    errs = [error_for(429, "a", headers={"retry-after": "3"}), ServerError("b", status=500)]
    terminal, _ = scripted(*errs, ok())
    await Retry(2, NO_JITTER, hooks=hooks, clock=clock, sleep=clock.sleep)(make_call(), terminal)
    assert events == [RetryScheduled("openai/gpt-4o-mini", 2, 3.0, errs[0]),
                      RetryScheduled("openai/gpt-4o-mini", 3, 1.0, errs[1])]


async def test_happy_path_never_builds_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("AsyncRetrying built on the happy path")
    monkeypatch.setattr(tenacity, "AsyncRetrying", boom)
    terminal, _ = scripted(ok())
    assert isinstance(await Retry(2)(make_call(), terminal), Response)


# --- streams ---------------------------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
async def test_stream_is_retried_before_its_first_event(wire: str) -> None:
    async with FaultServer() as server:
        server.script(Fault.status(503), Fault.ok("streamed fine"))
        async with _client(server, wire) as client, client.stream(_model(wire), "hi") as stream:
            text = "".join([getattr(e, "text", "") async for e in stream])
        assert text == "streamed fine" == stream.response.text
        assert len(server.requests) == 2


# After 4 events every wire has sent content (Anthropic: message_start,
# content_block_start, ping, then the first text delta).
@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [Fault.reset_mid_stream(4), Fault.cut_stream(4)],
                         ids=["reset", "cut"])
async def test_no_retry_after_the_first_stream_event(wire: str, fault: Fault) -> None:
    async with FaultServer() as server:
        server.script(fault)
        async with _client(server, wire) as client:
            got: list[Any] = []
            with pytest.raises(StreamInterruptedError) as info:
                async with client.stream(_model(wire), "hi") as stream:
                    async for event in stream:
                        got.append(event)
        assert got, "the caller saw events before the failure"
        assert info.value.partial is not None and info.value.partial.finish_reason == "error"
        assert len(server.requests) == 1  # exactly one request: never retried


def _model(wire: str) -> str:
    return {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5",
            "gemini": "gemini/gemini-2.5-flash"}[wire]


def _client(server: FaultServer, wire: str) -> AsyncClient:
    return AsyncClient(api_keys={wire: "key-test"}, base_urls={wire: server.url_for(wire)},
                       retry=RetryPolicy(initial=0.01, max_wait=0.01, jitter=0.0),
                       timeout=Timeouts(connect=2.0, read=2.0, total=10.0))
