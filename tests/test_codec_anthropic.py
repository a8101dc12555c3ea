"""Anthropic Messages codec: every recorded exchange, plus encode and error mapping.

Expected values come from the recordings themselves, read here by a deliberately
naive parser (split on blank lines, json.loads the ``data:`` lines), never from
the codec's own tables.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from wirekit import Interaction, interactions, load, replay_stream

from modelwire import errors
from modelwire.endpoint import complete, open_stream
from modelwire.pipeline import Call, Target, Timeouts
from modelwire.providers.anthropic import AnthropicCodec
from modelwire.registry import get_spec
from modelwire.response import Response, ToolCall, ToolCallEnd, ToolCallStart
from modelwire.transports.base import WireRequest
from modelwire.types import ImagePart, Message, TextPart, Tool

SPEC = get_spec("anthropic")
CODEC = AnthropicCodec(SPEC)
SECRET = "sk-ant-test-SECRET-0123456789"
ALL = list(interactions("anthropic"))
OK_JSON = [it for it in ALL if it.status == 200 and not it.is_sse]
OK_SSE = [it for it in ALL if it.status == 200 and it.is_sse]
ERRORS = [it for it in ALL if it.status >= 400]

# Written from Anthropic's documentation, independently of the codec's tables.
EXPECTED_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                   "max_tokens": "length", "tool_use": "tool_calls",
                   "refusal": "content_filter"}


def _call(model: str = "claude-sonnet-4-5", **kw: Any) -> Call:
    target = Target(SPEC, model, "https://api.anthropic.com", SECRET)
    messages = kw.pop("messages", [Message("user", "hi")])
    return Call(messages, target, **kw)


def _body(req: WireRequest) -> dict[str, Any]:
    assert req.body is not None
    return json.loads(req.body)  # type: ignore[no-any-return]


def sse_payloads(body: bytes) -> list[dict[str, Any]]:
    """The recording's events, parsed without the codec or the SSE parser."""
    out = []
    for block in body.decode().split("\n\n"):
        data = [ln[5:] for ln in block.split("\n") if ln.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def expected_from_sse(body: bytes) -> dict[str, Any]:
    events = sse_payloads(body)
    kinds: dict[int, dict[str, Any]] = {}
    args: dict[int, str] = {}
    text, thinking, stop, usage = "", "", None, {}
    for ev in events:
        t = ev["type"]
        if t == "message_start":
            usage.update(ev["message"]["usage"])
        elif t == "content_block_start":
            block = kinds[ev["index"]] = ev["content_block"]
            text += block.get("text", "") if block["type"] == "text" else ""
        elif t == "content_block_delta":
            d = ev["delta"]
            if d["type"] == "text_delta":
                text += d["text"]
            elif d["type"] == "thinking_delta":
                thinking += d["thinking"]
            elif d["type"] == "input_json_delta":
                args[ev["index"]] = args.get(ev["index"], "") + d["partial_json"]
        elif t == "message_delta":
            stop = ev["delta"]["stop_reason"]
            usage.update({k: v for k, v in ev["usage"].items() if v is not None})
    calls = [(b["id"], b["name"], json.loads(args.get(i) or "{}"))
             for i, b in sorted(kinds.items()) if b["type"] == "tool_use"]
    server = [b for b in kinds.values() if b["type"] == "server_tool_use"]
    return {"text": text, "thinking": thinking, "stop": stop, "usage": usage, "calls": calls,
            "server": server}


def normalized_input(u: Mapping[str, Any]) -> int:
    return int(u["input_tokens"] + (u.get("cache_read_input_tokens") or 0)
               + (u.get("cache_creation_input_tokens") or 0))


def stable(r: Response) -> Response:
    """The Response without wall-clock fields, for equality checks."""
    return dataclasses.replace(r, latency=0.0, time_to_first_token=None)


# --- every recorded exchange ------------------------------------------------


@pytest.mark.parametrize("it", OK_JSON, ids=lambda it: it.id)
def test_recorded_json_decodes(it: Interaction) -> None:
    data = it.json()
    r = CODEC.decode(it.body, it.headers, _call())
    blocks = data["content"]
    assert r.text == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert r.reasoning == "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        (b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    for c in r.tool_calls:
        assert json.loads(c.raw_arguments) == c.arguments
    assert r.finish_reason == EXPECTED_FINISH[data["stop_reason"]]
    assert r.raw_finish_reason == data["stop_reason"]
    u = data["usage"]
    assert r.usage.input_tokens == normalized_input(u)
    assert r.usage.output_tokens == u["output_tokens"]
    assert r.usage.total_tokens == normalized_input(u) + u["output_tokens"]
    assert r.usage.cached_input_tokens == u.get("cache_read_input_tokens")
    assert r.usage.cache_write_tokens == u.get("cache_creation_input_tokens")
    assert r.usage.source == "reported"
    assert r.request_id == (it.headers.get("request-id") or data["id"])
    assert r.model == data["model"]
    assert r.raw == data


@pytest.mark.parametrize("it", OK_SSE, ids=lambda it: it.id)
def test_recorded_stream_replays(it: Interaction) -> None:
    exp = expected_from_sse(it.body)
    _, r = replay_stream(CODEC, it.body, "anthropic", "m")
    assert isinstance(r, Response), r
    assert r.text == exp["text"]
    assert r.reasoning == exp["thinking"]
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == exp["calls"]
    assert r.finish_reason == EXPECTED_FINISH[exp["stop"]]
    assert r.raw_finish_reason == exp["stop"]
    assert r.usage.input_tokens == normalized_input(exp["usage"])
    assert r.usage.output_tokens == exp["usage"]["output_tokens"]
    assert r.request_id == sse_payloads(it.body)[0]["message"]["id"]


@pytest.mark.parametrize("it", OK_SSE, ids=lambda it: it.id)
def test_rechunking_gives_identical_responses(it: Interaction) -> None:
    whole = replay_stream(CODEC, it.body)[1]
    assert isinstance(whole, Response)
    for size in (1, 5, 64):
        part = replay_stream(CODEC, it.body, chunk_size=size)[1]
        assert isinstance(part, Response), (size, part)
        assert stable(part) == stable(whole), size


EXPECTED_ERROR = {"not_found_error": errors.NotFoundError,
                  "invalid_request_error": errors.BadRequestError}


@pytest.mark.parametrize("it", ERRORS, ids=lambda it: it.id)
def test_recorded_errors_are_typed(it: Interaction) -> None:
    body = it.json()
    err = CODEC.classify_error(it.status, it.headers, it.body)
    assert type(err) is EXPECTED_ERROR[body["error"]["type"]]
    assert err.status == it.status
    assert err.code == body["error"]["type"]
    assert err.message == body["error"]["message"]
    assert err.request_id == body["request_id"]
    assert err.retryable is False


# --- the cases the recordings pin down exactly ------------------------------


def test_two_parallel_streamed_tool_calls() -> None:
    (it,) = load("anthropic/test_anthropic_tools_streaming_legacy.yaml")
    events, r = replay_stream(CODEC, it.body, chunk_size=7)
    assert isinstance(r, Response)
    assert r.tool_calls == [
        ToolCall("toolu_014x5X91kx3fvdhpLvwXZWE2", "get_weather",
                 {"location": "San Francisco, CA", "unit": "celsius"},
                 '{"location": "San Francisco, CA", "unit": "celsius"}'),
        ToolCall("toolu_0121kXsENLvoDZ72LCuAnCCz", "get_time",
                 {"timezone": "America/Los_Angeles"}, '{"timezone": "America/Los_Angeles"}'),
    ]
    assert r.finish_reason == "tool_calls"
    assert r.text.startswith("Certainly! I can help you with that information.")
    # Each call ends at its own content_block_stop, before the next one starts.
    marks = [(type(e).__name__, e.index) for e in events
             if isinstance(e, (ToolCallStart, ToolCallEnd))]
    assert marks == [("ToolCallStart", 0), ("ToolCallEnd", 0),
                     ("ToolCallStart", 1), ("ToolCallEnd", 1)]


def test_thinking_goes_to_reasoning_not_text() -> None:
    (it,) = load("anthropic/test_anthropic_model_thinking_part_stream.yaml")
    exp = expected_from_sse(it.body)
    _, r = replay_stream(CODEC, it.body)
    assert isinstance(r, Response)
    assert exp["thinking"] and r.reasoning == exp["thinking"]
    assert exp["thinking"] not in r.text and r.text == exp["text"]


def test_redacted_thinking_is_neither_text_nor_reasoning() -> None:
    (it,) = load("anthropic/test_anthropic_model_thinking_part_redacted_stream.yaml")
    _, r = replay_stream(CODEC, it.body)
    assert isinstance(r, Response)
    assert r.reasoning == ""
    assert r.text.startswith("I notice that you've sent what appears")


@pytest.mark.parametrize("file", [
    "anthropic/test_anthropic_model_web_search_tool_stream.yaml",
    "anthropic/test_anthropic_code_execution_tool_stream.yaml",
    "anthropic/test_anthropic_web_fetch_tool_stream.yaml",
])
def test_server_tool_calls_are_not_client_tool_calls(file: str) -> None:
    (it,) = load(file)
    assert expected_from_sse(it.body)["server"], "the recording has server tool blocks"
    _, r = replay_stream(CODEC, it.body)
    assert isinstance(r, Response)
    assert r.tool_calls == [] and r.finish_reason == "stop"


def test_server_tool_input_never_joins_the_client_call() -> None:
    it = load("anthropic/test_anthropic_native_tool_search_streaming.yaml")[0]
    _, r = replay_stream(CODEC, it.body)
    assert isinstance(r, Response)
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("toolu_01EFn5wTNBYA8Reni8rbmnHT", "get_exchange_rate",
         {"from_currency": "USD", "to_currency": "EUR"})]


def test_server_tools_stay_in_raw_only() -> None:
    it = load("anthropic/test_pause_turn_web_search_vcr.yaml")[0]
    r = CODEC.decode(it.body, it.headers, _call())
    kinds = [b["type"] for b in r.raw["content"]]
    assert kinds.count("server_tool_use") >= 2 and r.tool_calls == []
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "pause_turn")


def test_cache_usage_is_normalized() -> None:
    it = load("anthropic/test_anthropic_cache_real_api.yaml")[1]
    u = CODEC.decode(it.body, it.headers, _call()).usage
    # recorded: input_tokens 3, cache_read 1111, cache_creation 418, output 33
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens) == (1532, 1111, 418)
    assert (u.output_tokens, u.total_tokens) == (33, 1565)


def test_request_id_header_wins_over_message_id() -> None:
    (it,) = load("anthropic/test_anthropic_tools_legacy.yaml")
    r = CODEC.decode(it.body, it.headers, _call())
    assert r.request_id == "req_0162S72WMkXgHaRJ9aDTfqmw"
    assert CODEC.decode(it.body, {}, _call()).request_id == it.json()["id"]


def test_stateless_decode_event_matches_for_client_only_streams() -> None:
    class Stateless:  # a codec without stream_decoder(): the endpoint falls back
        decode_event = staticmethod(CODEC.decode_event)

    (it,) = load("anthropic/test_anthropic_tools_streaming_legacy.yaml")
    a, b = replay_stream(Stateless(), it.body)[1], replay_stream(CODEC, it.body)[1]
    assert isinstance(a, Response) and isinstance(b, Response)
    assert a.tool_calls == b.tool_calls and a.text == b.text


# --- stream failure modes -----------------------------------------------------


def _legacy_stream() -> bytes:
    return load("anthropic/test_anthropic_message_streaming_legacy.yaml")[0].body


def test_in_stream_overloaded_error_raises_typed() -> None:
    head = _legacy_stream().split(b"event: content_block_stop")[0]
    body = head + (b'event: error\ndata: {"type": "error", "error": {"type": '
                   b'"overloaded_error", "message": "Overloaded"}   }\n\n')
    events, err = replay_stream(CODEC, body)
    assert events, "text arrived before the error"
    assert type(err) is errors.OverloadedError
    assert err.retryable and err.code == "overloaded_error" and err.message == "Overloaded"


def test_stream_without_message_stop_is_interrupted() -> None:
    body = _legacy_stream().split(b"event: message_stop")[0]
    _, err = replay_stream(CODEC, body)
    assert isinstance(err, errors.StreamInterruptedError)
    assert err.partial is not None and err.partial.text


def test_bad_json_in_stream_is_malformed() -> None:
    body = _legacy_stream().replace(b'"text_delta"', b'"text_delta', 1)
    _, err = replay_stream(CODEC, body)
    assert isinstance(err, errors.MalformedResponseError)


def test_invalid_tool_arguments_are_kept_raw_not_empty() -> None:
    (it,) = load("anthropic/test_anthropic_tools_streaming_legacy.yaml")
    body = it.body.replace(b'\\"celsius\\"}"', b'\\"celsius\\""')  # drop the closing }
    assert body != it.body
    events, r = replay_stream(CODEC, body)
    assert isinstance(r, Response) and r.text.startswith("Certainly!")
    assert [e.tool_call for e in events if isinstance(e, ToolCallEnd)] == r.tool_calls
    assert len(r.tool_calls) == 2 and r.tool_calls[1].arguments is not None
    call = r.tool_calls[0]
    assert call.arguments is None and call.raw_arguments.endswith('"celsius"')
    assert call.arguments_error is not None and "not valid JSON" in call.arguments_error


@pytest.mark.parametrize("body", [b"[1]", b'{"content": "x"}', b'{"content": [{"type": '
                                  b'"tool_use", "id": 1}]}', b"not json"])
def test_malformed_json_bodies(body: bytes) -> None:
    with pytest.raises(errors.MalformedResponseError):
        CODEC.decode(body, {}, _call())


# --- classify_error -------------------------------------------------------------


def _err(kind: str, message: str = "boom") -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(("status", "kind", "cls", "retryable"), [
    (400, "invalid_request_error", errors.BadRequestError, False),
    (401, "authentication_error", errors.AuthenticationError, False),
    (403, "permission_error", errors.PermissionDeniedError, False),
    (404, "not_found_error", errors.NotFoundError, False),
    (413, "request_too_large", errors.BadRequestError, False),
    (429, "rate_limit_error", errors.RateLimitError, True),
    (500, "api_error", errors.ServerError, True),
    (529, "overloaded_error", errors.OverloadedError, True),
])
def test_error_types(status: int, kind: str, cls: type, retryable: bool) -> None:
    err = CODEC.classify_error(status, {"retry-after": "7", "request-id": "req_1"}, _err(kind))
    assert type(err) is cls
    assert (err.retryable, err.retry_after, err.request_id, err.code) == (retryable, 7.0,
                                                                          "req_1", kind)


def test_prompt_too_long_is_context_window() -> None:
    body = _err("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    assert type(CODEC.classify_error(400, {}, body)) is errors.ContextWindowExceededError


def test_overloaded_by_type_even_with_odd_status() -> None:
    assert type(CODEC.classify_error(500, {}, _err("overloaded_error"))) is errors.OverloadedError


def test_non_json_error_body() -> None:
    err = CODEC.classify_error(502, {}, b"<html>Bad Gateway</html>")
    assert type(err) is errors.ServerError and "Bad Gateway" in err.message


# --- encode ------------------------------------------------------------------------


def test_request_shape_and_headers() -> None:
    req = CODEC.encode(_call(temperature=0.2, top_p=0.9, stop=["END"]))
    assert (req.method, req.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert req.headers["x-api-key"] == SECRET
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    body = _body(req)
    assert body == {"model": "claude-sonnet-4-5", "max_tokens": 8192,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"]}
    assert not req.stream


def test_stream_flag() -> None:
    req = CODEC.encode(_call(stream=True))
    assert req.stream and _body(req)["stream"] is True


def test_key_absent_from_reprs() -> None:
    call = _call()
    req = CODEC.encode(call)
    for text in (repr(req), str(req), repr(call), repr(call.target)):
        assert SECRET not in text


def test_system_messages_are_lifted_and_joined() -> None:
    body = _body(CODEC.encode(_call(messages=[
        Message("system", "Be brief."), Message("user", "hi"),
        Message("system", "Answer in French."), Message("user", "again")])))
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert all(m["role"] != "system" for m in body["messages"])


def test_same_role_turns_are_merged_to_alternate() -> None:
    body = _body(CODEC.encode(_call(messages=[
        Message("user", "a"), Message("user", "b"), Message("assistant", "c"),
        Message("assistant", "d"), Message("user", "e")])))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["a", "b"]
    assert [b["text"] for b in body["messages"][1]["content"]] == ["c", "d"]


def test_tool_calls_and_results_mapping() -> None:
    calls = [ToolCall("toolu_1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}'),
             ToolCall("toolu_2", "get_time", {}, "{}")]
    body = _body(CODEC.encode(_call(messages=[
        Message("user", "weather and time?"),
        Message("assistant", "Let me check.", tool_calls=calls),
        Message("tool", "sunny", tool_call_id="toolu_1"),
        Message("tool", "noon", tool_call_id="toolu_2"),
        Message("user", "thanks")])))
    user, assistant, results = body["messages"]
    assert user["role"] == "user"
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]}
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
        {"type": "text", "text": "thanks"}]}


def test_tool_results_lead_their_user_turn() -> None:
    call = ToolCall("toolu_1", "f", {}, "{}")
    body = _body(CODEC.encode(_call(messages=[
        Message("user", "go"), Message("assistant", "", tool_calls=[call]),
        Message("user", "also this"), Message("tool", "done", tool_call_id="toolu_1")])))
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]


def test_tool_call_without_id_is_rejected() -> None:
    msg = Message("assistant", "", tool_calls=[ToolCall("", "f", {}, "{}")])
    with pytest.raises(errors.InvalidMessageError, match="no id"):
        CODEC.encode(_call(messages=[Message("user", "x"), msg]))


def test_image_mapping() -> None:
    body = _body(CODEC.encode(_call(messages=[Message("user", [
        TextPart("what is this?"),
        ImagePart("data:image/png;base64,iVBORw0KGgo="),
        ImagePart("https://example.com/cat.jpg", detail="high")])])))
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("url", ["file:///tmp/x.png", "data:image/png,rawbytes"])
def test_unusable_image_urls_are_rejected(url: str) -> None:
    with pytest.raises(errors.InvalidMessageError):
        CODEC.encode(_call(messages=[Message("user", [ImagePart(url)])]))


def test_tools_mapping() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = _body(CODEC.encode(_call(tools=[Tool("get_weather", "Weather now", schema),
                                           Tool("noop")])))
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather now", "input_schema": schema},
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}),
    ("get_weather", {"type": "tool", "name": "get_weather"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}),
    ({"type": "any", "disable_parallel_tool_use": True},
     {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    call = _call(tools=[Tool("get_weather")], tool_choice=choice)
    assert _body(CODEC.encode(call))["tool_choice"] == expected


@pytest.mark.parametrize("choice", ["no_such_tool", 3, {"type": "function"}])
def test_bad_tool_choice_is_rejected(choice: Any) -> None:
    with pytest.raises(errors.InvalidMessageError):
        CODEC.encode(_call(tools=[Tool("get_weather")], tool_choice=choice))


@pytest.mark.parametrize(("model", "kw", "expected"), [
    ("claude-sonnet-4-5", {}, 8192),
    ("claude-3-haiku-20240307", {}, 4096),
    ("claude-3-5-haiku-latest", {}, 8192),
    ("claude-sonnet-4-5", {"max_tokens": 100}, 100),
    ("claude-sonnet-4-5", {"extra": {"thinking": {"type": "enabled", "budget_tokens": 2000}}},
     10192),
])
def test_max_tokens_default(model: str, kw: dict[str, Any], expected: int) -> None:
    assert _body(CODEC.encode(_call(model, **kw)))["max_tokens"] == expected


def test_extra_is_merged_over_the_body() -> None:
    body = _body(CODEC.encode(_call(max_tokens=10, extra={
        "max_tokens": 20, "metadata": {"user_id": "u1"}, "top_k": 5})))
    assert (body["max_tokens"], body["metadata"], body["top_k"]) == (20, {"user_id": "u1"}, 5)


def test_text_mode_is_unsupported() -> None:
    with pytest.raises(errors.UnsupportedFeatureError, match=r"complete\(\)"):
        CODEC.encode(_call(mode="text", prompt="Once upon"))


def test_seed_is_unsupported() -> None:
    with pytest.raises(errors.UnsupportedFeatureError, match="seed"):
        CODEC.encode(_call(seed=1))


def test_base_url_ending_in_v1() -> None:
    call = _call()
    call = call.with_target(dataclasses.replace(call.target, base_url="http://127.0.0.1:1/v1/"))
    assert CODEC.encode(call).url == "http://127.0.0.1:1/v1/messages"


# --- through the real endpoint ------------------------------------------------------


class _Recorded:
    def __init__(self, it: Interaction, chunk: int) -> None:
        self.status, self.headers, self._body, self._chunk = it.status, it.headers, it.body, chunk

    async def read(self, max_bytes: int | None = None) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._body), self._chunk):
            yield self._body[i:i + self._chunk]

    async def aclose(self) -> None:
        pass


class _Replay:
    def __init__(self, it: Interaction, chunk: int = 97) -> None:
        self.it, self.chunk = it, chunk
        self.sent: list[WireRequest] = []

    async def send(self, request: WireRequest, timeouts: Timeouts) -> _Recorded:
        self.sent.append(request)
        return _Recorded(self.it, self.chunk)

    async def aclose(self) -> None:
        pass


async def test_endpoint_stream_uses_a_per_stream_decoder() -> None:
    it = load("anthropic/test_anthropic_native_tool_search_streaming.yaml")[0]
    transport = _Replay(it)
    stream = await open_stream(_call(stream=True), CODEC, transport)  # type: ignore[arg-type]
    r = await stream.collect()
    assert [c.name for c in r.tool_calls] == ["get_exchange_rate"]
    assert r.provider == "anthropic" and transport.sent[0].stream


async def test_endpoint_complete_and_error() -> None:
    ok = load("anthropic/test_tool_choice_matrix[auto-anthropic].yaml")[0]
    r = await complete(_call(), CODEC, _Replay(ok))  # type: ignore[arg-type]
    assert r.tool_calls[0].arguments == {"city": "Paris"}
    bad = load("anthropic/test_model_name_suggestion[anthropic].yaml")[0]
    with pytest.raises(errors.NotFoundError) as info:
        await complete(_call(), CODEC, _Replay(bad))  # type: ignore[arg-type]
    assert info.value.provider == "anthropic" and info.value.model == "claude-sonnet-4-5"
