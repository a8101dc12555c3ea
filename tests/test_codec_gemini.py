"""Gemini codec: every recorded exchange, stream re-chunking, encode, errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from wirekit import Interaction, interactions, load, replay_stream

from modelwire.accumulate import StreamAccumulator, ToolCallChunk
from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidMessageError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from modelwire.pipeline import Call, Target
from modelwire.providers.gemini import SIGNATURE_SEP, GeminiCodec, gemini_schema
from modelwire.registry import get_codec, get_spec
from modelwire.response import ToolCall, ToolCallEnd, ToolCallStart, UsageUpdate
from modelwire.types import ImagePart, Message, TextPart, Tool, to_messages
from modelwire.wire.sse import SSEEvent

SPEC = get_spec("gemini")
CODEC = GeminiCodec(SPEC)
KEY = "AIzaSy-test-key-0123456789"
BASE = "https://generativelanguage.googleapis.com"
ALL = list(interactions("gemini"))
OK_JSON = [it for it in ALL if it.status == 200 and not it.is_sse]
SSE = [it for it in ALL if it.status == 200 and it.is_sse]
ERRORS = [it for it in ALL if it.status >= 400]


def make_call(messages: Any = "hi", **kw: Any) -> Call:
    target = Target(SPEC, kw.pop("model", "gemini-2.5-flash"), kw.pop("base_url", BASE),
                    kw.pop("api_key", KEY), kw.pop("options", {}))
    msgs = to_messages(messages) if not isinstance(messages, list) or not messages or \
        not isinstance(messages[0], Message) else messages
    return Call(messages=msgs, target=target, **kw)


def body_of(call: Call) -> dict[str, Any]:
    req = CODEC.encode(call)
    assert req.body is not None
    return json.loads(req.body)  # type: ignore[no-any-return]


def sse_chunks(body: bytes) -> list[dict[str, Any]]:
    """The recorded stream's JSON chunks, split by hand (Gemini separates with CRLF CRLF)."""
    blocks = [b for b in body.decode("utf-8").split("\r\n\r\n") if b.strip()]
    assert all(b.startswith("data: ") for b in blocks)
    return [json.loads(b[len("data: "):]) for b in blocks]


def expected(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    parts = [p for c in chunks for cand in c.get("candidates", [])
             for p in cand.get("content", {}).get("parts", [])]
    last = chunks[-1]["usageMetadata"]
    return {
        "text": "".join(p["text"] for p in parts if "text" in p and not p.get("thought")),
        "reasoning": "".join(p["text"] for p in parts if p.get("thought")),
        "calls": [(p["functionCall"]["name"], p["functionCall"].get("args", {}))
                  for p in parts if "functionCall" in p],
        "signatures": [p["thoughtSignature"] for p in parts
                       if "functionCall" in p and "thoughtSignature" in p],
        "input": last.get("promptTokenCount", 0) + last.get("toolUsePromptTokenCount", 0),
        "output": last.get("candidatesTokenCount", 0) + last.get("thoughtsTokenCount", 0),
        "total": last["totalTokenCount"], "thoughts": last.get("thoughtsTokenCount"),
        "id": chunks[-1]["responseId"], "model": chunks[-1]["modelVersion"],
    }


def check(r: Any, exp: dict[str, Any]) -> None:
    assert r.text == exp["text"]
    assert r.reasoning == exp["reasoning"]
    assert [(c.name, c.arguments) for c in r.tool_calls] == exp["calls"]
    assert [c.raw_arguments for c in r.tool_calls] == [json.dumps(a) for _, a in exp["calls"]]
    assert len({c.id for c in r.tool_calls}) == len(r.tool_calls)
    signed = [c.provider_data["gemini"]["thoughtSignature"] for c in r.tool_calls
              if c.provider_data]
    assert signed == exp["signatures"]
    assert all(SIGNATURE_SEP not in c.id for c in r.tool_calls)  # ids stay plain
    assert r.finish_reason == ("tool_calls" if exp["calls"] else "stop")
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == \
        (exp["input"], exp["output"], exp["total"])
    assert u.input_tokens + u.output_tokens == u.total_tokens  # holds in every recording
    assert u.reasoning_tokens == exp["thoughts"] and u.source == "reported"
    assert (r.request_id, r.model) == (exp["id"], exp["model"])


def project(r: Any) -> tuple[Any, ...]:
    return (r.text, r.reasoning, [(c.id, c.name, c.arguments, c.raw_arguments)
                                  for c in r.tool_calls],
            r.finish_reason, r.raw_finish_reason, r.usage, r.request_id, r.model)


def stream(body: bytes, chunk_size: int | None = None) -> tuple[list[Any], Any]:
    return replay_stream(CODEC, body, "gemini", "m", chunk_size=chunk_size)


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def chunk(parts: list[dict[str, Any]], finish: str | None = None, **kw: Any) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "responseId": "r1", "modelVersion": "gemini-x", **kw}


def fc(name: str, args: dict[str, Any] | None = None, **part: Any) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": args or {}}, **part}


# --- every recorded exchange ---------------------------------------------------


def test_the_recordings_cover_what_these_tests_claim() -> None:
    assert len(OK_JSON) == 14 and len(SSE) == 9 and len(ERRORS) == 2
    assert any(it.path.endswith(":countTokens") for it in ERRORS)


@pytest.mark.parametrize("it", OK_JSON, ids=lambda it: it.id)
def test_recorded_json_decodes(it: Interaction) -> None:
    r = CODEC.decode(it.body, it.headers, make_call())
    check(r, expected([it.json()]))
    assert r.raw == it.json() and r.provider == "gemini"
    assert r.raw_finish_reason == it.json()["candidates"][0]["finishReason"]


@pytest.mark.parametrize("it", SSE, ids=lambda it: it.id)
def test_recorded_stream_replays(it: Interaction) -> None:
    chunks = sse_chunks(it.body)
    assert "finishReason" in chunks[-1]["candidates"][0]  # the last chunk ends the stream
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    events, r = stream(it.body)
    assert not isinstance(r, Exception), r
    check(r, expected(chunks))
    # usage is live: one update per chunk, each as the chunk reported it
    updates = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert len(updates) == len(chunks)


@pytest.mark.parametrize("it", SSE, ids=lambda it: it.id)
@pytest.mark.parametrize("size", [1, 3, 64])
def test_rechunked_streams_give_identical_responses(it: Interaction, size: int) -> None:
    _, whole = stream(it.body)
    _, pieces = stream(it.body, chunk_size=size)
    assert project(pieces) == project(whole)


@pytest.mark.parametrize("it", SSE, ids=lambda it: it.id)
def test_stream_cut_before_the_finishing_chunk_is_interrupted(it: Interaction) -> None:
    cut = it.body[:it.body.rindex(b"data: ")]
    _, r = stream(cut)
    assert isinstance(r, StreamInterruptedError)
    assert r.partial is not None and r.partial.finish_reason == "error"


@pytest.mark.parametrize("it", ERRORS, ids=lambda it: it.id)
def test_recorded_404s_classify(it: Interaction) -> None:
    e = CODEC.classify_error(it.status, it.headers, it.body)
    err = it.json()["error"]
    assert isinstance(e, NotFoundError) and not e.retryable
    assert (e.status, e.code, e.message) == (404, err["status"], err["message"])
    assert e.provider == "gemini" and e.body == it.json()


def test_three_parallel_calls_and_their_signature() -> None:
    it = load("gemini/test_google_instructions_only_with_tool_calls.yaml")[0]
    r = CODEC.decode(it.body, it.headers, make_call())
    parts = it.json()["candidates"][0]["content"]["parts"]
    assert [c.name for c in r.tool_calls] == ["generate_topic"] * 3
    sig = r.tool_calls[0].provider_data["gemini"]["thoughtSignature"]  # type: ignore[index]
    assert sig == parts[0]["thoughtSignature"] and r.tool_calls[0].id.startswith("call_")
    assert [c.id for c in r.tool_calls[1:]] == ["call_1", "call_2"]


def test_thought_parts_are_reasoning_never_text() -> None:
    it = load("gemini/test_google_model_thinking_part.yaml")[0]
    parts = it.json()["candidates"][0]["content"]["parts"]
    r = CODEC.decode(it.body, it.headers, make_call())
    assert parts[0]["thought"] is True and r.reasoning == parts[0]["text"]
    assert r.text == parts[1]["text"] and parts[0]["text"] not in r.text
    assert r.raw["candidates"][0]["content"]["parts"][1]["thoughtSignature"]  # kept in raw


def test_streamed_thoughts_are_reasoning_deltas() -> None:
    it = load("gemini/test_google_model_thinking_part_iter.yaml")[0]
    events, _ = stream(it.body)
    kinds = [type(e).__name__ for e in events if type(e).__name__ in ("TextDelta",
                                                                       "ReasoningDelta")]
    assert kinds[:4] == ["ReasoningDelta"] * 4 and set(kinds[4:]) == {"TextDelta"}


def test_live_usage_ends_with_the_last_chunk() -> None:
    it = load("gemini/test_google_stream_usage_is_live_mid_stream.yaml")[0]
    events, r = stream(it.body)
    outputs = [e.usage.output_tokens for e in events if isinstance(e, UsageUpdate)]
    assert outputs == sorted(outputs) and outputs[0] < outputs[-1]
    last = sse_chunks(it.body)[-1]["usageMetadata"]
    assert r.usage.output_tokens == last["candidatesTokenCount"] + last["thoughtsTokenCount"]


def test_streamed_signature_survives_the_round_trip() -> None:
    first, second = load("gemini/test_google_streaming_tool_call_thought_signature.yaml")
    _, r = stream(first.body)
    (call,) = r.tool_calls
    history = [Message("user", "What is the capital of the user country? Call the tool"),
               Message("assistant", "", [call]),
               Message("tool", '{"return_value": "Mexico"}', tool_call_id=call.id)]
    sent = body_of(make_call(history))["contents"]
    recorded = second.request["contents"]  # type: ignore[index]
    ours, theirs = sent[1]["parts"][0], recorded[1]["parts"][0]
    # pydantic-ai re-encoded the bytes url-safe; the signature bytes must be the same
    assert base64.b64decode(ours["thoughtSignature"]) == \
        base64.urlsafe_b64decode(theirs["thoughtSignature"])
    assert ours["functionCall"]["name"] == theirs["functionCall"]["name"] == "get_country"
    assert SIGNATURE_SEP not in ours["functionCall"]["id"]
    resp = sent[2]["parts"][0]["functionResponse"]
    assert resp["name"] == "get_country" and resp["response"] == {"return_value": "Mexico"}
    assert resp["id"] == ours["functionCall"]["id"] and sent[2]["role"] == "user"


def test_decoded_history_encodes_like_the_recorded_follow_up() -> None:
    first, second = load("gemini/test_tool_choice_matrix[auto-google].yaml")
    (call,) = CODEC.decode(first.body, first.headers, make_call()).tool_calls
    sent = body_of(make_call([
        Message("user", "What's the weather in Paris?"), Message("assistant", "", [call]),
        Message("tool", '{"return_value": "Sunny, 22C in Paris"}', tool_call_id=call.id)
    ]))["contents"]
    rec = second.request["contents"]  # type: ignore[index]
    assert len(sent) == len(rec) == 3
    for ours, theirs in zip(sent, rec, strict=True):
        assert ours["role"] == theirs["role"] and len(ours["parts"]) == len(theirs["parts"])
        for a, b in zip(ours["parts"], theirs["parts"], strict=True):
            assert a.keys() == b.keys()
            for kind in ("functionCall", "functionResponse"):  # ids differ: ours vs pyd_ai_
                if kind in b:
                    assert {k: v for k, v in a[kind].items() if k != "id"} == \
                        {k: v for k, v in b[kind].items() if k != "id"}
    sig = sent[1]["parts"][0]["thoughtSignature"]
    assert base64.b64decode(sig) == base64.urlsafe_b64decode(
        rec[1]["parts"][0]["thoughtSignature"])


# --- stream edge cases ----------------------------------------------------------


def test_repeated_same_name_calls_across_chunks_stay_separate() -> None:
    body = sse(chunk([fc("f", {"n": 1}), fc("f", {"n": 2})]),
               chunk([fc("f", {"n": 3})]), chunk([fc("f", {"n": 4}, thoughtSignature="c2ln")]),
               chunk([{"text": ""}], "STOP"))
    events, r = stream(body)
    assert [c.arguments["n"] for c in r.tool_calls] == [1, 2, 3, 4]
    ids = [c.id for c in r.tool_calls]
    assert ids[:3] == ["call_0", "call_1", "call_2"] and ids[3].startswith("call_")
    assert r.tool_calls[3].provider_data == {"gemini": {"thoughtSignature": "c2ln"}}
    assert len([e for e in events if isinstance(e, ToolCallStart)]) == 4
    assert len([e for e in events if isinstance(e, ToolCallEnd)]) == 4
    assert r.finish_reason == "tool_calls"
    # the same parts unstreamed decode to the same ids
    whole = chunk([fc("f", {"n": 1}), fc("f", {"n": 2}), fc("f", {"n": 3}),
                   fc("f", {"n": 4}, thoughtSignature="c2ln")], "STOP")
    assert [c.id for c in CODEC.decode(json.dumps(whole).encode(), {}, make_call())
            .tool_calls] == ids


def test_chunk_keys_are_unique_per_call() -> None:
    deltas = CODEC.decode_event(SSEEvent("message", json.dumps(chunk(
        [fc("f"), fc("f"), fc("g", thoughtSignature="c2ln")]))))
    keys = [d.key for d in deltas if isinstance(d, ToolCallChunk)]
    assert len(keys) == len(set(keys)) == 3
    assert all(d.complete for d in deltas if isinstance(d, ToolCallChunk))


def test_api_sent_call_ids_are_used() -> None:
    body = sse(chunk([{"functionCall": {"name": "f", "args": {}, "id": "abc"}}], "STOP"))
    _, r = stream(body)
    assert [c.id for c in r.tool_calls] == ["abc"]


@pytest.mark.parametrize("raw, reason", [
    ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("MALFORMED_FUNCTION_CALL", "error"),
    ("SOMETHING_NEW", "error"), ("STOP", "stop")])
def test_finish_reasons(raw: str, reason: str) -> None:
    data = chunk([{"text": "partial"}], raw)
    r = CODEC.decode(json.dumps(data).encode(), {}, make_call())
    assert (r.finish_reason, r.raw_finish_reason, r.text) == (reason, raw, "partial")
    _, s = stream(sse(chunk([{"text": "partial"}]), chunk([], raw)))
    assert s.finish_reason == reason and s.text == "partial"


def test_prompt_blocked_outright_is_content_filter() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "r9",
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    r = CODEC.decode(json.dumps(blocked).encode(), {}, make_call())
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("", "content_filter", "SAFETY")
    assert r.usage.input_tokens == 7 and r.request_id == "r9"
    _, s = stream(sse(blocked))
    assert s.finish_reason == "content_filter" and s.text == ""


def test_error_chunk_inside_a_stream_is_typed() -> None:
    body = sse(chunk([{"text": "Hel"}]),
               {"error": {"code": 503, "message": "The model is overloaded.",
                          "status": "UNAVAILABLE"}})
    events, e = stream(body)
    assert isinstance(e, ServerError) and e.retryable and e.status == 503
    assert events  # the text before it had been delivered


def test_cached_tokens_and_tool_use_prompt_tokens() -> None:
    u = {"promptTokenCount": 100, "cachedContentTokenCount": 60, "toolUsePromptTokenCount": 5,
         "candidatesTokenCount": 10, "thoughtsTokenCount": 4, "totalTokenCount": 119}
    r = CODEC.decode(json.dumps(chunk([{"text": "x"}], "STOP", usageMetadata=u)).encode(),
                     {}, make_call())
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (105, 14, 119)
    assert (r.usage.cached_input_tokens, r.usage.reasoning_tokens) == (60, 4)


@pytest.mark.parametrize("body, in_stream_too", [
    (b"not json", True), (b"[1, 2]", True), (b'{"candidates": {"a": 1}}', True),
    (b'{"responseId": "x"}', False),  # a chunk may carry only ids/usage; a body may not
    (json.dumps(chunk([{"functionCall": {"args": {}}}], "STOP")).encode(), True),
    (json.dumps(chunk([{"functionCall": {"name": "f", "args": [1]}}], "STOP")).encode(), True),
    (json.dumps({"candidates": [{"content": {"parts": "oops"}}]}).encode(), True)])
def test_malformed_bodies_raise_typed_errors(body: bytes, in_stream_too: bool) -> None:
    with pytest.raises(MalformedResponseError):
        CODEC.decode(body, {}, make_call())
    event = SSEEvent("message", body.decode())
    if in_stream_too:
        with pytest.raises(MalformedResponseError):
            CODEC.decode_event(event)
    else:
        assert not [d for d in CODEC.decode_event(event) if type(d).__name__ != "Meta"]


def test_accumulator_rejects_a_stream_without_finish_reason() -> None:
    acc = StreamAccumulator("gemini", "m")
    acc.feed(CODEC.decode_event(SSEEvent("message", json.dumps(chunk([{"text": "a"}])))))
    with pytest.raises(StreamInterruptedError):
        acc.response()


# --- classify_error ---------------------------------------------------------------


def err(status: int, google: str, message: str = "m", details: list[Any] | None = None,
        wrap: bool = False) -> bytes:
    e: dict[str, Any] = {"error": {"code": status, "message": message, "status": google}}
    if details is not None:
        e["error"]["details"] = details
    return json.dumps([e] if wrap else e).encode()


@pytest.mark.parametrize("status, google, kind", [
    (400, "INVALID_ARGUMENT", BadRequestError), (400, "FAILED_PRECONDITION", BadRequestError),
    (401, "UNAUTHENTICATED", AuthenticationError),
    (403, "PERMISSION_DENIED", PermissionDeniedError), (404, "NOT_FOUND", NotFoundError),
    (429, "RESOURCE_EXHAUSTED", RateLimitError), (500, "INTERNAL", ServerError),
    (503, "UNAVAILABLE", ServerError), (504, "DEADLINE_EXCEEDED", RequestTimeoutError)])
def test_google_status_maps_to_the_error_tree(status: int, google: str, kind: type) -> None:
    e = CODEC.classify_error(status, {}, err(status, google))
    assert type(e) is kind and e.code == google and e.status == status
    assert e.retryable == (status >= 429)


def test_google_status_wins_over_http_status() -> None:
    assert type(CODEC.classify_error(400, {}, err(400, "PERMISSION_DENIED"))) \
        is PermissionDeniedError


def test_invalid_api_key_is_authentication() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com"}]
    e = CODEC.classify_error(400, {}, err(400, "INVALID_ARGUMENT",
                                          "API key not valid. Please pass a valid API key.",
                                          details))
    assert isinstance(e, AuthenticationError) and e.code == "API_KEY_INVALID"


def test_input_over_the_limit_is_context_window() -> None:
    msg = ("The input token count (1048577) exceeds the maximum number of tokens allowed "
           "(1048576).")
    assert isinstance(CODEC.classify_error(400, {}, err(400, "INVALID_ARGUMENT", msg)),
                      ContextWindowExceededError)
    assert type(CODEC.classify_error(400, {}, err(400, "INVALID_ARGUMENT", "bad field"))) \
        is BadRequestError


def test_rate_limit_retry_delay_from_details_unless_header() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]
    body = err(429, "RESOURCE_EXHAUSTED", "quota", details)
    e = CODEC.classify_error(429, {}, body)
    assert isinstance(e, RateLimitError) and e.retryable and e.retry_after == 12.0
    assert CODEC.classify_error(429, {"retry-after": "3"}, body).retry_after == 3.0
    half = err(429, "RESOURCE_EXHAUSTED", "q", [{"retryDelay": "0.5s"}])
    assert CODEC.classify_error(429, {}, half).retry_after == 0.5


def test_list_wrapped_and_non_json_error_bodies() -> None:
    e = CODEC.classify_error(404, {}, err(404, "NOT_FOUND", "no such model", wrap=True))
    assert isinstance(e, NotFoundError) and e.message == "no such model"
    html = CODEC.classify_error(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(html, ServerError) and "Bad Gateway" in html.message
    assert isinstance(CODEC.classify_error(500, {}, b""), ServerError)


# --- encode -----------------------------------------------------------------------


def test_urls_and_the_key_lives_only_in_a_header() -> None:
    req = CODEC.encode(make_call())
    assert req.url == f"{BASE}/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.method == "POST" and not req.stream
    assert req.headers["x-goog-api-key"] == KEY
    assert KEY not in req.url and KEY not in repr(req) and KEY.encode() not in (req.body or b"")
    s = CODEC.encode(make_call(stream=True, model="models/gemini-3-pro-preview",
                               base_url=BASE + "/v1beta/"))
    assert s.url == f"{BASE}/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    assert s.stream and KEY not in s.url and "key=" not in s.url


def test_registry_builds_this_codec() -> None:
    assert isinstance(get_codec(SPEC), GeminiCodec)


def test_text_mode_is_unsupported_and_names_complete() -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"complete\(\)"):
        CODEC.encode(make_call(mode="text", prompt="once upon"))


def test_system_messages_become_system_instruction() -> None:
    it = load("gemini/test_google_model.yaml")[0]
    b = body_of(make_call([{"role": "system", "content": "You are a chatbot."},
                           {"role": "user", "content": "Hello!"}]))
    assert b["systemInstruction"]["parts"] == it.request["systemInstruction"]["parts"]  # type: ignore[index]
    assert b["contents"] == it.request["contents"]  # type: ignore[index]
    two = body_of(make_call([{"role": "system", "content": "a"}, {"role": "system",
                                                                  "content": "b"},
                             {"role": "user", "content": "u"}]))
    assert two["systemInstruction"] == {"parts": [{"text": "a"}, {"text": "b"}]}
    only = body_of(make_call([{"role": "system", "content": "Tell three jokes."}]))
    assert only["contents"] == [{"role": "user", "parts": [{"text": ""}]}]  # as recorded


def test_images() -> None:
    parts = body_of(make_call([Message("user", [
        TextPart("what is this?"), ImagePart("data:image/png;base64,iVBORw0K"),
        ImagePart("https://example.com/cat.jpg"), ImagePart("https://example.com/img")])]))
    p = parts["contents"][0]["parts"]
    assert p[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}
    assert p[2] == {"fileData": {"fileUri": "https://example.com/cat.jpg",
                                 "mimeType": "image/jpeg"}}
    assert p[3] == {"fileData": {"fileUri": "https://example.com/img"}}
    with pytest.raises(InvalidMessageError):
        CODEC.encode(make_call([Message("user", [ImagePart("ftp://x/y.png")])]))
    with pytest.raises(InvalidMessageError):
        CODEC.encode(make_call([Message("user", [ImagePart("data:image/png,rawbytes")])]))
    with pytest.raises(UnsupportedFeatureError):
        CODEC.encode(make_call([Message("system", [ImagePart("https://x/y.png")]),
                                Message("user", "hi")]))


def test_tool_results_find_their_name_and_merge() -> None:
    calls = [ToolCall("c1", "get_capital", {"country": "France"}, "{}"),
             ToolCall("c2", "get_capital", {"country": "Spain"}, "{}"),
             ToolCall("toolu_9", "get_time", {}, "{}")]
    b = body_of(make_call([
        Message("user", "capitals?"), Message("assistant", "Let me look.", calls),
        Message("tool", '{"city": "Paris"}', tool_call_id="c1"),
        Message("tool", "Madrid", tool_call_id="c2"),
        Message("tool", "[1, 2]", tool_call_id="toolu_9"),
        Message("user", "thanks")]))
    model, results, user = b["contents"][1:]
    assert model["role"] == "model" and model["parts"][0] == {"text": "Let me look."}
    assert [p["functionCall"] for p in model["parts"][1:]] == [
        {"name": "get_capital", "args": {"country": "France"}, "id": "c1"},
        {"name": "get_capital", "args": {"country": "Spain"}, "id": "c2"},
        {"name": "get_time", "args": {}, "id": "toolu_9"}]
    assert all("thoughtSignature" not in p for p in model["parts"])
    assert results["role"] == "user" and [p["functionResponse"] for p in results["parts"]] == [
        {"name": "get_capital", "response": {"city": "Paris"}, "id": "c1"},
        {"name": "get_capital", "response": {"result": "Madrid"}, "id": "c2"},
        {"name": "get_time", "response": {"result": "[1, 2]"}, "id": "toolu_9"}]
    assert user == {"role": "user", "parts": [{"text": "thanks"}]}


def test_same_call_id_in_two_turns_uses_the_latest_name() -> None:
    b = body_of(make_call([
        Message("user", "go"), Message("assistant", "", [ToolCall("call_0", "a", {}, "{}")]),
        Message("tool", "1", tool_call_id="call_0"),
        Message("assistant", "", [ToolCall("call_0", "b", {}, "{}")]),
        Message("tool", "2", tool_call_id="call_0")]))
    names = [c["parts"][0]["functionResponse"]["name"] for c in b["contents"]
             if "functionResponse" in c["parts"][0]]
    assert names == ["a", "b"]


def test_tool_result_without_a_matching_call_is_a_clear_error() -> None:
    with pytest.raises(InvalidMessageError, match=r"tool_call_id 'nope'.*function name"):
        CODEC.encode(make_call([Message("user", "x"), Message("tool", "r", tool_call_id="nope")]))
    named = body_of(make_call([Message("user", "x"),
                               Message("tool", "r", tool_call_id="nope", name="f")]))
    assert named["contents"][1]["parts"][0]["functionResponse"]["name"] == "f"


PYDANTIC_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Args",
    "type": "object", "additionalProperties": False,
    "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "title": "Unit"},
              "Place": {"type": "object", "additionalProperties": False, "title": "Place",
                        "properties": {"city": {"type": "string", "title": "City"}},
                        "required": ["city"]}},
    "properties": {
        "place": {"$ref": "#/$defs/Place", "description": "where"},
        "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "default": None},
        "days": {"type": ["integer", "null"], "minimum": 1, "format": "int32"},
        "url": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "mode": {"const": "fast"},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "legacy": {"allOf": [{"$ref": "#/$defs/Place"}], "description": "old style"},
    },
    "required": ["place"],
}
ALLOWED = {"type", "format", "description", "nullable", "enum", "maxItems", "minItems",
           "properties", "required", "minProperties", "maxProperties", "minLength",
           "maxLength", "pattern", "example", "anyOf", "propertyOrdering", "default", "items",
           "minimum", "maximum"}


def walk(node: Any) -> list[dict[str, Any]]:
    out = [node]
    for v in (node.get("properties") or {}).values():
        out += walk(v)
    for v in [node["items"]] if "items" in node else []:
        out += walk(v)
    for v in node.get("anyOf", []):
        out += walk(v)
    return out


def test_schema_cleaning() -> None:
    s = gemini_schema(PYDANTIC_SCHEMA)
    for node in walk(s):  # only keys Gemini's Schema has; types in its enum spelling
        assert set(node) <= ALLOWED, set(node) - ALLOWED
        assert node.get("type", "OBJECT") in {"STRING", "INTEGER", "NUMBER", "BOOLEAN",
                                              "ARRAY", "OBJECT"}
    p = s["properties"]
    assert s["required"] == ["place"] and s["type"] == "OBJECT"
    assert p["place"] == {"type": "OBJECT", "description": "where", "required": ["city"],
                          "properties": {"city": {"type": "STRING"}}}
    assert p["unit"] == {"type": "STRING", "enum": ["c", "f"], "default": None,
                         "nullable": True}
    assert p["days"] == {"type": "INTEGER", "minimum": 1, "format": "int32", "nullable": True}
    assert p["url"] == {"type": "STRING"} and p["when"]["format"] == "date-time"
    assert p["mode"] == {"enum": ["fast"]}
    assert "enum" not in p["level"] and "1, 2, 3" in p["level"]["description"]
    assert p["tags"] == {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3}
    assert p["either"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert p["legacy"]["properties"] == {"city": {"type": "STRING"}}
    assert p["legacy"]["description"] == "old style"


def test_recursive_schema_and_the_json_schema_escape_hatch() -> None:
    tree = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "properties": {"root": {"$ref": "#/$defs/Node"}}}
    tool = Tool("walk", "walk a tree", tree)
    with pytest.raises(UnsupportedFeatureError, match="tool_schema"):
        CODEC.encode(make_call(tools=[tool]))
    for bad in ({"properties": {"x": {"$ref": "https://elsewhere/schema"}}},
                {"properties": ["x"]}, {"anyOf": {"type": "string"}}, {"properties": {"x": 1}}):
        with pytest.raises(InvalidMessageError):
            gemini_schema(bad)
    decl = body_of(make_call(tools=[Tool("walk", "", {"$schema": "x", **tree})],
                             options={"tool_schema": "json"}))["tools"][0]
    assert decl["functionDeclarations"][0] == {"name": "walk", "parametersJsonSchema": tree}


def test_tools_and_tool_config() -> None:
    tools = [Tool("get_weather", "Get the weather.", {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}),
             Tool("now", "", {"type": "object", "properties": {}})]
    b = body_of(make_call(tools=tools))
    assert b["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Get the weather.", "parameters": {
            "type": "OBJECT", "properties": {"city": {"type": "STRING"}},
            "required": ["city"]}},
        {"name": "now"}]}]  # no parameters at all for a no-argument tool
    assert "toolConfig" not in b

    def mode(choice: Any) -> Any:
        return body_of(make_call(tools=tools, tool_choice=choice))["toolConfig"]
    assert mode("auto") == {"functionCallingConfig": {"mode": "AUTO"}}
    assert mode("required") == {"functionCallingConfig": {"mode": "ANY"}}
    assert mode("none") == {"functionCallingConfig": {"mode": "NONE"}}
    named = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["now"]}}
    assert mode("now") == named
    assert mode({"type": "function", "function": {"name": "now"}}) == named
    with pytest.raises(InvalidMessageError, match="get_weather"):
        mode("missing")


def test_generation_config_and_extra_deep_merge() -> None:
    b = body_of(make_call(temperature=0.2, top_p=0.9, max_tokens=50, stop=["Paris"], seed=7))
    assert b["generationConfig"] == {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50,
                                     "stopSequences": ["Paris"], "seed": 7}
    assert "generationConfig" not in body_of(make_call())
    merged = body_of(make_call(temperature=0.2, extra={
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}, "topK": 3},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                            "threshold": "BLOCK_NONE"}]}))
    assert merged["generationConfig"] == {"temperature": 0.2, "topK": 3,
                                          "thinkingConfig": {"includeThoughts": True}}
    assert merged["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert body_of(make_call(temperature=0.2, extra={"generationConfig": {
        "temperature": 1.0}}))["generationConfig"] == {"temperature": 1.0}


def test_recorded_tool_round_trip_request_matches() -> None:
    it = load("gemini/test_google_tool_output.yaml")[1]
    call_id = "pyd_ai_3fa5644dae1d4aad997ae39c70006fbd"
    b = body_of(make_call([
        Message("user", "What is the largest city in the user country?"),
        Message("assistant", "", [ToolCall(call_id, "get_user_country", {}, "{}")]),
        Message("tool", '{"return_value": "Mexico"}', tool_call_id=call_id)]))
    assert b["contents"] == it.request["contents"]  # type: ignore[index]
