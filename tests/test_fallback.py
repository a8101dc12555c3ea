"""Fallback middleware: order, the policy table, the aggregated error, provenance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelwire import AsyncClient, Timeouts
from modelwire.errors import (
    AllTargetsFailedError,
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
    UnsupportedFeatureError,
    error_for,
)
from modelwire.hooks import FallbackTaken, Hooks
from modelwire.middleware import Fallback, RetryPolicy, moves_on
from modelwire.pipeline import Call, Outcome, Target
from modelwire.registry import get_spec
from modelwire.response import Attempt, Response
from modelwire.testing import Fault, FaultServer
from modelwire.types import Message


def target(provider: str, model: str) -> Target:
    return Target(get_spec(provider), model, f"http://127.0.0.1:9/{provider}", "key-secret")


PRIMARY = target("openai", "gpt-4o-mini")
SECOND = target("anthropic", "claude-sonnet-4-5")
THIRD = target("gemini", "gemini-2.5-flash")


def make_call(*fallbacks: Target, deadline: float | None = None) -> Call:
    return Call(messages=[Message("user", "hi")], target=PRIMARY, fallbacks=list(fallbacks),
                deadline=deadline)


def by_target(plan: dict[str, BaseException | str]) -> tuple[Callable[[Call], Any], list[str]]:
    """A terminal whose behaviour depends on the call's target name."""
    tried: list[str] = []

    async def terminal(call: Call) -> Outcome:
        name = call.target.name
        tried.append(name)
        item = plan[name]
        if isinstance(item, BaseException):
            raise item
        return Response(text=item, provider=call.target.provider, model=call.target.model)

    return terminal, tried


# --- order and provenance -------------------------------------------------------


async def test_targets_are_tried_in_order_and_the_response_records_them() -> None:
    terminal, tried = by_target({
        PRIMARY.name: ServerError("down", status=503),
        SECOND.name: AuthenticationError("bad key", status=401),
        THIRD.name: "from gemini",
    })
    resp = await Fallback()(make_call(SECOND, THIRD), terminal)
    assert isinstance(resp, Response)
    assert tried == [PRIMARY.name, SECOND.name, THIRD.name]
    assert (resp.text, resp.provider) == ("from gemini", "gemini")
    assert resp.attempts == [
        Attempt("openai", "gpt-4o-mini", "ServerError: down"),
        Attempt("anthropic", "claude-sonnet-4-5", "AuthenticationError: bad key"),
        Attempt("gemini", "gemini-2.5-flash", None),
    ]


async def test_a_primary_that_works_never_touches_the_fallbacks() -> None:
    terminal, tried = by_target({PRIMARY.name: "primary", SECOND.name: "no"})
    resp = await Fallback()(make_call(SECOND), terminal)
    assert isinstance(resp, Response) and resp.text == "primary"
    assert tried == [PRIMARY.name]
    assert resp.attempts == [Attempt("openai", "gpt-4o-mini", None)]


async def test_all_targets_failing_raises_one_error_with_every_cause_in_order() -> None:
    errors = [ServerError("a", status=500), RateLimitError("b", status=429),
              NotFoundError("c", status=404)]
    for e, t in zip(errors, (PRIMARY, SECOND, THIRD), strict=True):
        e.provider, e.model = t.provider, t.model
    names = [PRIMARY.name, SECOND.name, THIRD.name]
    terminal, tried = by_target(dict(zip(names, errors, strict=True)))
    with pytest.raises(AllTargetsFailedError) as info:
        await Fallback()(make_call(SECOND, THIRD), terminal)
    assert info.value.errors == errors  # the very instances, in the order tried
    assert len(tried) == 3
    text = info.value.message
    assert text.index("openai/gpt-4o-mini") < text.index("anthropic/") < text.index("gemini/")
    assert not info.value.retryable


async def test_without_fallbacks_the_error_is_raised_unchanged() -> None:
    err = ServerError("down", status=503)
    terminal, _ = by_target({PRIMARY.name: err})
    with pytest.raises(ServerError) as info:
        await Fallback()(make_call(), terminal)
    assert info.value is err


# --- the policy table ---------------------------------------------------------------

POLICY: list[tuple[Callable[[], ProviderError], bool]] = [
    (lambda: RateLimitError("429", status=429), True),
    (lambda: OverloadedError("529", status=529), True),
    (lambda: ServerError("500", status=500), True),
    (lambda: error_for(502, "bad gateway"), True),
    (lambda: error_for(409, "conflict"), True),
    (lambda: RequestTimeoutError("timeout"), True),
    (lambda: ProviderConnectionError("reset"), True),
    (lambda: CircuitOpenError("open"), True),
    (lambda: ClientRateLimitError("our quota"), True),
    (lambda: AuthenticationError("401", status=401), True),
    (lambda: PermissionDeniedError("403", status=403), True),
    (lambda: NotFoundError("404", status=404), True),
    (lambda: ContextWindowExceededError("too long", status=400), True),
    (lambda: error_for(400, "This model's maximum context length is 8192 tokens"), True),
    (lambda: MalformedResponseError("garbage"), True),
    (lambda: BadRequestError("bad", status=400), False),
    (lambda: error_for(422, "unprocessable"), False),
    (lambda: error_for(413, "too large"), False),
    (lambda: StreamInterruptedError("mid-stream", retryable=True), False),
    (lambda: ProviderError("teapot", status=418), False),
]


@pytest.mark.parametrize(("make", "expected"), POLICY,
                         ids=[f"{type(m()).__name__}-{m().status}" for m, _ in POLICY])
async def test_policy_table(make: Callable[[], ProviderError], expected: bool) -> None:
    err = make()
    assert moves_on(err) is expected
    terminal, tried = by_target({PRIMARY.name: err, SECOND.name: "fallback"})
    if expected:
        resp = await Fallback()(make_call(SECOND), terminal)
        assert isinstance(resp, Response) and resp.text == "fallback"
        assert tried == [PRIMARY.name, SECOND.name]
    else:
        with pytest.raises(ProviderError) as info:
            await Fallback()(make_call(SECOND), terminal)
        assert info.value is err  # raised as it is, not wrapped
        assert tried == [PRIMARY.name]


async def test_configuration_errors_never_fall_back() -> None:
    err = UnsupportedFeatureError("no tools here")
    terminal, tried = by_target({PRIMARY.name: err, SECOND.name: "fallback"})
    with pytest.raises(ConfigurationError):
        await Fallback()(make_call(SECOND), terminal)
    assert tried == [PRIMARY.name]


async def test_a_custom_policy_can_be_given() -> None:
    terminal, tried = by_target({PRIMARY.name: BadRequestError("x", status=400),
                                 SECOND.name: "fallback"})
    resp = await Fallback(policy=lambda e: True)(make_call(SECOND), terminal)
    assert isinstance(resp, Response) and resp.text == "fallback"
    assert tried == [PRIMARY.name, SECOND.name]


# --- deadline and hooks ---------------------------------------------------------------


async def test_targets_left_when_the_deadline_passed_are_not_sent() -> None:
    now = [0.0]

    async def terminal(call: Call) -> Outcome:
        now[0] = 11.0  # the primary used up the whole budget
        raise RequestTimeoutError("slow", provider=call.target.provider, model=call.target.model)

    with pytest.raises(AllTargetsFailedError) as info:
        await Fallback(clock=lambda: now[0])(make_call(SECOND, THIRD, deadline=10.0), terminal)
    kinds = [(e.provider, type(e).__name__) for e in info.value.errors]
    assert kinds == [("openai", "RequestTimeoutError"), ("anthropic", "RequestTimeoutError"),
                     ("gemini", "RequestTimeoutError")]
    assert "deadline passed before this fallback" in info.value.errors[1].message


async def test_fallback_taken_hook_fires_for_each_move() -> None:
    hooks = Hooks()
    events: list[Any] = []
    hooks.subscribe(events.append)
    e1, e2 = ServerError("a", status=500), CircuitOpenError("b")
    terminal, _ = by_target({PRIMARY.name: e1, SECOND.name: e2, THIRD.name: "ok"})
    await Fallback(hooks=hooks)(make_call(SECOND, THIRD), terminal)
    assert events == [FallbackTaken(PRIMARY.name, SECOND.name, e1),
                      FallbackTaken(SECOND.name, THIRD.name, e2)]


# --- end to end through the client and the fault server ---------------------------------


def _client(server: FaultServer, **kw: Any) -> AsyncClient:
    wires = ("openai", "anthropic", "gemini")
    return AsyncClient(api_keys={w: "key-test" for w in wires},
                       base_urls={w: server.url_for(w) for w in wires},
                       retry=RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0),
                       timeout=Timeouts(connect=2.0, read=2.0, total=10.0), **kw)


async def test_client_default_fallbacks_serve_after_retries_are_spent() -> None:
    async with FaultServer() as server:
        server.script(Fault.status(500), Fault.status(502), Fault.status(503))
        async with _client(server, max_retries=2,
                           fallbacks=["anthropic/claude-sonnet-4-5"]) as client:
            resp = await client.complete("openai/gpt-4o-mini", "hi")
        wires = [r.wire for r in server.requests]
    assert wires == ["openai", "openai", "openai", "anthropic"]
    assert resp.provider == "anthropic" and resp.text == "Hello from the fault server."
    assert [(a.provider, a.error is None) for a in resp.attempts] == [
        ("openai", False), ("anthropic", True)]
    assert resp.attempts[0].error is not None and "ServerError" in resp.attempts[0].error


async def test_per_call_fallbacks_override_the_client_default() -> None:
    async with FaultServer() as server:
        server.script(Fault.status(401))
        async with _client(server, fallbacks=["anthropic/claude-sonnet-4-5"]) as client:
            resp = await client.complete("openai/gpt-4o-mini", "hi",
                                         fallbacks=["gemini/gemini-2.5-flash"])
        wires = [r.wire for r in server.requests]
    assert wires == ["openai", "gemini"]  # 401 is not retried; moves on at once
    assert resp.provider == "gemini"


async def test_a_bad_request_is_not_sent_to_the_fallback() -> None:
    async with FaultServer() as server:
        server.script(Fault.status(400))
        async with _client(server, fallbacks=["anthropic/claude-sonnet-4-5"]) as client:
            with pytest.raises(BadRequestError):
                await client.complete("openai/gpt-4o-mini", "hi")
        assert len(server.requests) == 1


async def test_streams_fall_back_before_the_first_event_and_record_attempts() -> None:
    async with FaultServer() as server:
        server.script(Fault.status(503))
        async with _client(server, max_retries=0,
                           fallbacks=["gemini/gemini-2.5-flash"]) as client:
            async with client.stream("openai/gpt-4o-mini", "hi") as stream:
                text = "".join([getattr(e, "text", "") async for e in stream])
            assert text == "Hello from the fault server."
            assert stream.response.provider == "gemini"
            rows = [(a.provider, a.model, a.error) for a in stream.attempts
                    if isinstance(a, Attempt)]
            assert [r[:2] for r in rows] == [("openai", "gpt-4o-mini"),
                                             ("gemini", "gemini-2.5-flash")]
            assert str(rows[0][2]).startswith("ServerError: ") and rows[1][2] is None


async def test_a_stream_failing_mid_way_never_falls_back() -> None:
    async with FaultServer() as server:
        server.script(Fault.reset_mid_stream(3))
        async with _client(server, fallbacks=["gemini/gemini-2.5-flash"]) as client:
            with pytest.raises(StreamInterruptedError):
                async with client.stream("openai/gpt-4o-mini", "hi") as stream:
                    async for _ in stream:
                        pass
        assert [r.wire for r in server.requests] == ["openai"]


# --- hooks: the client's bus and the "modelwire" logger -------------------------------


async def test_client_hooks_and_logs_report_without_secrets(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging
    secret = "sk-very-secret-value-123"
    seen: list[Any] = []

    def broken(event: Any) -> None:
        raise RuntimeError("a subscriber bug")

    async with FaultServer() as server:
        server.script(Fault.status(503, headers={"retry-after-ms": "1"}), Fault.status(500))
        client = AsyncClient(api_keys={"openai": secret, "gemini": secret},
                             base_urls={"openai": server.url_for("openai"),
                                        "gemini": server.url_for("gemini")},
                             max_retries=1, fallbacks=["gemini/gemini-2.5-flash"],
                             retry=RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0))
        client.hooks.subscribe(broken)  # must not break the call
        unsubscribe = client.hooks.subscribe(seen.append)
        with caplog.at_level(logging.DEBUG, logger="modelwire"):
            async with client:
                resp = await client.complete("openai/gpt-4o-mini", "hi")
                unsubscribe()
                server.script(Fault.status(500), Fault.status(500))
                await client.complete("openai/gpt-4o-mini", "hi")
    assert resp.provider == "gemini"
    assert [type(e).__name__ for e in seen] == ["RetryScheduled", "FallbackTaken"]
    messages = [r.getMessage() for r in caplog.records if r.name == "modelwire"]
    assert any("retrying openai/gpt-4o-mini (attempt 2)" in m for m in messages)
    assert any("falling back from openai/gpt-4o-mini to gemini/gemini-2.5-flash" in m
               for m in messages)
    assert any("hook" in m and "failed" in m for m in messages)
    assert all(secret not in r.getMessage() and secret not in (r.exc_text or "")
               for r in caplog.records)


def test_hooks_option_is_validated() -> None:
    with pytest.raises(TypeError, match="hooks="):
        AsyncClient(hooks=42)
    hooks = Hooks()
    assert AsyncClient(hooks=hooks).hooks is hooks
