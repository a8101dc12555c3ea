"""The fault server itself, checked with a plain aiohttp client (no modelwire client)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from modelwire.testing import Fault, FaultServer

WIRES = ["openai", "anthropic", "gemini"]
ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "Hello from the fault server."
Event = tuple[str | None, bytes]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer() as srv:
        yield srv


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as sess:
        yield sess


# -- helpers -------------------------------------------------------------------
def build(server: FaultServer, wire: str, stream: bool,
          model: str = "test-model") -> tuple[str, dict[str, Any], dict[str, str]]:
    """URL, JSON body and headers for one request as each provider's SDK sends it."""
    if wire == "openai":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return (server.url_for("openai") + "/chat/completions", body,
                {"Authorization": "Bearer sk-test"})
    if wire == "anthropic":
        body = {"model": model, "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}
        return (server.url_for("anthropic") + "/v1/messages", body,
                {"x-api-key": "test", "anthropic-version": "2023-06-01"})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return (f"{server.url_for('gemini')}/v1beta/models/{model}:{verb}", body,
            {"x-goog-api-key": "test"})


async def call(session: aiohttp.ClientSession, server: FaultServer, wire: str, stream: bool,
               model: str = "test-model") -> tuple[int, Any, bytes]:
    url, body, headers = build(server, wire, stream, model)
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


def parse_sse(raw: bytes) -> tuple[list[Event], bytes]:
    """Complete SSE events (event name, data) and the unterminated remainder."""
    *blocks, rest = re.split(rb"\r\n\r\n|\n\n", raw)
    events: list[Event] = []
    for block in blocks:
        name, data = None, []
        for line in re.split(rb"\r\n|\n", block):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode()
            elif field == b"data":
                data.append(value)
        if data:
            events.append((name, b"\n".join(data)))
    return events, rest


def decode(wire: str, events: list[Event]) -> tuple[str, list[tuple[str, Any]], bool]:
    """Text, tool calls (name, parsed args) and whether the terminal event arrived."""
    text, terminal = "", False
    tools: dict[int, list[str]] = {}
    for name, data in events:
        if data == b"[DONE]":
            terminal = True
            continue
        obj = json.loads(data)
        if wire == "openai":
            for choice in obj["choices"]:
                delta = choice["delta"]
                text += delta.get("content") or ""
                for tc in delta.get("tool_calls", []):
                    entry = tools.setdefault(tc["index"], ["", ""])
                    entry[0] += tc["function"].get("name", "")
                    entry[1] += tc["function"].get("arguments", "")
        elif wire == "anthropic":
            assert obj["type"] == name
            terminal = terminal or name == "message_stop"
            if name == "content_block_start" and obj["content_block"]["type"] == "tool_use":
                tools[obj["index"]] = [obj["content_block"]["name"], ""]
            elif name == "content_block_delta":
                delta = obj["delta"]
                if delta["type"] == "text_delta":
                    text += delta["text"]
                else:
                    tools[obj["index"]][1] += delta["partial_json"]
        else:
            candidate = obj["candidates"][0]
            for part in candidate["content"]["parts"]:
                text += part.get("text", "")
                if "functionCall" in part:
                    call_ = part["functionCall"]
                    tools[len(tools)] = [call_["name"], json.dumps(call_["args"])]
            terminal = terminal or candidate.get("finishReason") == "STOP"
    return text, [(n, json.loads(a)) for n, a in tools.values()], terminal


def arg_fragments(raw: bytes) -> int:
    """Streamed tool-argument fragments (OpenAI chunks after the header, Anthropic deltas)."""
    return raw.count(b'"function":{"arguments":') + raw.count(b'"type":"input_json_delta"')


def plain_text(wire: str, body: dict[str, Any]) -> str:
    if wire == "openai":
        assert body["object"] == "chat.completion"
        return str(body["choices"][0]["message"]["content"] or "")
    if wire == "anthropic":
        assert body["type"] == "message"
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    assert body["candidates"][0]["finishReason"] == "STOP"
    return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])


# -- successful replies ----------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_ok_plain(server: FaultServer, session: aiohttp.ClientSession, wire: str) -> None:
    status, headers, raw = await call(session, server, wire, stream=False)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    body = json.loads(raw)
    assert plain_text(wire, body) == DEFAULT
    usage = {"openai": "usage", "anthropic": "usage", "gemini": "usageMetadata"}[wire]
    assert body[usage]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_ok_stream(server: FaultServer, session: aiohttp.ClientSession, wire: str) -> None:
    server.script(Fault.ok(usage=(11, 7)))
    status, headers, raw = await call(session, server, wire, stream=True)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events, rest = parse_sse(raw)
    assert rest == b""
    text, tools, terminal = decode(wire, events)
    assert (text, tools, terminal) == (DEFAULT, [], True)
    if wire == "openai":
        first = json.loads(events[0][1])
        assert first["object"] == "chat.completion.chunk"
        assert first["choices"][0]["delta"]["role"] == "assistant"
        assert json.loads(events[-3][1])["choices"][0]["finish_reason"] == "stop"
        usage_chunk = json.loads(events[-2][1])
        assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 18
        assert raw.endswith(b"data: [DONE]\n\n")
    elif wire == "anthropic":
        names = [n for n, _ in events]
        assert names[:3] == ["message_start", "content_block_start", "ping"]
        assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        delta = json.loads(events[-2][1])
        assert delta["delta"]["stop_reason"] == "end_turn"
        assert delta["usage"]["output_tokens"] == 7
    else:
        assert raw.count(b"\r\n\r\n") == len(events) == 5
        assert json.loads(events[-1][1])["usageMetadata"] == {
            "promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_unicode_is_sent_as_raw_utf8(server: FaultServer, session: aiohttp.ClientSession,
                                           wire: str, stream: bool) -> None:
    text = 'Grüße 🌍 "quoted"\nnew line \ud800'
    server.script(Fault.ok(text, chunks=7))
    _, _, raw = await call(session, server, wire, stream)
    assert "🌍".encode() in raw
    got = decode(wire, parse_sse(raw)[0])[0] if stream else plain_text(wire, json.loads(raw))
    assert got == text


TOOLS = [("get_weather", '{"city": "Paris", "unit": "celsius"}'), ("get_time", '{"tz": "CET"}')]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_tool_calls_stream(server: FaultServer, session: aiohttp.ClientSession,
                                 wire: str) -> None:
    server.script(Fault.ok("Let me check.", tool_calls=TOOLS, arg_chunks=4))
    _, _, raw = await call(session, server, wire, stream=True)
    events, _ = parse_sse(raw)
    text, tools, terminal = decode(wire, events)
    assert text == "Let me check." and terminal
    assert tools == [(n, json.loads(a)) for n, a in TOOLS]
    if wire == "gemini":  # Gemini sends each functionCall whole, in one chunk
        assert raw.count(b"functionCall") == 2
    else:
        assert arg_fragments(raw) == 4 * len(TOOLS)
    if wire == "openai":
        assert json.loads(events[-3][1])["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_tool_calls_plain(server: FaultServer, session: aiohttp.ClientSession,
                                wire: str) -> None:
    server.script(Fault.ok("", tool_calls=TOOLS[:1]))
    _, _, raw = await call(session, server, wire, stream=False)
    body = json.loads(raw)
    if wire == "openai":
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        fn = choice["message"]["tool_calls"][0]["function"]
        assert (fn["name"], json.loads(fn["arguments"])) == ("get_weather", json.loads(TOOLS[0][1]))
    elif wire == "anthropic":
        assert body["stop_reason"] == "tool_use"
        assert body["content"] == [{"type": "tool_use", "id": body["content"][0]["id"],
                                    "name": "get_weather", "input": json.loads(TOOLS[0][1])}]
    else:
        part = body["candidates"][0]["content"]["parts"][0]
        assert part == {"functionCall": {"name": "get_weather", "args": json.loads(TOOLS[0][1])}}


# -- statuses --------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_429_headers_and_shape(server: FaultServer, session: aiohttp.ClientSession,
                                            wire: str, stream: bool) -> None:
    server.script(Fault.status(429, retry_after=1.5, headers={"x-extra": "1"}))
    status, headers, raw = await call(session, server, wire, stream)
    assert status == 429
    assert (headers["retry-after"], headers["retry-after-ms"], headers["x-extra"]) == (
        "2", "1500", "1")
    body = json.loads(raw)
    if wire == "openai":
        assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["message"]
    elif wire == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["error"]["code"] == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"


@pytest.mark.asyncio
@pytest.mark.parametrize(("wire", "code", "expected"), [
    ("openai", 500, "server_error"), ("openai", 503, "server_error"),
    ("anthropic", 529, "overloaded_error"), ("anthropic", 500, "api_error"),
    ("gemini", 503, "UNAVAILABLE"), ("gemini", 500, "INTERNAL"), ("gemini", 502, "UNKNOWN"),
])
async def test_status_error_types(server: FaultServer, session: aiohttp.ClientSession, wire: str,
                                  code: int, expected: str) -> None:
    server.script(Fault.status(code))
    status, _, raw = await call(session, server, wire, stream=False)
    error = json.loads(raw)["error"]
    assert status == code
    assert (error["status"] if wire == "gemini" else error["type"]) == expected


@pytest.mark.asyncio
async def test_status_custom_body(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.script(Fault.status(502, "<html>bad gateway</html>",
                               headers={"Content-Type": "text/html"}))
    status, headers, raw = await call(session, server, "openai", stream=True)
    assert (status, headers["Content-Type"], raw) == (502, "text/html", b"<html>bad gateway</html>")


# -- timing faults -----------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_slow_first_byte(server: FaultServer, session: aiohttp.ClientSession,
                               wire: str) -> None:
    server.script(Fault.slow_first_byte(0.2))
    url, body, headers = build(server, wire, stream=True)
    start = time.monotonic()
    async with session.post(url, json=body, headers=headers) as resp:
        assert time.monotonic() - start >= 0.18
        assert decode(wire, parse_sse(await resp.read())[0])[2]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_stall_stream(server: FaultServer, session: aiohttp.ClientSession,
                            wire: str) -> None:
    server.script(Fault.stall(after_events=2, seconds=0.25))
    url, body, headers = build(server, wire, stream=True)
    arrivals: list[tuple[float, bytes]] = []
    async with session.post(url, json=body, headers=headers) as resp:
        async for chunk in resp.content.iter_any():
            arrivals.append((time.monotonic(), chunk))
    raw, index = b"", 0
    while len(parse_sse(raw)[0]) < 2:
        raw += arrivals[index][1]
        index += 1
    assert len(parse_sse(raw)[0]) == 2  # the first two events came before the stall...
    assert arrivals[-1][0] - arrivals[index - 1][0] >= 0.2  # ...and the rest only after it
    assert decode(wire, parse_sse(b"".join(c for _, c in arrivals))[0])[0] == DEFAULT


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_stall_plain(server: FaultServer, session: aiohttp.ClientSession,
                           wire: str) -> None:
    server.script(Fault.stall(after_events=0, seconds=0.2))
    start = time.monotonic()
    _, _, raw = await call(session, server, wire, stream=False)
    assert time.monotonic() - start >= 0.18
    assert plain_text(wire, json.loads(raw)) == DEFAULT


# -- connection faults --------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_reset_before_headers(server: FaultServer, session: aiohttp.ClientSession,
                                    wire: str, stream: bool) -> None:
    server.script(Fault.reset_before_headers())
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, server, wire, stream)
    status, _, _ = await call(session, server, wire, stream)  # the server is still fine
    assert status == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_reset_mid_stream(server: FaultServer, session: aiohttp.ClientSession,
                                wire: str) -> None:
    server.script(Fault.reset_mid_stream(after_events=3))
    url, body, headers = build(server, wire, stream=True)
    raw = b""
    async with session.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
            async for chunk in resp.content.iter_any():
                raw += chunk
    events, _ = parse_sse(raw)
    assert len(events) <= 3 and not decode(wire, events)[2]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_reset_mid_body(server: FaultServer, session: aiohttp.ClientSession,
                              wire: str) -> None:
    server.script(Fault.reset_mid_stream(after_events=0))
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        await call(session, server, wire, stream=False)


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_cut_stream(server: FaultServer, session: aiohttp.ClientSession, wire: str) -> None:
    server.script(Fault.cut_stream(after_events=3), Fault.cut_stream(after_events=10_000))
    _, _, raw = await call(session, server, wire, stream=True)
    events, rest = parse_sse(raw)
    assert len(events) == 3 and rest == b"" and not decode(wire, events)[2]
    _, _, raw = await call(session, server, wire, stream=True)  # everything but the terminal
    events, rest = parse_sse(raw)
    assert rest == b"" and not decode(wire, events)[2]
    full, _ = parse_sse((await call(session, server, wire, stream=True))[2])
    assert len(events) == len(full) - 1 and decode(wire, full)[2]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_cut_body(server: FaultServer, session: aiohttp.ClientSession, wire: str) -> None:
    server.script(Fault.cut_stream(after_events=0))
    status, _, raw = await call(session, server, wire, stream=False)
    assert status == 200 and raw
    with pytest.raises(ValueError):
        json.loads(raw)


# -- corrupt payloads ---------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_malformed_chunk(server: FaultServer, session: aiohttp.ClientSession,
                               wire: str) -> None:
    server.script(Fault.malformed_chunk(after_events=2))
    _, _, raw = await call(session, server, wire, stream=True)
    events, rest = parse_sse(raw)
    assert rest == b""
    with pytest.raises(ValueError):
        json.loads(events[2][1])
    text, _, terminal = decode(wire, events[:2] + events[3:])
    assert text == DEFAULT and terminal


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_invalid_utf8(server: FaultServer, session: aiohttp.ClientSession,
                            wire: str) -> None:
    server.script(Fault.invalid_utf8(after_events=2))
    _, _, raw = await call(session, server, wire, stream=True)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    events, _ = parse_sse(raw)
    assert b"\xff\xfe" in events[2][1]
    with pytest.raises(ValueError):
        json.loads(events[2][1])
    assert decode(wire, events[:2] + events[3:])[2]


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_corrupt_bodies(server: FaultServer, session: aiohttp.ClientSession,
                              wire: str) -> None:
    server.script(Fault.malformed_chunk(0), Fault.invalid_utf8(0))
    url, body, headers = build(server, wire, stream=False)
    async with session.post(url, json=body, headers=headers) as resp:
        with pytest.raises(json.JSONDecodeError):
            await resp.json()
    async with session.post(url, json=body, headers=headers) as resp:
        with pytest.raises(UnicodeDecodeError):
            await resp.json()


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_large(server: FaultServer, session: aiohttp.ClientSession, wire: str,
                     stream: bool) -> None:
    server.script(Fault.large(300_000))
    _, _, raw = await call(session, server, wire, stream)
    if stream:
        events, _ = parse_sse(raw)
        text, _, terminal = decode(wire, events)
        assert terminal
    else:
        text = plain_text(wire, json.loads(raw))
    assert len(text) == 300_000


# -- routing, model-name rules, recording -------------------------------------------
@pytest.mark.asyncio
async def test_models_endpoints(server: FaultServer, session: aiohttp.ClientSession) -> None:
    base = server.base_url
    async with session.get(server.url_for("openai") + "/models") as resp:
        assert (await resp.json())["object"] == "list"
    async with session.get(base + "/v1/models", headers={"anthropic-version": "2023-06-01"}) as r:
        assert (await r.json())["has_more"] is False
    async with session.get(base + "/v1beta/models") as resp:
        assert (await resp.json())["models"][0]["name"].startswith("models/")
    async with session.get(base + "/nope") as resp:
        assert resp.status == 404 and "error" in await resp.json()
    async with session.post(base + "/v1/messages", data=b"not json") as resp:
        assert resp.status == 400 and (await resp.json())["type"] == "error"


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_completions(server: FaultServer, session: aiohttp.ClientSession,
                                  stream: bool) -> None:
    body = {"model": "mw-stream-4", "prompt": "Say", "stream": stream,
            "stream_options": {"include_usage": True}}
    async with session.post(server.url_for("openai") + "/completions", json=body) as resp:
        raw = await resp.read()
    if not stream:
        obj = json.loads(raw)
        assert obj["object"] == "text_completion" and obj["choices"][0]["text"]
        return
    events, _ = parse_sse(raw)
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["text"]]) == 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert events[-1][1] == b"[DONE]"


@pytest.mark.asyncio
async def test_gemini_stream_without_sse_is_a_json_array(server: FaultServer,
                                                         session: aiohttp.ClientSession) -> None:
    url = server.base_url + "/v1beta/models/mw-stream-3:streamGenerateContent"
    async with session.post(url, json={"contents": []}) as resp:
        chunks = json.loads(await resp.read())
    assert len(chunks) == 3 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", WIRES)
async def test_model_name_rules(server: FaultServer, session: aiohttp.ClientSession,
                                wire: str) -> None:
    _, _, raw = await call(session, server, wire, True, model="mw-stream-7")
    events, _ = parse_sse(raw)
    text, _, terminal = decode(wire, events)
    assert terminal and len(text.split()) == 7
    assert len([e for e in events if b"lorem" in e[1] or b"ipsum" in e[1]]) >= 2
    _, _, raw = await call(session, server, wire, True, model="mw-tools-5")
    _, tools, _ = decode(wire, parse_sse(raw)[0])
    assert tools == [("lookup", {"query": "xxxxx"})]
    if wire != "gemini":
        assert arg_fragments(raw) == 5
    assert (await call(session, server, wire, False, model="mw-status-503"))[0] == 503
    server.script(Fault.ok("scripted"))  # a non-empty queue wins over the model name
    status, _, raw = await call(session, server, wire, False, model="mw-status-503")
    assert status == 200 and plain_text(wire, json.loads(raw)) == "scripted"


@pytest.mark.asyncio
async def test_queue_default_recording_and_reset(server: FaultServer,
                                                 session: aiohttp.ClientSession) -> None:
    server.script(Fault.status(500), Fault.ok("second"))
    assert server.pending == 2
    assert (await call(session, server, "openai", False))[0] == 500
    assert plain_text("openai", json.loads((await call(session, server, "openai", False))[2])) \
        == "second"
    server.default = Fault.status(503)
    assert (await call(session, server, "gemini", True))[0] == 503
    reqs = server.requests
    assert [r.wire for r in reqs] == ["openai", "openai", "gemini"]
    assert reqs[0].method == "POST" and reqs[0].path == "/v1/chat/completions"
    assert reqs[0].headers["authorization"] == "Bearer sk-test"
    assert reqs[0].json["messages"][0]["content"] == "hi"
    assert reqs[2].query == {"alt": "sse"} and reqs[2].stream
    server.reset()
    assert server.requests == [] and server.pending == 0
    assert (await call(session, server, "anthropic", False))[0] == 200


@pytest.mark.asyncio
async def test_concurrent_calls_and_long_stream(server: FaultServer,
                                                session: aiohttp.ClientSession) -> None:
    results = await asyncio.gather(*(call(session, server, WIRES[i % 3], True, "mw-stream-20")
                                     for i in range(150)))
    assert all(status == 200 for status, _, _ in results)
    _, _, raw = await call(session, server, "openai", True, model="mw-stream-10000")
    events, _ = parse_sse(raw)
    assert len(events) == 10_000 + 4  # role, deltas, finish, usage, [DONE]


def test_fault_constructors_validate() -> None:
    with pytest.raises(ValueError):
        Fault.stall(-1, 1.0)
    with pytest.raises(ValueError):
        Fault.status(42)
    fault = dataclasses.replace(Fault.cut_stream(2), text="custom")
    assert (fault.kind, fault.text, fault.after_events) == ("cut_stream", "custom", 2)
    assert hash(Fault.ok(tool_calls=[("f", "{}")])) == hash(Fault.ok(tool_calls=[("f", "{}")]))


def test_url_for() -> None:
    srv = FaultServer(port=1234)
    assert srv.url_for("openai") == "http://127.0.0.1:1234/v1"
    assert srv.url_for("anthropic") == srv.url_for("gemini") == "http://127.0.0.1:1234"
    with pytest.raises(ValueError):
        srv.url_for("cohere")


def test_run_in_thread_sync() -> None:
    with FaultServer.run_in_thread() as srv:
        srv.script(Fault.status(429), Fault.ok("threaded"))

        async def two_calls() -> list[int]:
            async with aiohttp.ClientSession() as sess:
                return [(await call(sess, srv, "anthropic", False))[0] for _ in range(2)]

        assert asyncio.run(two_calls()) == [429, 200]
        assert len(srv.requests) == 2 and srv.pending == 0


def test_import_is_light() -> None:
    code = ("import sys, modelwire.testing as t; "
            "assert 'modelwire.testing.fault_server' not in sys.modules; t.Fault; "
            "assert 'modelwire.testing.fault_server' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


def test_out_of_process() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "modelwire.testing.fault_server", "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("LISTENING http://127.0.0.1:")
        base = line.split()[1]

        async def drive() -> tuple[int, bytes]:
            async with aiohttp.ClientSession() as sess:
                url = base + "/v1/chat/completions"
                async with sess.post(url, json={"model": "mw-stream-3", "stream": True}) as r:
                    raw = await r.read()
                async with sess.post(url, json={"model": "mw-status-429"}) as r:
                    return r.status, raw

        status, raw = asyncio.run(drive())
        assert status == 429
        assert decode("openai", parse_sse(raw)[0])[0] == "lorem ipsum dolor"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
