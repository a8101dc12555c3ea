"""Hostile servers (raw sockets on 127.0.0.1, exact bytes): stream ends, size limits,
timeouts that say what fired, non-success shapes, and no secrets in error chains."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hostile import (
    OPENAI_DONE,
    Conn,
    HostileServer,
    anthropic_events,
    gemini_events,
    openai_body,
    openai_event,
    openai_finish,
)

from modelwire import (
    AllTargetsFailedError,
    AsyncClient,
    BadRequestError,
    Client,
    ConfigurationError,
    MalformedResponseError,
    ModelwireError,
    ProviderConnectionError,
    ProviderError,
    RedirectError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    StreamInterruptedError,
    TextDelta,
    Timeouts,
)
from modelwire.middleware import Fallback, Retry, RetryPolicy

KEY = "sk-hostile-SECRET-0123456789"
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5",
          "gemini": "gemini/gemini-2.5-flash"}
BOUND = 10.0  # generous: a test that waits this long has failed


def base(srv: HostileServer, wire: str) -> str:
    return srv.url + "/v1" if wire == "openai" else srv.url


def client_for(srv: HostileServer, wire: str = "openai", **kw: Any) -> AsyncClient:
    kw.setdefault("middleware", [])
    return AsyncClient(api_keys={wire: KEY}, base_urls={wire: base(srv, wire)}, env={}, **kw)


async def stream_text(client: AsyncClient, model: str, **kw: Any) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        async with client.stream(model, "hi", **kw) as s:
            text = "".join([e.text async for e in s if isinstance(e, TextDelta)])
        return text, s.response.text
    return await asyncio.wait_for(run(), BOUND)


def no_transport_in_chain(err: BaseException) -> None:
    """Neither __cause__ nor __context__ (nor .cause) reaches a non-modelwire exception,
    and no formatting of the whole chain shows the key."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        assert isinstance(e, ModelwireError), f"{type(e).__name__} in the chain of {err!r}"
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    text = "".join(traceback.format_exception(err, chain=True))
    assert KEY not in text and "Authorization" not in text and "Bearer" not in text


# --- 2. a stream ends at its terminal event ---------------------------------------------


def _terminal_handler(wire: str, trailing: bytes) -> Callable[[Conn], Awaitable[None]]:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        if wire == "openai":
            body = openai_event("hello") + openai_finish() + OPENAI_DONE
        elif wire == "anthropic":
            body = anthropic_events("hello")
        else:
            body = gemini_events("hello")
        await conn.send(body + trailing)  # the trailing bytes come in the same read
        await asyncio.sleep(0.05)
        await conn.send(trailing)  # and in later ones
        await conn.hold()  # never closes by itself
    return handler


def _trailing(wire: str) -> bytes:
    if wire == "openai":
        return openai_event(" INJECTED") + b"data: {not json\n\n" + OPENAI_DONE
    if wire == "anthropic":
        return (b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", "
                b"\"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \" INJECTED\"}}"
                b"\n\nevent: error\ndata: garbage\n\n")
    return (b'data: {"candidates": [{"content": {"parts": [{"text": " INJECTED"}]}}]}\n\n'
            b"data: {garbage\n\n")


@pytest.mark.parametrize("wire", list(MODELS))
async def test_stream_completes_at_terminal_event_though_server_keeps_connection(
        wire: str) -> None:
    async with HostileServer(_terminal_handler(wire, _trailing(wire))) as srv:
        # read=30s: if the stream waited for the server to close, the bound would fire first
        client = client_for(srv, wire, timeout=Timeouts(read=30.0, total=60.0))
        text, final = await stream_text(client, MODELS[wire])
        assert text == final == "hello"  # nothing after the terminal event
        # the connection was released: the server sees the client hang up
        await asyncio.wait_for(srv.conns[0].closed_by_client.wait(), BOUND)
        await client.aclose()


async def test_stream_response_available_right_after_last_event() -> None:
    async with HostileServer(_terminal_handler("openai", b"")) as srv:
        client = client_for(srv, timeout=Timeouts(read=30.0, total=60.0))
        s = await asyncio.wait_for(client.stream(MODELS["openai"], "hi").open(), BOUND)
        events = [e async for e in s]
        assert s.response.text == "hello" and s.response.finish_reason == "stop"
        assert any(isinstance(e, TextDelta) for e in events)
        await client.aclose()


# --- 1. bounded memory -----------------------------------------------------------------


async def _endless_body(conn: Conn) -> None:
    """A chunked body that never ends: memory is only bounded by the client's limit."""
    await conn.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    start = b'{"choices": ["xxx'
    await conn.send(f"{len(start):x}\r\n".encode() + start + b"\r\n")
    while not conn.closed_by_client.is_set():
        await conn.send(frame)


async def _declared_huge(conn: Conn) -> None:
    await conn.head(200, {"Content-Type": "application/json",
                          "Content-Length": str(200 * 1024 * 1024)})
    await conn.send(b"{" + b" " * 1000)
    await conn.hold()


@pytest.mark.parametrize("handler", [_endless_body, _declared_huge], ids=["chunked", "length"])
async def test_complete_body_over_the_limit_is_typed_and_closes(
        handler: Callable[[Conn], Awaitable[None]]) -> None:
    async with HostileServer(handler) as srv:
        client = client_for(srv, max_response_bytes=1 << 20)
        with pytest.raises(ResponseTooLargeError) as info:
            await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
        assert "max_response_bytes=1048576" in info.value.message
        assert info.value.limit == 1 << 20 and info.value.provider == "openai"
        await asyncio.wait_for(srv.conns[0].closed_by_client.wait(), BOUND)
        assert len(srv.conns) == 1
        await client.aclose()


async def test_one_huge_sse_line_in_small_reads_is_cut_at_the_limit() -> None:
    sent = 0

    async def handler(conn: Conn) -> None:
        nonlocal sent
        await conn.sse_head()
        await conn.send(b'data: {"choices": [{"index": 0, "delta": {"content": "')
        while not conn.closed_by_client.is_set() and sent < 50_000_000:
            await conn.send(b"y" * 1024)
            sent += 1024
    async with HostileServer(handler) as srv:
        client = client_for(srv, max_event_bytes=2 << 20)
        with pytest.raises(ResponseTooLargeError, match="max_event_bytes=2097152"):
            await stream_text(client, MODELS["openai"])
        await asyncio.wait_for(srv.conns[0].closed_by_client.wait(), BOUND)
        assert sent < 10_000_000  # stopped near the limit, not at the end of 50 MB
        await client.aclose()


async def test_a_big_event_under_the_limit_arrives_whole() -> None:
    big = "z" * 3_000_000

    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        body = openai_event(big) + openai_finish() + OPENAI_DONE
        for i in range(0, len(body), 4096):
            await conn.send(body[i:i + 4096])
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv, max_event_bytes=4 << 20)
        text, final = await stream_text(client, MODELS["openai"])
        assert text == final == big
        await client.aclose()


def test_limits_are_settable_on_the_sync_client_and_validated() -> None:
    with Client(max_response_bytes=5000, max_event_bytes=4096, env={}) as c:
        assert c.aio.max_response_bytes == 5000 and c.aio.max_event_bytes == 4096
        call = c.aio.build_call("mock/echo", "hi")
        assert (call.max_response_bytes, call.max_event_bytes) == (5000, 4096)
    for bad in (0, -1, "big", True, 10.5):
        with pytest.raises(ConfigurationError, match="max_event_bytes"):
            AsyncClient(max_event_bytes=bad, env={})
    client = AsyncClient(env={})
    assert client.max_response_bytes == 64 << 20 and client.max_event_bytes == 16 << 20


# --- 3. timeouts -------------------------------------------------------------------------


async def _stall_before_first_event(conn: Conn) -> None:
    await conn.sse_head()
    await conn.send(b": queued\n\n")
    await conn.hold()


async def _answer(conn: Conn) -> None:
    await conn.sse_head()
    await conn.send(openai_event("from fallback") + openai_finish() + OPENAI_DONE)
    await conn.hold()


async def test_first_event_timeout_hands_over_to_the_fallback_at_once() -> None:
    async with HostileServer(_stall_before_first_event) as primary, \
            HostileServer(_answer) as backup:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
        client = AsyncClient(
            api_keys={"openai": KEY, "groq": KEY},
            base_urls={"openai": primary.url + "/v1", "groq": backup.url + "/v1"}, env={},
            timeout=Timeouts(read=30.0, total=60.0, first_event=0.3),
            fallbacks=["groq/llama-3.1-8b-instant"],
            middleware=[Fallback(), Retry(2, RetryPolicy(jitter=0.0), sleep=sleep)])
        started = time.monotonic()
        async with client.stream(MODELS["openai"], "hi") as s:
            text = "".join([e.text async for e in s if isinstance(e, TextDelta)])
        handover = time.monotonic() - started
        assert text == "from fallback"
        assert len(primary.conns) == 1 and slept == []  # no retry on the stalled target
        first = s.response.attempts[0]
        assert first.error is not None and "Timeouts.first_event=0.3s" in first.error
        assert handover < BOUND  # generous: a read timeout (30s) would have been far longer
        await asyncio.wait_for(primary.conns[0].closed_by_client.wait(), BOUND)
        await client.aclose()


async def test_first_event_timeout_without_fallbacks_is_retried() -> None:
    async with HostileServer([_stall_before_first_event, _answer]) as srv:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
        client = client_for(srv, timeout=Timeouts(read=30.0, total=60.0, first_event=0.3),
                            middleware=[Fallback(), Retry(2, RetryPolicy(jitter=0.0),
                                                          sleep=sleep)])
        text, _ = await stream_text(client, MODELS["openai"])
        assert text == "from fallback" and len(srv.conns) == 2 and slept == [0.5]
        await client.aclose()


async def test_first_event_timeout_error_names_the_limit_and_is_clean() -> None:
    async with HostileServer(_stall_before_first_event) as srv:
        client = client_for(srv, timeout=Timeouts(read=30.0, total=60.0, first_event=0.2))
        with pytest.raises(RequestTimeoutError) as info:
            await stream_text(client, MODELS["openai"])
        e = info.value
        assert e.limit == "first_event" and e.seconds == 0.2 and e.retryable
        assert "Timeouts.first_event=0.2s" in str(e)
        no_transport_in_chain(e)
        await client.aclose()


async def test_keepalive_comments_count_as_traffic_for_the_read_timeout() -> None:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        for _ in range(8):  # 0.8 s of comments, each gap well under read=0.4
            await conn.send(b": OPENROUTER PROCESSING\n\n")
            await asyncio.sleep(0.1)
        await conn.send(openai_event("late") + openai_finish() + OPENAI_DONE)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv, timeout=Timeouts(read=0.4, total=30.0))
        text, _ = await stream_text(client, MODELS["openai"])
        assert text == "late"
        await client.aclose()


async def test_read_timeout_names_read() -> None:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        await conn.send(openai_event("a"))
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv, timeout=Timeouts(read=0.2, total=30.0))
        with pytest.raises(StreamInterruptedError) as info:
            await stream_text(client, MODELS["openai"])
        cause = info.value.cause
        assert isinstance(cause, RequestTimeoutError) and cause.limit == "read"
        assert "Timeouts.read=0.2s" in info.value.message
        no_transport_in_chain(info.value)
        await client.aclose()


async def test_total_timeout_names_the_calls_total_even_after_a_retry() -> None:
    async def fail(conn: Conn) -> None:
        await conn.full(500, b'{"error": {"message": "boom", "type": "server_error"}}')

    async def stall(conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "application/json", "Content-Length": "100"})
        await conn.hold()
    async with HostileServer([fail, stall]) as srv:
        async def sleep(seconds: float) -> None:
            await asyncio.sleep(0.2)  # time passes: the second attempt gets less than 1s
        client = client_for(srv, timeout=Timeouts(read=30.0, total=1.0),
                            middleware=[Retry(2, RetryPolicy(initial=0.01, jitter=0.0),
                                              sleep=sleep)])
        with pytest.raises(RequestTimeoutError) as info:
            await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
        e = info.value
        assert e.limit == "total" and e.seconds == 1.0
        assert "Timeouts.total=1s" in e.message and "next stream event" not in e.message
        no_transport_in_chain(e)
        await client.aclose()


# --- 5. non-success shapes -------------------------------------------------------------


async def _redirect(conn: Conn) -> None:
    await conn.head(302, {"Location": "http://evil.example:8080/steal?x=1",
                          "Content-Length": "0"}, reason="Found")


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_redirect_is_typed_names_the_host_and_is_never_followed(mode: str) -> None:
    async with HostileServer(_redirect) as srv:
        client = client_for(srv, middleware=None)  # the default chain: no retry of a 3xx
        with pytest.raises(RedirectError) as info:
            if mode == "complete":
                await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
            else:
                await stream_text(client, MODELS["openai"])
        e = info.value
        assert "'evil.example:8080'" in e.message and e.location == "evil.example:8080"
        assert e.status == 302 and not e.retryable
        assert len(srv.conns) == 1  # and the conftest guard proves evil.example was not contacted
        assert srv.conns[0].headers["authorization"] == f"Bearer {KEY}"
        no_transport_in_chain(e)
        await client.aclose()


def _once(status: int, body: bytes, ctype: str) -> Callable[[Conn], Awaitable[None]]:
    async def handler(conn: Conn) -> None:
        await conn.full(status, body, ctype)
    return handler


async def test_stream_answered_with_a_json_error_and_status_200() -> None:
    body = (b'{"error": {"message": "You exceeded your current quota", '
            b'"type": "insufficient_quota"}}')
    async with HostileServer(_once(200, body, "application/json")) as srv:
        client = client_for(srv, middleware=None)
        with pytest.raises(ProviderError) as info:
            await stream_text(client, MODELS["openai"])
        assert "exceeded your current quota" in info.value.message
        assert not isinstance(info.value, MalformedResponseError)
        assert len(srv.conns) == 1  # not retryable: sent once
        await client.aclose()


async def test_stream_answered_with_a_retryable_json_error_is_retried() -> None:
    body = b'{"error": {"message": "The server had an error", "type": "server_error"}}'
    async with HostileServer([_once(200, body, "application/json"), _answer]) as srv:
        async def sleep(seconds: float) -> None:
            pass
        client = client_for(srv, middleware=[Retry(2, sleep=sleep)])
        text, _ = await stream_text(client, MODELS["openai"])
        assert text == "from fallback" and len(srv.conns) == 2
        await client.aclose()
    async with HostileServer(_once(200, body, "application/json")) as srv:
        client = client_for(srv)
        with pytest.raises(ServerError, match="The server had an error"):
            await stream_text(client, MODELS["openai"])
        await client.aclose()


async def test_stream_answered_with_an_html_page() -> None:
    html = b"<html><head><title>502</title></head><body><h1>Bad gateway</h1></body></html>"
    async with HostileServer(_once(200, html, "text/html; charset=utf-8")) as srv:
        client = client_for(srv, middleware=None)
        with pytest.raises(MalformedResponseError) as info:
            await stream_text(client, MODELS["openai"])
        assert "text/html" in info.value.message and "Bad gateway" in info.value.message
        assert "<h1>" not in info.value.message and len(srv.conns) == 1
        await client.aclose()


async def test_stream_answered_with_a_whole_json_completion_is_a_one_answer_stream() -> None:
    async with HostileServer(_once(200, openai_body("whole answer"), "application/json")) as srv:
        client = client_for(srv)
        text, final = await stream_text(client, MODELS["openai"])
        assert text == final == "whole answer"
        await client.aclose()


async def test_mislabelled_sse_is_still_parsed_as_sse() -> None:
    body = openai_event("plain") + openai_finish() + OPENAI_DONE
    async with HostileServer(_once(200, body, "text/plain")) as srv:
        client = client_for(srv)
        text, _ = await stream_text(client, MODELS["openai"])
        assert text == "plain"
        await client.aclose()


@pytest.mark.parametrize("wire", list(MODELS))
@pytest.mark.parametrize(("body", "expect"), [
    ({"detail": [{"loc": ["body", "messages"], "msg": "field required",
                  "type": "value_error.missing"}]}, "body.messages: field required"),
    ({"detail": "temperature must be <= 2"}, "temperature must be <= 2"),
    ({"type": "about:blank", "title": "Unprocessable Entity",
      "detail": "request body does not match schema"},
     "Unprocessable Entity; request body does not match schema"),
])
async def test_422_validation_bodies_give_their_message(wire: str, body: dict[str, Any],
                                                        expect: str) -> None:
    async with HostileServer(_once(422, json.dumps(body).encode(), "application/json")) as srv:
        client = client_for(srv, wire)
        with pytest.raises(BadRequestError) as info:
            await asyncio.wait_for(client.complete(MODELS[wire], "hi"), BOUND)
        assert expect in info.value.message and "unknown error" not in info.value.message
        await client.aclose()


# --- 7. secrets ---------------------------------------------------------------------------


async def test_connect_failure_chain_is_clean() -> None:
    async with HostileServer(_answer) as srv:
        url = srv.url
    client = AsyncClient(api_keys={"openai": KEY}, base_urls={"openai": url + "/v1"}, env={},
                         middleware=[])  # the port is closed now
    for run in (lambda: client.complete(MODELS["openai"], "hi"),
                lambda: client.stream(MODELS["openai"], "hi").open()):
        with pytest.raises(ProviderConnectionError) as info:
            await asyncio.wait_for(run(), BOUND)
        no_transport_in_chain(info.value)
    await client.aclose()


async def test_read_failure_and_mid_stream_failure_chains_are_clean() -> None:
    async def cut_body(conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "application/json", "Content-Length": "500"})
        await conn.send(b'{"id": "x", ')
        await asyncio.sleep(0.05)
        conn.reset()

    async def cut_stream(conn: Conn) -> None:  # chunked, so a reset is not a clean end
        await conn.head(200, {"Content-Type": "text/event-stream",
                              "Transfer-Encoding": "chunked"})
        event = openai_event("partial")
        await conn.send(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        await asyncio.sleep(0.1)
        conn.reset()
    async with HostileServer(cut_body) as srv:
        client = client_for(srv)
        with pytest.raises(ProviderConnectionError) as info:
            await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
        no_transport_in_chain(info.value)
        await client.aclose()
    async with HostileServer(cut_stream) as srv:
        client = client_for(srv)
        with pytest.raises(StreamInterruptedError) as sinfo:
            await stream_text(client, MODELS["openai"])
        assert isinstance(sinfo.value.cause, ProviderConnectionError)
        assert sinfo.value.partial is not None and sinfo.value.partial.text == "partial"
        no_transport_in_chain(sinfo.value)
        await client.aclose()


async def test_all_targets_failed_chain_is_clean() -> None:
    async with HostileServer(_answer) as srv:
        url = srv.url
    client = AsyncClient(api_keys={"openai": KEY, "groq": KEY},
                         base_urls={"openai": url + "/v1", "groq": url + "/v1"}, env={},
                         fallbacks=["groq/llama-3.1-8b-instant"], max_retries=0)
    with pytest.raises(AllTargetsFailedError) as info:
        await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
    no_transport_in_chain(info.value)
    for e in info.value.errors:
        no_transport_in_chain(e)
    await client.aclose()


async def test_base_url_credentials_are_rejected_and_never_shown() -> None:
    async with HostileServer(_answer) as srv:
        url = srv.url.replace("http://", "http://admin:hunter2@") + "/v1"
        client = AsyncClient(api_keys={"openai": KEY}, base_urls={"openai": url}, env={})
        with pytest.raises(ConfigurationError) as info:
            await client.complete(MODELS["openai"], "hi")
        assert "hunter2" not in str(info.value) and "admin" not in str(info.value)
        assert "user:password@" in str(info.value)
        with pytest.raises(ConfigurationError):
            client.resolve(MODELS["openai"])  # no Target (repr, key) ever holds them
        assert srv.conns == []  # no traffic
        await client.aclose()


async def test_timeout_before_headers_chain_is_clean_and_names_read() -> None:
    async def silent(conn: Conn) -> None:
        await conn.hold()
    async with HostileServer(silent) as srv:
        client = client_for(srv, timeout=Timeouts(read=0.2, total=30.0))
        with pytest.raises(RequestTimeoutError) as info:
            await asyncio.wait_for(client.complete(MODELS["openai"], "hi"), BOUND)
        assert info.value.limit == "read" and "Timeouts.read=0.2s" in info.value.message
        no_transport_in_chain(info.value)
        await client.aclose()


def test_sync_client_errors_are_clean_too() -> None:
    async def silent(conn: Conn) -> None:
        await conn.hold()

    async def main() -> None:
        async with HostileServer(silent) as srv:
            def call() -> None:
                with Client(api_keys={"openai": KEY}, base_urls={"openai": srv.url + "/v1"},
                            env={}, middleware=[], timeout=Timeouts(read=0.2, total=5)) as c:
                    c.complete(MODELS["openai"], "hi")
            with pytest.raises(RequestTimeoutError) as info:
                await asyncio.to_thread(call)
            no_transport_in_chain(info.value)
    asyncio.run(main())


def test_each_aiohttp_timer_maps_to_its_limit() -> None:
    import aiohttp

    from modelwire.transports.http import _timeout
    t = Timeouts(connect=1.5, read=2.5, total=9.0, first_event=None)
    for exc, limit, seconds in ((aiohttp.ConnectionTimeoutError(), "connect", 1.5),
                                (aiohttp.SocketTimeoutError(), "read", 2.5),
                                (asyncio.TimeoutError(), "total", 9.0)):
        err = _timeout(exc, t, "the request")
        assert (err.limit, err.seconds) == (limit, seconds)
        assert f"Timeouts.{limit}={seconds:g}s" in err.message
