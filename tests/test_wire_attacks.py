"""Attacks on the wire path, each one a regression test: a hostile server (raw
asyncio sockets on 127.0.0.1, exact bytes), a broken gateway and a careless caller.

The attack list and the result of each is in the module's report (issue 7's
attack pass); every attack that broke something has a test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import traceback
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
    AsyncClient,
    ConfigurationError,
    InvalidMessageError,
    InvalidParameterError,
    MalformedResponseError,
    ModelwireError,
    ProviderError,
    ResponseTooLargeError,
    TextDelta,
    Timeouts,
)
from modelwire.middleware import RetryPolicy
from modelwire.wire.sse import SSEParser

KEY = "sk-attack-DISTINCT-0123456789abcdef"
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5",
          "gemini": "gemini/gemini-2.5-flash",
          "openai-responses": "openai-responses/gpt-4o-mini"}
BOUND = 10.0  # generous: a test that waits this long has failed
FAST = Timeouts(connect=2.0, read=2.0, total=8.0)


def base(srv: HostileServer, wire: str) -> str:
    return srv.url + "/v1" if wire.startswith("openai") else srv.url


def client_for(srv: HostileServer, wire: str = "openai", **kw: Any) -> AsyncClient:
    kw.setdefault("middleware", [])
    kw.setdefault("timeout", FAST)
    return AsyncClient(api_keys={wire: KEY}, base_urls={wire: base(srv, wire)}, env={}, **kw)


async def outcome(client: AsyncClient, wire: str, mode: str, **kw: Any) -> Any:
    """The Response, or the exception the call raised."""
    async def run() -> Any:
        if mode == "complete":
            return await client.complete(MODELS[wire], "hi", **kw)
        async with client.stream(MODELS[wire], "hi", **kw) as s:
            async for _ in s:
                pass
        return s.response
    try:
        return await asyncio.wait_for(run(), BOUND)
    except ModelwireError as e:
        return e


def answer(status: int, body: bytes, content_type: str = "application/json"
           ) -> Any:
    async def handler(conn: Conn) -> None:
        await conn.full(status, body, content_type)
    return handler


# --- JSON nested deeper than the decoder's stack -------------------------------------

DEEP = [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("wire", list(MODELS))
@pytest.mark.parametrize("body", DEEP, ids=["open", "closed", "objects"])
async def test_deeply_nested_200_is_malformed_not_recursion_error(
        wire: str, mode: str, body: bytes) -> None:
    if mode == "stream":
        handler = answer(200, b"data: " + body + b"\n\n", "text/event-stream")
    else:
        handler = answer(200, body)
    async with HostileServer(handler) as srv:
        client = client_for(srv, wire)
        err = await outcome(client, wire, mode)
        await client.aclose()
    assert isinstance(err, MalformedResponseError), repr(err)


@pytest.mark.parametrize("wire", list(MODELS))
@pytest.mark.parametrize("status", [400, 500])
async def test_deeply_nested_error_body_is_still_the_typed_status_error(
        wire: str, status: int) -> None:
    async with HostileServer(answer(status, b"[" * 100_000)) as srv:
        client = client_for(srv, wire)
        err = await outcome(client, wire, "complete")
        await client.aclose()
    assert isinstance(err, ProviderError) and err.status == status, repr(err)


async def test_deeply_nested_tool_arguments_are_an_arguments_error() -> None:
    deep = "[" * 100_000
    body = json.dumps({"id": "c1", "object": "chat.completion", "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "text kept", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": deep}},
                {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ]}}]}).encode()
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv)
        r = await client.complete(MODELS["openai"], "hi")
        await client.aclose()
    assert r.text == "text kept"
    bad, good = r.tool_calls
    assert bad.arguments is None and bad.arguments_error and bad.raw_arguments == deep
    assert good.arguments == {}


def test_deeply_nested_caller_values_are_typed_errors() -> None:
    from modelwire.types import to_messages
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    client = AsyncClient(api_keys={"openai": KEY}, env={}, middleware=[])
    with pytest.raises(InvalidParameterError):
        client.build_call(MODELS["openai"], "hi", extra={"x": deep})
    with pytest.raises(InvalidMessageError):
        to_messages([{"role": "assistant", "content": "", "tool_calls": [
            {"id": "t", "type": "function",
             "function": {"name": "f", "arguments": "[" * 100_000}}]}])


# --- SSE framing oddities -------------------------------------------------------------

def test_a_bom_at_stream_start_is_stripped_even_split_across_reads() -> None:
    stream = b"\xef\xbb\xbf" + b'data: {"a": 1}\n\n'
    for cut in range(0, 6):
        parser = SSEParser()
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:]) + parser.close()
        assert [(e.event, e.data) for e in events] == [("message", '{"a": 1}')], cut
    parser = SSEParser()  # only the stream's first BOM: a later one is data
    assert parser.feed(b"data: x\n\n")[0].data == "x"
    assert parser.feed(b"\xef\xbb\xbfdata: y\n\n") == []


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
async def test_a_bom_before_the_first_event_loses_nothing(wire: str) -> None:
    body = {"openai": openai_event("hello") + openai_finish() + OPENAI_DONE,
            "anthropic": anthropic_events("hello"), "gemini": gemini_events("hello")}[wire]

    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        await conn.send(b"\xef\xbb\xbf" + body)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv, wire)
        r = await outcome(client, wire, "stream")
        await client.aclose()
    assert not isinstance(r, Exception), repr(r)
    assert r.text == "hello"


# --- secrets: a server that echoes the key ---------------------------------------------

def _auth(conn: Conn) -> str:
    return (conn.headers.get("authorization") or conn.headers.get("x-api-key")
            or conn.headers.get("x-goog-api-key") or conn.path)


def _echo(status: int, content_type: str = "application/json") -> Any:
    async def handler(conn: Conn) -> None:
        auth = _auth(conn)
        body = json.dumps({"error": {"message": f"bad key {auth}", "code": auth,
                                     "type": "invalid_request_error"}, "detail": auth})
        await conn.full(status, body.encode(), content_type,
                        headers={"x-request-id": auth})
    return handler


async def _echo_mid_stream(conn: Conn) -> None:
    await conn.sse_head()
    await conn.send(openai_event("hi"))
    await asyncio.sleep(0.05)
    await conn.send(b'data: {"error": {"message": "oops ' + _auth(conn).encode() + b'"}}\n\n')
    await conn.hold()


async def _echo_malformed(conn: Conn) -> None:
    await conn.full(200, json.dumps({"weird": _auth(conn)}).encode())


def _leaks(err: BaseException) -> list[str]:
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        for label, value in (("str", str(e)), ("repr", repr(e)), ("args", repr(e.args)),
                             ("attrs", repr(vars(e))),
                             ("partial", repr(getattr(getattr(e, "partial", None), "raw", "")))):
            if KEY in value:
                found.append(f"{type(e).__name__}.{label}")
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None),
                 *getattr(e, "errors", [])]
    if KEY in "".join(traceback.format_exception(err)):
        found.append("traceback")
    return found


SECRET_FAULTS = {"401 echo": _echo(401), "500 echo": _echo(500), "429 echo": _echo(429),
                 "html echo": _echo(400, "text/html"), "mid-stream echo": _echo_mid_stream,
                 "malformed 200 echo": _echo_malformed}


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("wire", list(MODELS))
@pytest.mark.parametrize("fault", list(SECRET_FAULTS))
async def test_an_echoed_key_appears_nowhere(wire: str, mode: str, fault: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    async with HostileServer(SECRET_FAULTS[fault]) as srv:
        client = client_for(srv, wire, middleware=None, timeout=Timeouts(2.0, 0.3, 5.0),
                            retry=RetryPolicy(initial=0.01, max_wait=0.01))
        err = await outcome(client, wire, mode)
        assert client.metrics is not None
        snapshot = repr(client.metrics.snapshot())
        await client.aclose()
    assert isinstance(err, ProviderError), repr(err)
    assert _leaks(err) == []
    assert KEY not in snapshot
    assert KEY not in caplog.text and all(KEY not in repr(r.args) for r in caplog.records)


# --- a careless caller --------------------------------------------------------------

# (surrounding whitespace is stripped, not refused: tests/test_api_key_hygiene.py)
@pytest.mark.parametrize("key", ["sk-abc\r\nX-Injected: 1", "sk-abc\nX", "sk\x00a", "sk-ä",
                                 "sk abc", "sk\tabc"])
@pytest.mark.parametrize("wire", list(MODELS))
async def test_a_key_unfit_for_a_header_is_refused_unsent_and_unshown(
        wire: str, key: str) -> None:
    async with HostileServer(answer(200, openai_body("hi"))) as srv:
        client = AsyncClient(api_keys={wire: key}, base_urls={wire: base(srv, wire)}, env={},
                             middleware=[])
        with pytest.raises(ConfigurationError) as info:
            await client.complete(MODELS[wire], "hi")
        await client.aclose()
    assert srv.conns == []
    text = "".join(traceback.format_exception(info.value))
    assert "sk-abc" not in text and "X-Injected" not in text and "sk-ä" not in text
    assert _locals_with(info.value, key) == []  # not in any frame an error tracker reads


def test_a_key_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="entry for 'anthropic' is a bytes"):
        AsyncClient(api_keys={"anthropic": b"sk-bytes"}, env={})  # type: ignore[dict-item]
    from modelwire.config import Settings
    settings = Settings({"anthropic": b"sk-bytes"}, {}, {}, {})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match=r"must be a str(ing)?, got bytes"):
        settings.resolve(MODELS["anthropic"])


@pytest.mark.parametrize("suffix", ["/v 1", "\n/v1", "/v1\r\nX-Evil: 1", "/v1\t"])
def test_a_base_url_with_whitespace_or_control_characters_is_refused(suffix: str) -> None:
    client = AsyncClient(api_keys={"openai": KEY}, env={}, middleware=[],
                         base_urls={"openai": "http://127.0.0.1:9" + suffix})
    with pytest.raises(ConfigurationError, match="spaces or control characters"):
        client.build_call(MODELS["openai"], "hi")


@pytest.mark.parametrize("field", ["model", "messages", "input", "contents", "prompt"])
@pytest.mark.parametrize("wire", list(MODELS))
async def test_extra_may_not_replace_what_the_call_sends(wire: str, field: str) -> None:
    async with HostileServer(answer(200, openai_body("hi"))) as srv:
        client = client_for(srv, wire)
        with pytest.raises(InvalidParameterError, match=f"extra={{'{field}'"):
            await client.complete(MODELS[wire], "hi", extra={field: "other"})
        with pytest.raises(InvalidParameterError, match="contradicts the call"):
            await client.complete(MODELS[wire], "hi", extra={"stream": True})
        with pytest.raises(InvalidParameterError, match="contradicts the call"):
            client.stream(MODELS[wire], "hi", extra={"stream": False})
        await client.aclose()
    assert srv.conns == []


@pytest.mark.parametrize("url", ["data:image/png;base64,@@@", "data:image/png",
                                 "data:image/png;base64,", "data:;base64,aGk=",
                                 "data:image/png,aGk=", "data:image/png;base64,aGk"])
@pytest.mark.parametrize("wire", list(MODELS))
async def test_a_bad_data_url_is_refused_before_traffic(wire: str, url: str) -> None:
    async with HostileServer(answer(200, openai_body("hi"))) as srv:
        client = client_for(srv, wire)
        with pytest.raises(InvalidMessageError, match="data: URL"):
            await client.complete(MODELS[wire], [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}])
        await client.aclose()
    assert srv.conns == []


@pytest.mark.parametrize("text", [None, 42, ["x"]])
def test_a_text_part_that_is_not_a_string_is_refused(text: Any) -> None:
    from modelwire.types import to_messages
    with pytest.raises(InvalidMessageError, match=r"content\[0\].text must be a string"):
        to_messages([{"role": "user", "content": [{"type": "text", "text": text}]}])


def test_a_good_data_url_still_goes_out() -> None:
    from modelwire.types import ImagePart, to_messages
    [m] = to_messages([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}])
    assert m.content == [ImagePart("data:image/png;base64,aGk=")]


async def test_gzip_bomb_is_cut_at_the_decompressed_limit() -> None:
    bomb = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces in ~8 KB

    async def handler(conn: Conn) -> None:
        await conn.full(200, bomb, headers={"Content-Encoding": "gzip"})
    async with HostileServer(handler) as srv:
        client = client_for(srv, max_response_bytes=1 << 20)
        err = await outcome(client, "openai", "complete")
        await client.aclose()
    assert isinstance(err, ResponseTooLargeError), repr(err)


async def test_bom_stream_text_events_arrive() -> None:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        await conn.send(b"\xef")
        await asyncio.sleep(0.02)
        await conn.send(b"\xbb\xbf" + openai_event("hel"))
        await conn.send(openai_event("lo") + openai_finish() + OPENAI_DONE)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        async with client.stream(MODELS["openai"], "hi") as s:
            texts = [e.text async for e in s if isinstance(e, TextDelta)]
        await client.aclose()
    assert "".join(texts) == "hello"


# --- the program provider (claude-cli): secrets it runs with --------------------------

CLI_SECRET = "sk-ant-CLI-attack-SECRET-4242"


def _program(tmp_path: Any, body: str) -> str:
    path = tmp_path / "fake-claude"
    path.write_text("#!/bin/sh\ncat >/dev/null\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("body", [
    'echo "auth failed with $ANTHROPIC_API_KEY" >&2; exit 1',
    "echo '{\"type\":\"result\",\"subtype\":\"error\",\"is_error\":true,"
    "\"result\":\"bad key '\"$ANTHROPIC_API_KEY\"'\"}'; exit 1",
], ids=["stderr", "stdout"])
async def test_a_program_that_echoes_its_env_key_shows_it_nowhere(
        tmp_path: Any, mode: str, body: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = AsyncClient(provider_options={"claude-cli": {
        "program": _program(tmp_path, body), "env": {"ANTHROPIC_API_KEY": CLI_SECRET}}},
        max_retries=0, timeout=Timeouts(read=5.0, total=8.0))
    target = client.plan("claude-cli/sonnet")[0]
    assert CLI_SECRET not in repr(target)
    err = await outcome_of(client, "claude-cli/sonnet", mode)
    await client.aclose()
    assert isinstance(err, ProviderError), repr(err)
    assert "[redacted]" in err.message
    text = "".join(traceback.format_exception(err)) + repr(vars(err)) + caplog.text
    assert CLI_SECRET not in text


async def outcome_of(client: AsyncClient, model: str, mode: str) -> Any:
    try:
        if mode == "complete":
            return await asyncio.wait_for(client.complete(model, "hi"), BOUND)
        async with client.stream(model, "hi") as s:
            async for _ in s:
                pass
        return s.response
    except ModelwireError as e:
        return e


async def test_a_program_printing_deep_json_is_malformed(tmp_path: Any) -> None:
    body = "python3 -c \"print('['*100000)\""
    client = AsyncClient(provider_options={"claude-cli": {"program": _program(tmp_path, body)}},
                         max_retries=0)
    for mode in ("complete", "stream"):
        err = await outcome_of(client, "claude-cli/sonnet", mode)
        assert isinstance(err, MalformedResponseError), repr(err)
    await client.aclose()


# --- a careless caller: client arguments --------------------------------------------------

@pytest.mark.parametrize("kw", [
    {"api_keys": KEY}, {"api_keys": [KEY]}, {"base_urls": "http://127.0.0.1:9"},
    {"env": "x"}, {"provider_options": {"openai": "x"}}, {"default_model": 5},
    {"middleware": "x"}, {"middleware": [1]},
], ids=lambda kw: f"{next(iter(kw))}={type(next(iter(kw.values()))).__name__}")
def test_client_arguments_of_the_wrong_type_are_typed_and_never_echo_a_key(
        kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError) as info:
        AsyncClient(**kw)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("model", ["openai/a\r\nX-Forged: 1", "gemini/a\nb", "anthropic/\x00"])
def test_a_model_name_with_control_characters_is_refused(model: str) -> None:
    client = AsyncClient(api_keys={p: KEY for p in ("openai", "gemini", "anthropic")}, env={},
                         middleware=[])
    with pytest.raises(ConfigurationError, match="control characters"):
        client.build_call(model, "hi")


# --- stream lifecycle: cancel, close, limits ----------------------------------------------

async def _slow_stream(conn: Conn) -> None:
    await conn.sse_head()
    await conn.send(openai_event("a"))
    for _ in range(200):
        await asyncio.sleep(0.05)
        await conn.send(openai_event("b"))


async def test_cancelling_stream_tasks_mid_read_leaks_no_connection() -> None:
    got_one = asyncio.Event()
    async with HostileServer(_slow_stream) as srv:
        client = client_for(srv, timeout=Timeouts(2.0, 5.0, 30.0))

        async def consume() -> None:
            async with client.stream(MODELS["openai"], "hi") as s:
                async for _ in s:
                    got_one.set()
        tasks = [asyncio.create_task(consume()) for _ in range(10)]
        await asyncio.wait_for(got_one.wait(), BOUND)
        await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        transport = client._transports["http"]
        connector = transport._session.connector  # type: ignore[attr-defined]
        assert len(connector._acquired) == 0  # nothing held
        assert sum(len(v) for v in connector._conns.values()) == 0  # nothing pooled mid-stream
        await asyncio.wait_for(asyncio.gather(*(c.closed_by_client.wait() for c in srv.conns)),
                               BOUND)  # the server saw every connection close
        await client.aclose()


async def test_closing_the_client_under_streams_in_flight_ends_them_typed() -> None:
    async with HostileServer(_slow_stream) as srv:
        client = client_for(srv, timeout=Timeouts(2.0, 5.0, 30.0))
        started = asyncio.Event()

        async def consume() -> Any:
            try:
                async with client.stream(MODELS["openai"], "hi") as s:
                    async for _ in s:
                        started.set()
            except ModelwireError as e:
                return e
            return None
        tasks = [asyncio.create_task(consume()) for _ in range(5)]
        await asyncio.wait_for(started.wait(), BOUND)
        await client.aclose()
        results = await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
    assert all(isinstance(r, ProviderError) for r in results), results


async def test_a_first_event_timeout_longer_than_the_total_reports_the_total() -> None:
    async def comments(conn: Conn) -> None:
        await conn.sse_head()
        for _ in range(100):
            await conn.send(b": keep-alive\n\n")
            await asyncio.sleep(0.05)
    async with HostileServer(comments) as srv:
        client = client_for(srv, timeout=Timeouts(connect=2.0, read=1.0, total=0.5,
                                                  first_event=5.0))
        err = await outcome(client, "openai", "stream")
        await client.aclose()
    assert type(err).__name__ == "RequestTimeoutError", repr(err)
    assert (err.limit, err.seconds) == ("total", 0.5)
    assert "Timeouts.total=0.5s" in err.message


@pytest.mark.parametrize("chunking", ["whole", "bytewise", "two reads"])
def test_max_event_bytes_exactly_at_the_boundary(chunking: str) -> None:
    limit = 4096

    def run(line_len: int) -> Any:
        raw = b"data: " + b"y" * (line_len - 6) + b"\n\n"
        parser = SSEParser(limit)
        if chunking == "whole":
            return parser.feed(raw)
        if chunking == "bytewise":
            return [e for i in range(len(raw)) for e in parser.feed(raw[i:i + 1])]
        return parser.feed(raw[:100]) + parser.feed(raw[100:])
    assert len(run(limit)) == 1  # a line of exactly the limit passes
    with pytest.raises(ResponseTooLargeError):
        run(limit + 1)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                                   "choices": [{"index": 0, "delta": delta,
                                                "finish_reason": finish}]}).encode() + b"\n\n"


async def test_thousands_of_interleaved_tool_calls_are_joined_by_index() -> None:
    n = 2000

    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        out = [_chunk({"tool_calls": [{"index": i, "id": f"t{i}", "type": "function",
                                       "function": {"name": "f", "arguments": '{"a"'}}]})
               for i in range(n)]
        out += [_chunk({"tool_calls": [{"index": i, "function": {"arguments": f": {i}}}"}}]})
                for i in reversed(range(n))]
        await conn.send(b"".join(out) + _chunk({}, "tool_calls") + OPENAI_DONE)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        r = await outcome(client, "openai", "stream")
        await client.aclose()
    assert [c.arguments for c in r.tool_calls] == [{"a": i} for i in range(n)]
    assert [c.id for c in r.tool_calls] == [f"t{i}" for i in range(n)]


async def test_tool_arguments_that_never_close_keep_the_answer() -> None:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        await conn.send(_chunk({"content": "calling"}) + _chunk({"tool_calls": [
            {"index": 0, "id": "t1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": [1, '}}]})
            + _chunk({}, "tool_calls") + OPENAI_DONE)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        r = await outcome(client, "openai", "stream")
        await client.aclose()
    assert r.text == "calling"
    [call] = r.tool_calls
    assert call.arguments is None and call.raw_arguments == '{"a": [1, '
    assert call.arguments_error and "not valid JSON" in call.arguments_error


# --- a hostile server lowering the bill -----------------------------------------------------

NEGATIVE_USAGE = {
    "openai": {"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"},
         "finish_reason": "stop"}],
        "usage": {"prompt_tokens": -1_000_000, "completion_tokens": -5,
                  "total_tokens": -1_000_005}},
    "anthropic": {"id": "m1", "type": "message", "role": "assistant",
                  "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": "hi"}],
                  "stop_reason": "end_turn",
                  "usage": {"input_tokens": -1_000_000, "output_tokens": -5,
                            "cache_read_input_tokens": -7}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": -1_000_000, "candidatesTokenCount": -5,
                                 "totalTokenCount": -1_000_005}},
    "openai-responses": {"id": "r1", "object": "response", "status": "completed",
                         "model": "gpt-4o-mini", "output": [
                             {"type": "message", "id": "m1", "status": "completed",
                              "role": "assistant", "content": [
                                  {"type": "output_text", "text": "hi", "annotations": []}]}],
                         "usage": {"input_tokens": -1_000_000, "output_tokens": -5,
                                   "total_tokens": -1_000_005}},
}


@pytest.mark.parametrize("wire", list(MODELS))
async def test_negative_token_counts_never_lower_usage_or_cost(wire: str) -> None:
    body = json.dumps(NEGATIVE_USAGE[wire]).encode()
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv, wire)
        r = await client.complete(MODELS[wire], "hi")
        await client.aclose()
    assert r.text == "hi"
    u = r.usage
    counts = [u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens,
              u.cache_write_tokens, u.reasoning_tokens]
    assert all(c is None or c >= 0 for c in counts), u
    cost = r.cost
    assert cost is None or cost.total is None or cost.total >= 0


# --- a broken gateway: not HTTP at all -------------------------------------------------------

@pytest.mark.parametrize("head", [b"HTTP/1.1 abc\r\n\r\n", b"SSH-2.0-OpenSSH_8.9\r\n",
                                  b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"],
                         ids=["bad status", "not http", "huge header"])
async def test_an_answer_that_is_not_http_says_so(head: bytes) -> None:
    async def handler(conn: Conn) -> None:
        await conn.send(head)
        await conn.hold(15)
    async with HostileServer(handler) as srv:
        # generous: a loaded machine must not turn this into a read timeout
        client = client_for(srv, timeout=Timeouts(connect=5.0, read=15.0, total=30.0))
        err = await outcome(client, "openai", "complete")
        await client.aclose()
    assert isinstance(err, ProviderError), repr(err)
    assert "answered with invalid HTTP" in err.message
    assert "400" not in err.message and "url=" not in err.message  # aiohttp's, not the server's


@pytest.mark.parametrize("status", [200, 204])
async def test_an_empty_body_says_so(status: int) -> None:
    async def handler(conn: Conn) -> None:
        await conn.head(status, {"Content-Length": "0"} if status == 200 else {})
        await conn.hold(2)
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        err = await outcome(client, "openai", "complete")
        await client.aclose()
    assert isinstance(err, MalformedResponseError), repr(err)
    assert f"HTTP {status} with an empty body" in err.message and err.status == status


async def test_a_304_is_not_called_a_redirect_without_location() -> None:
    async with HostileServer(answer(304, b"")) as srv:
        client = client_for(srv)
        errs = [await outcome(client, "openai", mode) for mode in ("complete", "stream")]
        await client.aclose()
    for err in errs:
        assert type(err).__name__ == "RedirectError" and "304 Not Modified" in err.message


async def test_an_endless_stream_of_small_events_is_cut_at_max_response_bytes() -> None:
    async def endless(conn: Conn) -> None:
        await conn.sse_head()
        event = openai_event("x" * 500)
        with contextlib.suppress(ConnectionError):
            while not conn.closed_by_client.is_set():
                await conn.send(event * 20)
                await asyncio.sleep(0)
    async with HostileServer(endless) as srv:
        client = client_for(srv, max_response_bytes=1 << 20, max_event_bytes=1 << 16)
        err = await outcome(client, "openai", "stream")
        await client.aclose()
    assert type(err).__name__ == "StreamInterruptedError", repr(err)
    assert isinstance(err.cause, ResponseTooLargeError)
    assert "the stream is longer than max_response_bytes=1048576" in err.message
    assert 0 < len(err.partial.text) <= 1 << 20


async def test_mislabelled_sse_behind_a_bom_is_still_sse() -> None:
    async def handler(conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "application/octet-stream"})
        await conn.send(b"\xef\xbb\xbf" + openai_event("hello") + openai_finish() + OPENAI_DONE)
        conn.writer.close()
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        r = await outcome(client, "openai", "stream")
        await client.aclose()
    assert not isinstance(r, Exception), repr(r)
    assert r.text == "hello"


# --- UTF-16 halves in JSON escapes ------------------------------------------------------------

async def test_a_surrogate_pair_split_across_stream_events_is_one_character() -> None:
    async def handler(conn: Conn) -> None:
        await conn.sse_head()
        # "\\ud83d" and "\\ude00" (😀) in two events, as a UTF-16 based server splits it
        await conn.send(_chunk({"content": "hi "}).replace(b"hi ", b"hi \\ud83d")
                        + _chunk({"content": "!"}).replace(b'"!"', b'"\\ude00!"')
                        + _chunk({"content": " \\udc00"}).replace(b"\\\\udc00", b"\\udc00")
                        + _chunk({}, "stop") + OPENAI_DONE)
        await conn.hold()
    async with HostileServer(handler) as srv:
        client = client_for(srv)
        r = await outcome(client, "openai", "stream")
        await client.aclose()
    assert r.text == "hi \U0001F600! \ufffd"  # the pair joined, the lone half replaced
    r.text.encode("utf-8")


async def test_a_lone_surrogate_in_a_complete_answer_is_replaced() -> None:
    body = openai_body("x").replace(b'"content": "x"', b'"content": "a\\ud800b"')
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv)
        r = await client.complete(MODELS["openai"], "hi")
        await client.aclose()
    assert r.text == "a\ufffdb"


# --- health checks against hostile servers ----------------------------------------------------

@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
async def test_health_never_shows_an_echoed_key(wire: str) -> None:
    async def handler(conn: Conn) -> None:
        await conn.full(200, b"<html>" + b" " * 60 + _auth(conn).encode() + b"</html>",
                        "text/html")
    async with HostileServer(handler) as srv:
        client = client_for(srv, wire, middleware=None)
        [report] = await client.health_check([wire])
        await client.aclose()
    assert not report.ok and report.error and "[redacted]" in report.error
    assert KEY not in repr(report) and KEY not in json.dumps(report.to_dict())


async def test_health_with_a_key_unfit_for_a_header_sends_nothing() -> None:
    async with HostileServer(answer(200, b'{"data": []}')) as srv:
        client = AsyncClient(api_keys={"openai": "sk-abc\r\nX-Injected: 1"}, env={},
                             base_urls={"openai": srv.url + "/v1"})
        [report] = await client.health_check(["openai"])
        await client.aclose()
    assert srv.conns == []
    assert not report.ok and "whitespace or control characters" in (report.error or "")
    assert "X-Injected" not in repr(report)


async def test_health_reads_a_bounded_models_list() -> None:
    big = b'{"data": [' + b'{"id": "m"},' * 200_000 + b'{"id": "m"}]}'  # ~2.4 MB
    async with HostileServer(answer(200, big)) as srv:
        client = client_for(srv, middleware=None, max_response_bytes=1 << 20)
        [report] = await client.health_check(["openai"])
        await client.aclose()
    assert not report.ok and "ResponseTooLargeError" in (report.error or "")


# --- embeddings and token counts from a hostile server ----------------------------------------

@pytest.mark.parametrize("embedding", [b"[NaN, 1]", b"[Infinity]", b"[1e999]", b"[true, 1]",
                                       b'"AADAfw=="'],  # base64 of a float32 NaN
                         ids=["NaN", "Infinity", "overflow", "bool", "base64 NaN"])
async def test_an_embedding_that_is_not_finite_numbers_is_malformed(embedding: bytes) -> None:
    body = b'{"data": [{"index": 0, "embedding": ' + embedding + b'}]}'
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv)
        with pytest.raises(MalformedResponseError):
            await client.embed("openai/text-embedding-3-small", "hi")
        await client.aclose()


async def test_a_gemini_embedding_that_is_not_finite_is_malformed() -> None:
    body = b'{"embeddings": [{"values": [NaN, 1.0]}]}'
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv, "gemini")
        with pytest.raises(MalformedResponseError):
            await client.embed("gemini/text-embedding-004", "hi")
        await client.aclose()


@pytest.mark.parametrize(("wire", "body"), [("anthropic", b'{"input_tokens": -5}'),
                                            ("gemini", b'{"totalTokens": -5}')])
async def test_a_negative_provider_token_count_is_malformed(wire: str, body: bytes) -> None:
    async with HostileServer(answer(200, body)) as srv:
        client = client_for(srv, wire)
        with pytest.raises(MalformedResponseError):
            await client.count_tokens(MODELS[wire], "hi")
        await client.aclose()


# --- a server's message as a terminal and a log can take it ---------------------------------

@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("wire", list(MODELS))
async def test_a_huge_or_escape_laden_error_message_is_bounded_and_escaped(
        wire: str, mode: str) -> None:
    message = "\x1b[2J\x1b[31mboom\r" + "x" * 3_000_000
    body = json.dumps({"type": "error", "error": {"type": "api_error", "message": message,
                                                  "code": "\x1b" + "c" * 10_000}}).encode()
    async with HostileServer(answer(500, body)) as srv:
        client = client_for(srv, wire)
        err = await outcome(client, wire, mode)
        await client.aclose()
    assert isinstance(err, ProviderError) and err.status == 500, repr(err)
    assert len(str(err)) < 2500 and "more characters" in err.message
    assert "\x1b" not in str(err) and "\r" not in str(err) and "\\x1b[31mboom" in err.message
    assert err.code is None or (len(err.code) <= 200 and "\x1b" not in err.code)
    assert len(json.dumps(err.body)) > 3_000_000  # the whole answer is still there


# --- Retry-After from a hostile server ----------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    ("-5", 0.0), ("0", 0.0), ("99999999999", 600.0), ("1e400", None), ("nan", None),
    ("inf", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 600.0), ("", None)])
def test_retry_after_values_are_bounded(value: str, seconds: float | None) -> None:
    from modelwire.errors import parse_retry_after
    assert parse_retry_after({"retry-after": value}, now=1_700_000_000.0) == seconds


async def test_a_retry_after_beyond_the_total_fails_at_once_without_sleeping() -> None:
    from modelwire.middleware import Retry
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def handler(conn: Conn) -> None:
        await conn.full(429, b'{"error": {"message": "slow down"}}',
                        headers={"Retry-After": "500"})
    async with HostileServer(handler) as srv:
        client = client_for(srv, timeout=Timeouts(connect=2.0, read=2.0, total=5.0),
                            middleware=[Retry(3, sleep=sleep)])
        err = await outcome(client, "openai", "complete")
        await client.aclose()
    assert type(err).__name__ == "RateLimitError" and err.retry_after == 500.0
    assert slept == [] and len(srv.conns) == 1


# --- secrets in traceback frames (error trackers capture their locals) ---------------------------

def _locals_with(err: BaseException, secret: str) -> list[str]:
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if "/modelwire/" in frame.f_code.co_filename:  # the library's frames, not the test's
                found += [f"{frame.f_code.co_name}:{name}"
                          for name, value in frame.f_locals.items() if secret in repr(value)]
            tb = tb.tb_next
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None),
                 *getattr(e, "errors", [])]
    return found


async def _stall(conn: Conn) -> None:
    await conn.hold(5)


async def _reset(conn: Conn) -> None:
    conn.reset()


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [_stall, _reset], ids=["stall", "reset"])
async def test_no_traceback_frame_holds_the_key(wire: str, mode: str, fault: Any) -> None:
    async with HostileServer(fault) as srv:
        client = client_for(srv, wire, middleware=None, timeout=Timeouts(2.0, 0.3, 5.0),
                            retry=RetryPolicy(initial=0.01, max_wait=0.01))
        err = await outcome(client, wire, mode)
        await client.aclose()
    assert isinstance(err, ProviderError), repr(err)
    assert _locals_with(err, KEY) == []


async def test_no_traceback_frame_holds_the_programs_environment(tmp_path: Any) -> None:
    client = AsyncClient(provider_options={"claude-cli": {
        "program": str(tmp_path / "missing" / "claude"),
        "env": {"ANTHROPIC_API_KEY": CLI_SECRET}}}, max_retries=0)
    with pytest.raises(ConfigurationError) as info:
        await client.complete("claude-cli/sonnet", "hi")
    await client.aclose()
    assert _locals_with(info.value, CLI_SECRET) == []


# --- the OpenAI-compatible rows share the codec: and its defences --------------------------------

ROWS = ("groq", "openrouter", "deepseek", "mistral", "together", "fireworks", "xai", "azure",
        "ollama", "vllm")


async def _row_echo(conn: Conn) -> None:
    auth = conn.headers.get("api-key") or _auth(conn)
    await conn.full(400, json.dumps({"error": {"message": f"bad {auth}", "code": auth}}).encode(),
                    headers={"x-request-id": auth})


@pytest.mark.parametrize("row", ROWS)
async def test_compatible_rows_redact_an_echoed_key_and_type_deep_json(row: str) -> None:
    deep_sse = answer(200, b"data: " + b"[" * 100_000 + b"\n\n", "text/event-stream")
    results = []
    for handler, mode in ((_row_echo, "complete"), (_row_echo, "stream"),
                          (answer(200, b"[" * 100_000), "complete"), (deep_sse, "stream")):
        async with HostileServer(handler) as srv:
            url = srv.url + ("/openai" if row == "azure" else "/v1")
            client = AsyncClient(api_keys={row: KEY}, env={}, middleware=[], timeout=FAST,
                                 base_urls={row: url})
            try:
                if mode == "complete":
                    await client.complete(f"{row}/m", "hi")
                else:
                    async with client.stream(f"{row}/m", "hi") as s:
                        async for _ in s:
                            pass
            except ModelwireError as e:
                results.append(e)
            await client.aclose()
    assert [type(e).__name__ for e in results] == [
        "BadRequestError", "BadRequestError", "MalformedResponseError", "MalformedResponseError"]
    for err in results:
        assert _leaks(err) == []
