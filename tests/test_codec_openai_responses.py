"""OpenAI Responses codec: every recorded ``/responses`` exchange (OpenAI, Azure,
DeepSeek), plus encode, synthetic stream edge cases and error mapping.

Expected values come from the recordings, read here by a deliberately naive
parser (split on blank lines, json.loads the ``data:`` lines), never from the
codec's own helpers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wirekit import Interaction, interactions, load, replay_stream

from modelwire import errors
from modelwire.accumulate import DONE, Finish, Meta, ToolCallChunk
from modelwire.endpoint import complete, open_stream
from modelwire.pipeline import Call, Target, Timeouts
from modelwire.providers.openai_responses import ResponsesCodec
from modelwire.registry import ProviderSpec, get_codec, get_spec
from modelwire.response import (
    ReasoningDelta,
    Response,
    TextDelta,
    ToolCall,
    ToolCallEnd,
    ToolCallStart,
)
from modelwire.transports.base import WireRequest
from modelwire.types import ImagePart, Message, TextPart, Tool
from modelwire.wire.sse import SSEEvent

SPEC = get_spec("openai-responses")
CODEC = ResponsesCodec(SPEC)
SECRET = "sk-test-SECRET-0123456789"
BASES = {"openai": "https://api.openai.com/v1", "deepseek": "https://api.deepseek.com",
         "azure": "https://pydantic-ai-realtime-dev.openai.azure.com/openai/v1"}


def _is_responses(it: Interaction) -> bool:
    # wirekit's path has no leading slash: "v1/responses", "openai/v1/responses", "responses"
    return it.path == "responses" or it.path.endswith("/responses")


ALL = [it for p in BASES for it in interactions(p) if _is_responses(it)]
OK_JSON = [it for it in ALL if it.status == 200 and not it.is_sse]
OK_SSE = [it for it in ALL if it.status == 200 and it.is_sse]
ERRORS = [it for it in ALL if it.status >= 400]


def _call(model: str = "gpt-4o", base: str = BASES["openai"], key: str | None = SECRET,
          spec: ProviderSpec = SPEC, **kw: Any) -> Call:
    messages = kw.pop("messages", [Message("user", "hi")])
    return Call(messages, Target(spec, model, base, key), **kw)


def _body(req: WireRequest) -> dict[str, Any]:
    assert req.body is not None
    return json.loads(req.body)  # type: ignore[no-any-return]


def sse_payloads(body: bytes) -> list[dict[str, Any]]:
    """The recording's events, parsed without the codec or the SSE parser."""
    out = []
    for block in body.decode().split("\n\n"):
        data = [ln[5:].strip() for ln in block.split("\n") if ln.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def expected_from_final(obj: dict[str, Any]) -> dict[str, Any]:
    """What a completed response object says, read naively."""
    out = obj["output"]
    text = "".join(p["text"] for i in out if i["type"] == "message"
                   for p in i["content"] if p["type"] == "output_text")
    calls = [(i["call_id"], i["name"], json.loads(i["arguments"] or "{}"))
             for i in out if i["type"] == "function_call"]
    reasoning = [p["text"] for i in out if i["type"] == "reasoning"
                 for p in (i.get("summary") or []) + (i.get("content") or []) if p["text"]]
    u = obj["usage"]
    return {"text": text, "calls": calls, "reasoning": reasoning, "usage": (
        u["input_tokens"], u["output_tokens"], u["total_tokens"],
        u["input_tokens_details"]["cached_tokens"],
        u["output_tokens_details"]["reasoning_tokens"])}


def _usage(r: Response) -> tuple[Any, ...]:
    u = r.usage
    return (u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens,
            u.reasoning_tokens)


def _calls(r: Response) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id, c.name, c.arguments) for c in r.tool_calls]


# --- the recording set itself ----------------------------------------------------


def test_every_responses_exchange_is_covered() -> None:
    by_provider = {p: sum(1 for it in ALL if it.provider == p) for p in BASES}
    assert by_provider == {"openai": 24, "deepseek": 6, "azure": 1}
    assert len(OK_JSON) + len(OK_SSE) + len(ERRORS) == len(ALL) == 31
    assert {it.provider for it in OK_SSE} == {"openai", "deepseek"}


@pytest.mark.parametrize("provider", list(BASES))
def test_encode_url_matches_the_recorded_uri(provider: str) -> None:
    recorded = {it.uri for it in ALL if it.provider == provider}
    req = CODEC.encode(_call(base=BASES[provider] + "/"))  # a trailing slash is tolerated
    assert recorded == {req.url}


# --- non-streamed bodies -----------------------------------------------------------


@pytest.mark.parametrize("it", OK_JSON, ids=lambda it: it.id)
def test_recorded_body_decodes(it: Interaction) -> None:
    data = it.json()
    r = CODEC.decode(it.body, it.headers, _call())
    want = expected_from_final(data)
    assert data["status"] == "completed"
    assert r.text == want["text"]
    assert _calls(r) == want["calls"]
    assert r.reasoning == "\n\n".join(want["reasoning"])
    assert _usage(r) == want["usage"] and r.usage.source == "reported"
    assert r.finish_reason == ("tool_calls" if want["calls"] else "stop")
    assert r.raw_finish_reason == "completed"
    assert r.request_id == data["id"] and r.model == data["model"] and r.raw == data


def test_parallel_calls_keep_their_own_ids() -> None:
    r = CODEC.decode(load("openai/test_openai_responses_model_retry.yaml")[0].body, {}, _call())
    assert [(c.id, c.arguments) for c in r.tool_calls] == [
        ("call_LWVp74L5HaH2KNvgVz9PJsrj", {"loc_name": "Londos"}),
        ("call_YnRAWeTyxI91m5uNa5bxXwVO", {"loc_name": "London"})]
    assert r.tool_calls[0].raw_arguments == '{"loc_name":"Londos"}'


def test_builtin_tool_items_are_not_client_calls() -> None:
    it = load("openai/test_openai_responses_model_web_search_tool.yaml")[0]
    r = CODEC.decode(it.body, it.headers, _call())
    assert [i["type"] for i in r.raw["output"]].count("web_search_call") == 1
    assert r.tool_calls == [] and r.finish_reason == "stop"
    assert r.usage.cached_input_tokens == 8448 and r.usage.reasoning_tokens == 512


def test_deepseek_reasoning_text_is_reasoning() -> None:
    r = CODEC.decode(load("deepseek/test_deepseek_responses[text].yaml")[0].body, {}, _call())
    assert r.reasoning == "We need answer capital of France."
    assert r.text == "The capital of France is Paris."


# --- streams -----------------------------------------------------------------------


def _final_object(it: Interaction) -> dict[str, Any]:
    finals = [p for p in sse_payloads(it.body) if p["type"] == "response.completed"]
    assert len(finals) == 1
    return finals[0]["response"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("it", OK_SSE, ids=lambda it: it.id)
def test_recorded_stream_replays(it: Interaction) -> None:
    events, r = replay_stream(CODEC, it.body, "openai-responses", "gpt-4o")
    assert isinstance(r, Response), r
    payloads = sse_payloads(it.body)
    deltas = [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"]
    assert r.text == "".join(deltas)
    assert [e.text for e in events if isinstance(e, TextDelta)] == [d for d in deltas if d]
    # function calls: announced by output_item.added, arguments joined per output_index
    added = {p["output_index"]: p["item"] for p in payloads
             if p["type"] == "response.output_item.added" and p["item"]["type"] == "function_call"}
    args = {i: "".join(p["delta"] for p in payloads if p.get("output_index") == i
                       and p["type"] == "response.function_call_arguments.delta") for i in added}
    assert _calls(r) == [(added[i]["call_id"], added[i]["name"], json.loads(args[i]))
                         for i in sorted(added)]
    ends = [e.tool_call for e in events if isinstance(e, ToolCallEnd)]
    assert [(c.id, c.name, c.arguments) for c in ends] == _calls(r)
    # reasoning: summary / reasoning_text deltas, one blank line between parts
    parts: dict[tuple[str, int, int], str] = {}
    for p in payloads:
        if p["type"] == "response.reasoning_summary_text.delta":
            k = ("s", p["output_index"], p["summary_index"])
        elif p["type"] == "response.reasoning_text.delta":
            k = ("c", p["output_index"], p["content_index"])
        else:
            continue
        parts[k] = parts.get(k, "") + p["delta"]
    assert r.reasoning == "\n\n".join(v for v in parts.values() if v)
    final = _final_object(it)
    assert _usage(r) == expected_from_final(final)["usage"]
    assert r.request_id == final["id"] and r.model == final["model"]


@pytest.mark.parametrize("it", OK_SSE, ids=lambda it: it.id)
def test_stream_equals_decode_of_its_final_object(it: Interaction) -> None:
    _, streamed = replay_stream(CODEC, it.body)
    decoded = CODEC.decode(json.dumps(_final_object(it)).encode(), {}, _call())
    assert isinstance(streamed, Response)
    for field in ("text", "tool_calls", "reasoning", "finish_reason", "raw_finish_reason",
                  "usage", "request_id", "model"):
        assert getattr(streamed, field) == getattr(decoded, field), field


@pytest.mark.parametrize("it", OK_SSE, ids=lambda it: it.id)
@pytest.mark.parametrize("size", [1, 9, 64])
def test_rechunking_changes_nothing(it: Interaction, size: int) -> None:
    whole_events, whole = replay_stream(CODEC, it.body)
    events, r = replay_stream(CODEC, it.body, chunk_size=size)
    assert isinstance(r, Response) and isinstance(whole, Response)
    assert events == whole_events
    assert (r.text, r.tool_calls, r.reasoning, r.usage, r.finish_reason) == \
        (whole.text, whole.tool_calls, whole.reasoning, whole.usage, whole.finish_reason)


def test_multi_part_reasoning_summary_is_separated() -> None:
    it = load("openai/test_openai_responses_thinking_part_iter.yaml")[0]
    _, r = replay_stream(CODEC, it.body)
    assert isinstance(r, Response)
    summary = [s["text"] for i in _final_object(it)["output"] if i["type"] == "reasoning"
               for s in i["summary"]]
    assert len(summary) == 4 and r.reasoning == "\n\n".join(summary)
    assert r.text.startswith("I'm not a road safety professional")


def test_stream_cut_before_completion_is_an_error() -> None:
    it = load("openai/test_openai_responses_stream.yaml")[1]
    cut = it.body[: it.body.index(b"event: response.completed")]
    events, err = replay_stream(CODEC, cut)
    assert isinstance(err, errors.StreamInterruptedError)
    assert err.partial is not None and err.partial.text == "The capital of France is Paris."
    assert any(isinstance(e, TextDelta) for e in events)


def test_stateless_decode_event_gives_the_same_deltas() -> None:
    class Stateless:  # a codec without stream_decoder(): the endpoint falls back
        decode_event = staticmethod(CODEC.decode_event)

    for it in OK_SSE:
        _, a = replay_stream(Stateless(), it.body)
        _, b = replay_stream(CODEC, it.body)
        assert isinstance(a, Response) and isinstance(b, Response)
        assert (a.text, a.tool_calls, a.usage, a.finish_reason) == \
            (b.text, b.tool_calls, b.usage, b.finish_reason), it.id
        assert a.reasoning.replace("\n\n", "") == b.reasoning.replace("\n\n", "")


# --- synthetic streams: what the recordings lack ------------------------------------


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def _resp(status: str = "completed", output: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"id": "resp_1", "model": "gpt-x", "status": status, "output": output or [],
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
                      "input_tokens_details": {"cached_tokens": 2},
                      "output_tokens_details": {"reasoning_tokens": 3}}, **kw}


FC = {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": '{"x": 1}'}
MSG = {"type": "message", "role": "assistant",
       "content": [{"type": "output_text", "text": "hello", "annotations": []}]}


@pytest.mark.parametrize(("reason", "finish"), [("max_output_tokens", "length"),
                                                ("content_filter", "content_filter"),
                                                (None, "length")])
def test_incomplete(reason: str | None, finish: str) -> None:
    details = {"reason": reason} if reason else None
    final = _resp("incomplete", [MSG], incomplete_details=details)
    body = _sse({"type": "response.created", "response": _resp("in_progress")},
                {"type": "response.output_text.delta", "output_index": 0, "delta": "hel"},
                {"type": "response.incomplete", "response": final})
    _, r = replay_stream(CODEC, body)
    assert isinstance(r, Response)
    assert r.finish_reason == finish and r.raw_finish_reason == (reason or "incomplete")
    assert r.text == "hello"  # the tail only the final object carried is not lost
    d = CODEC.decode(json.dumps(final).encode(), {}, _call())
    assert (d.finish_reason, d.text, d.usage) == (finish, "hello", r.usage)


def test_deltas_missing_from_the_stream_come_from_the_final_object() -> None:
    final = _resp(output=[{"type": "reasoning", "summary": [{"type": "summary_text",
                                                             "text": "think"}]}, MSG, FC])
    body = _sse({"type": "response.output_item.done", "output_index": 2, "item": FC},
                {"type": "response.completed", "response": final})
    events, r = replay_stream(CODEC, body)
    assert isinstance(r, Response)
    assert (r.text, r.reasoning, _calls(r)) == ("hello", "think", [("call_a", "f", {"x": 1})])
    assert r.finish_reason == "tool_calls"
    assert [type(e) for e in events if isinstance(e, (ToolCallStart, ToolCallEnd))] == \
        [ToolCallStart, ToolCallEnd]


def test_arguments_sent_only_with_the_done_item() -> None:
    added = dict(FC, arguments="")
    done = {"type": "response.output_item.done", "output_index": 0, "item": FC}
    body = _sse({"type": "response.output_item.added", "output_index": 0, "item": added},
                done, done,  # a repeated done event must not repeat the arguments
                {"type": "response.completed", "response": _resp(output=[FC])})
    _, r = replay_stream(CODEC, body)
    assert isinstance(r, Response) and _calls(r) == [("call_a", "f", {"x": 1})]


def test_interleaved_parallel_calls_join_by_output_index() -> None:
    a, b = dict(FC, arguments=""), dict(FC, call_id="call_b", arguments="")
    body = _sse(
        {"type": "response.output_item.added", "output_index": 0, "item": a},
        {"type": "response.output_item.added", "output_index": 1, "item": b},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"x":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"x":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "1}"},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "2}"},
        {"type": "response.completed", "response": _resp(output=[
            dict(FC, arguments='{"x":1}'), dict(FC, call_id="call_b", arguments='{"x":2}')])})
    _, r = replay_stream(CODEC, body)
    assert isinstance(r, Response)
    assert _calls(r) == [("call_a", "f", {"x": 1}), ("call_b", "f", {"x": 2})]


def test_refusal_is_text() -> None:
    refusal = {"type": "message", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    body = _sse({"type": "response.refusal.delta", "output_index": 0, "content_index": 0,
                 "delta": "I can't "},
                {"type": "response.refusal.delta", "output_index": 0, "content_index": 0,
                 "delta": "help with that."},
                {"type": "response.completed", "response": _resp(output=[refusal])})
    events, r = replay_stream(CODEC, body)
    d = CODEC.decode(json.dumps(_resp(output=[refusal])).encode(), {}, _call())
    assert isinstance(r, Response) and r.text == d.text == "I can't help with that."
    assert events[:2] == [TextDelta("I can't "), TextDelta("help with that.")]  # as it came


def test_error_body_served_as_200() -> None:
    body = json.dumps({"error": {"code": "server_error", "message": "try again"}}).encode()
    with pytest.raises(errors.ServerError, match="try again"):
        CODEC.decode(body, {}, _call())


def test_decode_event_units() -> None:
    ev = CODEC.decode_event
    assert ev(SSEEvent("message", "[DONE]")) == [DONE]
    assert ev(SSEEvent("message", "  ")) == []
    delta = {"type": "response.output_text.delta", "delta": "x", "output_index": 0,
             "logprobs": [{"token": "x", "logprob": -0.1}], "obfuscation": "abc"}
    assert ev(SSEEvent("response.output_text.delta", json.dumps(delta))) == [TextDelta("x")]
    assert ev(SSEEvent("x", json.dumps({"type": "response.reasoning_summary_text.delta",
                                        "delta": "r", "output_index": 0,
                                        "summary_index": 0}))) == [ReasoningDelta("r")]
    added = {"type": "response.output_item.added", "output_index": 3, "item": FC}
    assert ev(SSEEvent("x", json.dumps(added))) == [ToolCallChunk(3, "call_a", "f")]
    done = ev(SSEEvent("x", json.dumps({"type": "response.completed", "response": _resp()})))
    assert done[0] == Meta("resp_1", "gpt-x") and done[-2:] == [Finish("stop", "completed"), DONE]
    web = {"type": "response.output_item.added", "output_index": 1,
           "item": {"type": "web_search_call", "id": "ws_1"}}
    assert ev(SSEEvent("x", json.dumps(web))) == []


@pytest.mark.parametrize(("error", "kind", "retryable"), [
    ({"code": "server_error", "message": "boom"}, errors.ServerError, True),
    ({"code": "rate_limit_exceeded", "message": "slow down"}, errors.RateLimitError, True),
    ({"code": "invalid_prompt", "message": "flagged"}, errors.BadRequestError, False),
    ({"code": "vector_store_timeout", "message": "slow"}, errors.RequestTimeoutError, True),
])
def test_response_failed_raises_the_typed_error(error: dict[str, Any], kind: type[Any],
                                                retryable: bool) -> None:
    failed = _resp("failed", error=error)
    body = _sse({"type": "response.created", "response": _resp("in_progress")},
                {"type": "response.output_text.delta", "output_index": 0, "delta": "par"},
                {"type": "response.failed", "response": failed})
    events, err = replay_stream(CODEC, body)
    assert type(err) is kind and err.message == error["message"]
    assert err.code == error["code"] and err.retryable is retryable
    assert events == [TextDelta("par")]
    with pytest.raises(kind):  # the same object as a body
        CODEC.decode(json.dumps(failed).encode(), {}, _call())


@pytest.mark.parametrize("payload", [
    {"type": "error", "code": "rate_limit_exceeded", "message": "too fast", "param": None,
     "sequence_number": 3},
    {"type": "error", "error": {"type": "rate_limit_error", "code": "rate_limit_exceeded",
                                "message": "too fast"}},
])
def test_error_event_raises(payload: dict[str, Any]) -> None:
    with pytest.raises(errors.RateLimitError, match="too fast"):
        CODEC.stream_decoder()(SSEEvent("error", json.dumps(payload)))


@pytest.mark.parametrize(("status", "kind"), [("cancelled", errors.ProviderError),
                                              ("queued", errors.MalformedResponseError),
                                              ("in_progress", errors.MalformedResponseError)])
def test_unfinished_bodies_are_errors(status: str, kind: type) -> None:
    with pytest.raises(kind, match=status):
        CODEC.decode(json.dumps(_resp(status)).encode(), {}, _call())


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'{"id": "r", "status": "completed"}',
    json.dumps(_resp(output=[dict(FC, call_id=None)])).encode(),
    json.dumps(_resp(output=[{"type": "message", "content": ["bare"]}])).encode(),
])
def test_malformed_bodies_are_typed(body: bytes) -> None:
    with pytest.raises(errors.MalformedResponseError):
        CODEC.decode(body, {}, _call())


@pytest.mark.parametrize("data", [
    "{not json", "[1]", json.dumps({"type": "response.function_call_arguments.delta",
                                    "delta": "x"}),
    json.dumps({"type": "response.output_item.done", "output_index": 0,
                "item": {"type": "function_call", "arguments": "{}"}}),
])
def test_malformed_events_are_typed(data: str) -> None:
    with pytest.raises(errors.MalformedResponseError):
        CODEC.stream_decoder()(SSEEvent("message", data))


# --- errors ----------------------------------------------------------------------

EXPECTED_ERRORS = {
    "openai/test_model_name_suggestion[openai-responses].yaml#0":
        (errors.NotFoundError, "model_not_found"),
    "openai/test_openai_responses_model_http_error.yaml#0":
        (errors.BadRequestError, "decimal_below_min_value"),
    "openai/test_openai_responses_thinking_with_modified_history.yaml#1":
        (errors.BadRequestError, "invalid_request_error"),
    "deepseek/test_deepseek_responses_rejects_interleaved_function_calls.yaml#0":
        (errors.BadRequestError, "invalid_request_error"),
}


@pytest.mark.parametrize("it", ERRORS, ids=lambda it: it.id)
def test_recorded_errors_classify(it: Interaction) -> None:
    kind, code = EXPECTED_ERRORS[it.id]
    err = CODEC.classify_error(it.status, it.headers, it.body)
    assert type(err) is kind and err.code == code and err.status == it.status
    assert err.message == json.loads(it.body)["error"]["message"]
    assert not err.retryable and err.body == json.loads(it.body)


def test_error_table_covers_every_recorded_error() -> None:
    assert {it.id for it in ERRORS} == set(EXPECTED_ERRORS)
    octet = load("deepseek/test_deepseek_responses_rejects_interleaved_function_calls.yaml")[0]
    assert octet.headers["content-type"] == "application/octet-stream"


# --- through the endpoint: a replaying transport ---------------------------------------


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


async def test_endpoint_stream_and_complete() -> None:
    it = load("deepseek/test_deepseek_responses[function_tool_stream].yaml")[0]
    transport = _Replay(it)
    stream = await open_stream(_call(stream=True), CODEC, transport)  # type: ignore[arg-type]
    r = await stream.collect()
    assert _calls(r) == [("call_00_xjY8Z2BvSlzgEmmw0DtH0464", "get_temperature",
                          {"city": "Tokyo"})]
    assert r.provider == "openai-responses" and transport.sent[0].stream
    ok = load("azure/test_azure_responses_reasoning_context_default_wire_contract[gpt-5.4].yaml")
    assert (await complete(_call(), CODEC, _Replay(ok[0]))).text == "Paris"  # type: ignore[arg-type]


async def test_400_json_answer_to_a_stream_request() -> None:
    it = load("openai/test_openai_responses_model_http_error.yaml")[0]
    assert it.request is not None and it.request["stream"] is True and not it.is_sse
    with pytest.raises(errors.BadRequestError, match="temperature") as info:
        await open_stream(_call(stream=True), CODEC, _Replay(it))  # type: ignore[arg-type]
    assert info.value.provider == "openai-responses" and info.value.model == "gpt-4o"


@pytest.mark.parametrize("file", [
    "azure/test_azure_responses_reasoning_context_default_wire_contract[gpt-5.4].yaml",
    "deepseek/test_deepseek_responses[function_tool_stream].yaml"])
async def test_client_reaches_azure_and_deepseek_through_base_urls(file: str) -> None:
    """The documented way: the openai-responses row with base_urls / api_keys."""
    from modelwire.client import AsyncClient
    it = load(file)[0]
    transport = _Replay(it)
    client = AsyncClient(api_keys={"openai-responses": SECRET}, middleware=[],
                         base_urls={"openai-responses": BASES[it.provider]},
                         transport=transport)  # type: ignore[arg-type]
    model = f"openai-responses/{it.request['model'] if it.request else ''}"
    if it.is_sse:
        async with client.stream(model, "hi") as stream:
            r = await stream.collect()
    else:
        r = await client.complete(model, "hi")
    sent = transport.sent[0]
    assert sent.url == it.uri and sent.headers["authorization"] == f"Bearer {SECRET}"
    assert r.provider == "openai-responses" and r.usage.source == "reported"
    assert r.text or r.tool_calls


def test_registry_row_builds_this_codec() -> None:
    assert isinstance(get_codec(SPEC), ResponsesCodec)


# --- encode -------------------------------------------------------------------------

CONVERSATION = [
    Message("system", "Be brief."), Message("system", "Use metric units."),
    Message("user", [TextPart("What is in"), ImagePart("https://x/cat.png", "low"),
                     ImagePart("data:image/png;base64,AAAA")]),
    Message("assistant", "Let me check.", [ToolCall("call_1", "look", {"q": "é"}, "")]),
    Message("tool", "a cat", tool_call_id="call_1"),
    Message("system", "Now answer in French."),
    Message("assistant", "", [ToolCall("call_2", "look", {}, "{}")]),
    Message("tool", [TextPart("see"), ImagePart("https://x/2.png")], tool_call_id="call_2"),
]


def test_encode_conversation() -> None:
    req = CODEC.encode(_call(messages=CONVERSATION, temperature=0.2, top_p=0.9, max_tokens=50))
    body = _body(req)
    assert req.method == "POST" and req.url == "https://api.openai.com/v1/responses"
    assert req.headers["authorization"] == f"Bearer {SECRET}" and not req.stream
    assert body["instructions"] == "Be brief.\n\nUse metric units."
    assert body["input"] == [
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is in"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}]},
        {"role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": '{"q": "é"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {"role": "system", "content": [{"type": "input_text", "text": "Now answer in French."}]},
        {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_2", "output": [
            {"type": "input_text", "text": "see"},
            {"type": "input_image", "image_url": "https://x/2.png", "detail": "auto"}]},
    ]
    assert (body["temperature"], body["top_p"], body["max_output_tokens"]) == (0.2, 0.9, 50)
    assert "stream" not in body and "tools" not in body and "max_tokens" not in body


def test_encode_matches_recorded_tool_round_trip() -> None:
    """The function_call / function_call_output items we send are the recorded ones."""
    it = load("openai/test_openai_responses_model_retry.yaml")[1]
    assert it.request is not None
    recorded = [i for i in it.request["input"] if i.get("type")]
    first = CODEC.decode(load("openai/test_openai_responses_model_retry.yaml")[0].body, {},
                         _call())
    outputs = [i["output"] for i in recorded if i["type"] == "function_call_output"]
    messages = [Message("user", "What is the location of Londos and London?"),
                Message("assistant", "", first.tool_calls),
                *(Message("tool", o, tool_call_id=c.id)
                  for o, c in zip(outputs, first.tool_calls, strict=True))]
    tool = it.request["tools"][0]
    sent = _body(CODEC.encode(_call(messages=messages, tools=[
        Tool(tool["name"], tool["description"], tool["parameters"])], tool_choice="auto")))
    ours = [i for i in sent["input"] if i.get("type")]
    for a, b in zip(ours, recorded, strict=True):
        if a["type"] == "function_call":
            a, b = dict(a, arguments=json.loads(a["arguments"])), \
                dict(b, arguments=json.loads(b["arguments"]))
        assert a == b
    # the recorded tool was strict with an empty description; ours is not strict and
    # leaves the empty description out
    assert tool["description"] == "" and tool["strict"] is True
    assert sent["tools"] == [{"type": "function", "name": tool["name"],
                              "parameters": tool["parameters"], "strict": False}]
    assert sent["tool_choice"] == it.request["tool_choice"]


def test_encode_tools_and_tool_choice() -> None:
    tools = [Tool("get_weather", "Weather for a city.",
                  {"type": "object", "properties": {"city": {"type": "string"}}}), Tool("x")]
    body = _body(CODEC.encode(_call(tools=tools, tool_choice="get_weather")))
    assert body["tools"][0] == {"type": "function", "name": "get_weather",
                                "description": "Weather for a city.",
                                "parameters": tools[0].parameters, "strict": False}
    assert "description" not in body["tools"][1]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    choice = {"type": "function", "function": {"name": "x"}}  # Chat Completions' shape
    for given, sent in (("required", "required"), ("any", "required"), ("none", "none"),
                        (tools[1], {"type": "function", "name": "x"}),
                        (choice, {"type": "function", "name": "x"}),
                        ({"type": "web_search"}, {"type": "web_search"})):
        assert _body(CODEC.encode(_call(tools=tools, tool_choice=given)))["tool_choice"] == sent
    for bad in ("nope", 3, {"type": "function", "function": {}}):
        with pytest.raises(errors.InvalidMessageError):
            CODEC.encode(_call(tools=tools, tool_choice=bad))


def test_encode_stream_extra_and_auth_variants() -> None:
    req = CODEC.encode(_call(stream=True, extra={"store": False, "temperature": 1.0},
                             temperature=0.1, key=None))
    body = _body(req)
    assert body["stream"] is True and req.stream
    assert body["store"] is False and body["temperature"] == 1.0  # extra wins
    assert "authorization" not in req.headers
    azure = ProviderSpec("az", "x:Y", None, auth="api-key", headers=(("x-extra", "1"),))
    req = ResponsesCodec(azure).encode(_call(spec=azure, base=BASES["azure"]))
    assert req.headers["api-key"] == SECRET and req.headers["x-extra"] == "1"
    assert "authorization" not in req.headers and SECRET not in repr(req)


@pytest.mark.parametrize(("kw", "match"), [
    ({"stop": ["END"]}, "openai/gpt-4o"), ({"seed": 0}, "openai/gpt-4o"),
    ({"mode": "text", "prompt": "hi"}, "openai/gpt-4o"),
    ({"extra": {"background": True}}, "background"),
])
def test_encode_refuses_what_the_api_lacks(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(errors.UnsupportedFeatureError, match=match):
        CODEC.encode(_call(**kw))


@pytest.mark.parametrize("kw", [
    {"extra": {"stream": True}},
    {"messages": [Message("system", [ImagePart("https://x/1.png")])]},
    {"messages": [Message("assistant", [ImagePart("https://x/1.png")])]},
    {"messages": [Message("assistant", "", [ToolCall("", "f", {}, "{}")])]},
    {"messages": [Message("tool", "r")]},
])
def test_encode_rejects_bad_input(kw: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidMessageError):
        CODEC.encode(_call(**kw))
